# Classical reconstruction: Wiener 2D-SIM (parameters estimated from the frames),
# Richardson-Lucy and sparse-Hessian deconvolution.


rule sim_reconstruct:
    input:
        lambda w: stage_path(w.ds, w.level, SIM_WIENER[w.wiener_stage]),
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/{{wiener_stage}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/sim_reconstruct_{{level}}_{{wiener_stage}}.log",
    wildcard_constraints:
        wiener_stage="|".join(SIM_WIENER),
    params:
        optics=lambda w: optics_options(w.ds),
        settings=DATA_SETTINGS,
        sim=sim_options(),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps sim-reconstruct {input} {output} {params.sim} {params.optics} "
        "--stage {wildcards.wiener_stage} > {log} 2>&1"


rule deconvolve:
    input:
        unpack(deconvolve_inputs),
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/{{deconv}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/deconvolve_{{level}}_{{deconv}}.log",
    wildcard_constraints:
        deconv="|".join(DECONVOLUTION),
    params:
        method=lambda w: DECONVOLUTION[w.deconv][0],
        psf=lambda w: deconvolution_psf(w.ds, w.level, w.deconv),
        iterations=lambda w: config["deconvolution"][DECONVOLUTION[w.deconv][0]]["iterations"],
        sparse=(
            f"--fidelity {config['deconvolution']['sparse']['fidelity']} "
            f"--sparsity {config['deconvolution']['sparse']['sparsity']}"
        ),
        optics=lambda w: optics_options(w.ds),
        settings=settings_digest(config["deconvolution"], DATA_SETTINGS),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps deconvolve {input.image} {output} --method {params.method} --psf {params.psf} "
        "--iterations {params.iterations} {params.sparse} {params.optics} "
        "--stage {wildcards.deconv} > {log} 2>&1"
