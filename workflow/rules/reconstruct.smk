# Calibration of each raw acquisition, classical reconstruction: Wiener 2D-SIM (pattern
# estimated from the frames, OTF attenuation from the calibration), Richardson-Lucy and
# sparse-Hessian deconvolution. The pixel size comes with the input.


rule calibrate:
    input:
        lambda w: store(stage_path(w.ds, w.level, "raw")),
    output:
        json=f"{RESULTS}/{{ds}}/{{level}}/calibration.json",
        figure=report(
            f"{RESULTS}/{{ds}}/{{level}}/calibration.png",
            caption="../report/calibration.rst",
            category="Calibration",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "level": "{level}"},
        ),
    log:
        f"{RESULTS}/logs/{{ds}}/calibrate_{{level}}.log",
    params:
        src=in_store(),
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
        seed=config["seed"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps calibrate {params.src:q} {output.json:q} --figure {output.figure:q} "
        "--wavelength {params.wavelength:q} --na {params.na:q} "
        "--modulation-factor {params.modulation_factor:q} --seed {params.seed:q} "
        "> {log:q} 2>&1"


rule sim_reconstruct:
    input:
        frames=lambda w: store(stage_path(w.ds, w.level, SIM_WIENER[w.wiener_stage])),
        calibration=lambda w: calibration_input(w.ds, w.level),
    output:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{wiener_stage}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/sim_reconstruct_{{level}}_{{wiener_stage}}.log",
    wildcard_constraints:
        wiener_stage="|".join(SIM_WIENER),
    params:
        frames=in_store("frames"),
        dst=out_store(),
        wiener=config["sim"]["wiener"],
        wiener_factor=config["sim"]["wiener_factor"],
        otf_decay=config["sim"]["otf_decay"],
        calibration=calibration_option,
        local_wiener=config["sim"]["local_wiener"],
        pupil=config["sim"]["pupil"],
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps sim-reconstruct {params.frames:q} {params.dst:q} {params.calibration} "
        "--wiener {params.wiener:q} "
        "--wiener-factor {params.wiener_factor:q} --otf-decay {params.otf_decay:q} "
        "--local-wiener {params.local_wiener:q} --pupil {params.pupil:q} "
        "--wavelength {params.wavelength:q} "
        "--na {params.na:q} --modulation-factor {params.modulation_factor:q} "
        "--stage {wildcards.wiener_stage:q} > {log:q} 2>&1"


rule deconvolve:
    input:
        unpack(deconvolve_inputs),
    output:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{deconv}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/deconvolve_{{level}}_{{deconv}}.log",
    wildcard_constraints:
        deconv="|".join(DECONVOLUTION),
    params:
        image=in_store("image"),
        dst=out_store(),
        method=lambda w: DECONVOLUTION[w.deconv][0],
        psf=lambda w: deconvolution_psf(w.ds, w.level, w.deconv),
        iterations=lambda w: config["deconvolution"][DECONVOLUTION[w.deconv][0]]["iterations"],
        # the sparse-Hessian weights, for the sparse stages only (RL does not read them)
        sparse=sparse_options,
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps deconvolve {params.image:q} {params.dst:q} --method {params.method:q} "
        "--psf {params.psf:q} --iterations {params.iterations:q} {params.sparse:q} "
        "--wavelength {params.wavelength:q} --na {params.na:q} "
        "--modulation-factor {params.modulation_factor:q} "
        "--stage {wildcards.deconv:q} > {log:q} 2>&1"
