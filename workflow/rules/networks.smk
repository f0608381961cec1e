# The networks (Ye et al. 2024; OIDN; PSF identification): one training rule per network of
# the registry, then inference stages
# raw -> denoise -> SIM (Wiener or network) -> artifact removal -> background -> Res-U-DBPN.
# A network whose `networks.<net>.model` is set in the config is not trained: its model is used.


# one training rule per registered network (dps_stages/nets/registry.py), `train_<net>`,
# writing the model folders of its spec's variants (resudbpn: resudbpn, resudbpn_widefield)
for _net in REGISTRY:

    rule:
        name:
            f"train_{_net}"
        input:
            unpack(train_inputs_of(_net)),
        output:
            directory(f"{RESULTS}/models/{{model}}"),
        log:
            f"{RESULTS}/logs/models/train_{{model}}.log",
        wildcard_constraints:
            model=name_regex(list(REGISTRY[_net].variants)),
        params:
            net=_net,
            opts=train_options_of(_net),
            files=train_files,
            sim=train_sim_options(_net),
            settings=train_settings(_net),
            ckpt=f"{RESULTS}/models/.checkpoints/{{model}}.pt",
        threads: NET["threads"]
        resources:
            gpu=1,
        conda:
            "../../envs/dps.yaml"
        shell:
            # not `_net` here: the shell command is formatted when the job runs, after the loop
            "dps train {params.net} {output:q} {params.files} {params.sim} "
            "--checkpoint {params.ckpt:q} {params.opts} > {log:q} 2>&1"


rule identify_psf:
    input:
        image=store(f"{RESULTS}/{{ds}}/{{level}}/widefield_bg.zarr"),
        model=model_dir("psfid"),
    output:
        widefield=f"{RESULTS}/{{ds}}/{{level}}/psf/widefield.tif",
        sr=f"{RESULTS}/{{ds}}/{{level}}/psf/sr.tif",
        figure=report(
            f"{RESULTS}/{{ds}}/{{level}}/psf/identified.png",
            caption="../report/psf.rst",
            category="Identified PSF (blind mode)",
            labels={"dataset": "{ds}", "level": "{level}"},
        ),
    log:
        f"{RESULTS}/logs/{{ds}}/identify_psf_{{level}}.log",
    params:
        image=in_store("image"),
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
        device=NET["device"],
    threads: NET["threads"]
    resources:
        gpu=1,  # used when visible (device auto or cuda): one GPU each on a cluster
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps identify-psf {params.image:q} {output.widefield:q} --model {input.model:q} "
        "--sr {output.sr:q} --figure {output.figure:q} --wavelength {params.wavelength:q} "
        "--na {params.na:q} --modulation-factor {params.modulation_factor:q} "
        "--device {params.device:q} --threads {threads} > {log:q} 2>&1"


rule train_resudbpn_own:
    input:
        unpack(dbpn_own_inputs),
    output:
        directory(f"{RESULTS}/{{image_ds}}/model_resudbpn"),
    log:
        f"{RESULTS}/logs/{{image_ds}}/train_resudbpn.log",
    params:
        image=in_store("image"),
        psf=lambda w, input: input.get("psf")
        or ("sr" if input_kind(w.image_ds) == "sim" else "airy"),
        opts=lambda w: train_options("resudbpn", w.image_ds),
        settings=train_settings("resudbpn"),
        ckpt=lambda w: f"{RESULTS}/models/.checkpoints/resudbpn_{w.image_ds}.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train resudbpn {output:q} --data {params.image:q} --psf {params.psf:q} "
        "--checkpoint {params.ckpt:q} {params.opts} > {log:q} 2>&1"


rule adapt:
    input:
        model=lambda w: model_dir(w.net),
        frames=lambda w: store(stage_path(w.ds, w.level, "raw")),
        calibration=f"{RESULTS}/{{ds}}/{{level}}/calibration.json",
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/models/{{net}}"),
    log:
        f"{RESULTS}/logs/{{ds}}/adapt_{{level}}_{{net}}.log",
    wildcard_constraints:
        net="denoise|sim|oidn",
    params:
        frames=in_store("frames"),
        seed=config["seed"],
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps adapt {wildcards.net:q} {input.model:q} {params.frames:q} {output:q} "
        "--calibration {input.calibration:q} --seed {params.seed:q} --threads {threads} "
        "--wavelength {params.wavelength:q} --na {params.na:q} "
        "--modulation-factor {params.modulation_factor:q} > {log:q} 2>&1"


rule infer:
    input:
        unpack(infer_inputs),
    output:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{net_stage}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/infer_{{level}}_{{net_stage}}.log",
    wildcard_constraints:
        net_stage="raw_dn|sim_dps|sim_oidn|sim_ar|sim_dbpn|widefield_dbpn",
    params:
        image=in_store("image"),
        dst=out_store(),
        net=lambda w: net_stages(w.ds)[w.net_stage][0],
        tile=NET["tile"],
        batch=NET["batch"],
        precision=NET["precision"],
        device=NET["device"],
        sure=sure_option,
    threads: NET["threads"]
    resources:
        gpu=1,  # used when visible (device auto or cuda): one GPU each on a cluster
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps infer {params.net:q} {params.image:q} {params.dst:q} --model {input.model:q} "
        "--tile {params.tile:q} --batch {params.batch:q} --precision {params.precision:q} "
        "--device {params.device:q} --threads {threads} {params.sure} "
        "--stage {wildcards.net_stage:q} > {log:q} 2>&1"


rule denoise_error_figure:
    input:
        stage=lambda w: store(stage_path(w.ds, w.level, "raw_dn")),
        calibration=f"{RESULTS}/{{ds}}/{{level}}/calibration.json",
    output:
        report(
            f"{RESULTS}/{{ds}}/{{level}}/denoise_error.png",
            caption="../report/denoise_error.rst",
            category="Calibration",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "level": "{level}", "figure": "denoiser's error"},
        ),
    log:
        f"{RESULTS}/logs/{{ds}}/denoise_error_{{level}}.log",
    params:
        src=in_store("stage"),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps denoise-error {params.src:q} {input.calibration:q} {output:q} > {log:q} 2>&1"


rule model_figure:
    input:
        lambda w: model_dir(w.net),
    output:
        report(
            f"{RESULTS}/models/figures/{{net}}_{{figure}}.png",
            caption="../report/model_figure.rst",
            category="Training",
            labels={"network": "{net}", "figure": "{figure}"},
        ),
    log:
        f"{RESULTS}/logs/models/figure_{{net}}_{{figure}}.log",
    wildcard_constraints:
        net=name_regex(list(MODELS)),
        figure="loss|psf",
    conda:
        "../../envs/dps.yaml"
    shell:
        "cp {input:q}/{wildcards.figure:q}.png {output:q} > {log:q} 2>&1"


rule export_bioimageio:
    input:
        lambda w: model_dir(w.model),
    output:
        f"{RESULTS}/models/bioimageio/{{model}}.zip",
    log:
        f"{RESULTS}/logs/models/bioimageio_{{model}}.log",
    wildcard_constraints:
        model=name_regex(list(MODELS)),
    params:
        net=lambda w: MODELS[w.model],
        pixel_size=lambda w: model_input_pixel_size(w.model),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps export-model {params.net:q} {input:q} {output:q} "
        "--pixel-size {params.pixel_size:q} > {log:q} 2>&1"
