# Classical reconstruction: Wiener 2D-SIM (parameters estimated from the frames),
# Richardson-Lucy and sparse-Hessian deconvolution.


rule sim_reconstruct:
    input:
        f"{RESULTS}/{{ds}}/{{level}}/raw_bg.zarr",
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/sim_wiener.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/sim_reconstruct_{{level}}.log",
    params:
        optics=lambda w: optics_options(w.ds),
        sim=(
            f"--wiener {config['sim']['wiener']} "
            f"--wiener-factor {config['sim']['wiener_factor']} "
            f"--otf-decay {config['sim']['otf_decay']}"
        ),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps sim-reconstruct {input} {output} {params.sim} {params.optics} "
        "> {log} 2>&1"


rule deconvolve:
    input:
        lambda w: deconvolution_input(w.ds, w.level, w.deconv),
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/{{deconv}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/deconvolve_{{level}}_{{deconv}}.log",
    wildcard_constraints:
        deconv="|".join(DECONVOLUTION),
    params:
        method=lambda w: DECONVOLUTION[w.deconv][0],
        psf=lambda w: DECONVOLUTION[w.deconv][1],
        iterations=lambda w: config["deconvolution"][DECONVOLUTION[w.deconv][0]]["iterations"],
        sparse=(
            f"--fidelity {config['deconvolution']['sparse']['fidelity']} "
            f"--sparsity {config['deconvolution']['sparse']['sparsity']}"
        ),
        optics=lambda w: optics_options(w.ds),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps deconvolve {input} {output} --method {params.method} --psf {params.psf} "
        "--iterations {params.iterations} {params.sparse} {params.optics} "
        "--stage {wildcards.deconv} > {log} 2>&1"
