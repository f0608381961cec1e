# The DPS networks (Ye et al. 2024): one training rule per network, then inference stages
# raw -> denoise -> SIM (Wiener or network) -> artifact removal -> background -> Res-U-DBPN.
# A network whose `networks.<net>.model` is set in the config is not trained: its model is used.


rule train_denoise:
    input:
        unpack(train_data),
    output:
        directory(f"{RESULTS}/models/denoise"),
    log:
        f"{RESULTS}/logs/models/train_denoise.log",
    params:
        opts=lambda w: train_options("denoise"),
        settings=train_settings("denoise"),
        ckpt=f"{RESULTS}/models/.checkpoints/denoise.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train denoise {output} --data {input.data} --val {input.val} "
        "--checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule train_sim:
    input:
        unpack(train_data),
        denoise=model_dir("denoise"),
    output:
        directory(f"{RESULTS}/models/sim"),
    log:
        f"{RESULTS}/logs/models/train_sim.log",
    params:
        opts=lambda w: train_options("sim"),
        settings=train_settings("sim"),
        ckpt=f"{RESULTS}/models/.checkpoints/sim.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train sim {output} --data {input.data} --val {input.val} "
        "--denoise-model {input.denoise} --checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule train_oidn:
    input:
        unpack(train_data),
        denoise=model_dir("denoise"),
    output:
        directory(f"{RESULTS}/models/oidn"),
    log:
        f"{RESULTS}/logs/models/train_oidn.log",
    params:
        opts=lambda w: train_options("oidn"),
        settings=train_settings("oidn"),
        ckpt=f"{RESULTS}/models/.checkpoints/oidn.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train oidn {output} --data {input.data} --val {input.val} "
        "--denoise-model {input.denoise} --checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule train_artifact:
    input:
        unpack(artifact_inputs),
    output:
        directory(f"{RESULTS}/models/artifact"),
    log:
        f"{RESULTS}/logs/models/train_artifact.log",
    params:
        opts=artifact_options,
        settings=train_settings("artifact"),
        ckpt=f"{RESULTS}/models/.checkpoints/artifact.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train artifact {output} --data {input.data} --val {input.val} "
        "--denoise-model {input.denoise} --checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule train_resudbpn:
    input:
        unpack(train_data),
    output:
        directory(f"{RESULTS}/models/{{dbpn_model}}"),
    log:
        f"{RESULTS}/logs/models/train_{{dbpn_model}}.log",
    wildcard_constraints:
        dbpn_model="resudbpn|resudbpn_widefield",
    params:
        psf=lambda w: "airy" if w.dbpn_model.endswith("widefield") else "sr",
        opts=lambda w: train_options("resudbpn"),
        settings=train_settings("resudbpn"),
        ckpt=f"{RESULTS}/models/.checkpoints/{{dbpn_model}}.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train resudbpn {output} --data {input.data} --val {input.val} --psf {params.psf} "
        "--checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule train_psfid:
    output:
        directory(f"{RESULTS}/models/psfid"),
    log:
        f"{RESULTS}/logs/models/train_psfid.log",
    params:
        opts=lambda w: train_options("psfid"),
        settings=train_settings("psfid"),
        theta=NET["psfid"]["theta_max"],
        reblur=NET["psfid"]["loss"]["reblur"],
        ckpt=f"{RESULTS}/models/.checkpoints/psfid.pt",
    threads: NET["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps train psfid {output} --theta-max {params.theta} --w-reblur {params.reblur} "
        "--checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule identify_psf:
    input:
        image=f"{RESULTS}/{{ds}}/{{level}}/widefield_bg.zarr",
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
        wavelength=lambda w: optics(w.ds)["wavelength"],
        na=lambda w: optics(w.ds)["na"],
        modulation_factor=lambda w: optics(w.ds)["modulation_factor"],
        device=NET["device"],
    threads: NET["threads"]
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps identify-psf {input.image:q} {output.widefield:q} --model {input.model:q} "
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
        "dps train resudbpn {output} --data {input.image} --psf {params.psf} "
        "--checkpoint {params.ckpt} {params.opts} > {log} 2>&1"


rule infer:
    input:
        unpack(infer_inputs),
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/{{net_stage}}.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/infer_{{level}}_{{net_stage}}.log",
    wildcard_constraints:
        net_stage="raw_dn|sim_dps|sim_oidn|sim_ar|sim_dbpn|widefield_dbpn",
    params:
        net=lambda w: net_stages(w.ds)[w.net_stage][0],
        tile=NET["tile"],
        device=NET["device"],
    threads: NET["threads"]
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps infer {params.net:q} {input.image:q} {output:q} --model {input.model:q} "
        "--tile {params.tile:q} --device {params.device:q} --threads {threads} "
        "--stage {wildcards.net_stage:q} > {log:q} 2>&1"


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
        net="|".join(NETWORK_NAMES + ("psfid", "resudbpn_widefield")),
        figure="loss|psf",
    conda:
        "../../envs/dps.yaml"
    shell:
        "cp {input:q}/{wildcards.figure:q}.png {output:q} > {log:q} 2>&1"
