# Stage inputs: a simulated dataset (ground truth, raw SIM frames, widefield at several
# signal levels) or a user's images, validated and written as chunked Zarr.
# Every config value is a param of its own (a plain value or a function of the wildcards),
# so that Snakemake's params trigger reruns exactly the jobs whose values changed.


rule simulate:
    input:
        unpack(simulate_inputs),
    output:
        store(f"{RESULTS}/{{sim_ds}}/simulate/{{split}}.zarr"),
    log:
        f"{RESULTS}/logs/{{sim_ds}}/simulate_{{split}}.log",
    params:
        dst=out_store(),
        seed=config["seed"],
        tile=config["tile"],
        n=lambda w: simulate_setting(w.sim_ds, f"n_{w.split}"),
        structures=lambda w: ",".join(simulate_setting(w.sim_ds, "structures")),
        size=lambda w: simulate_setting(w.sim_ds, "size"),
        levels=lambda w: ",".join(levels(w.sim_ds)),
        frequency=lambda w: simulate_setting(w.sim_ds, "pattern", "frequency"),
        modulation=lambda w: simulate_setting(w.sim_ds, "pattern", "modulation"),
        angle_error=lambda w: simulate_setting(w.sim_ds, "pattern", "angle_error"),
        phase_error=lambda w: simulate_setting(w.sim_ds, "pattern", "phase_error"),
        read_noise=lambda w: simulate_setting(w.sim_ds, "noise", "read_noise"),
        gain=lambda w: simulate_setting(w.sim_ds, "noise", "gain"),
        offset=lambda w: simulate_setting(w.sim_ds, "noise", "offset"),
        bits=lambda w: simulate_setting(w.sim_ds, "noise", "bits"),
        salt_pepper=lambda w: simulate_setting(w.sim_ds, "noise", "salt_pepper"),
        wavelength=lambda w: optics(w.sim_ds)["wavelength"],
        na=lambda w: optics(w.sim_ds)["na"],
        pixel_size=lambda w: optics(w.sim_ds)["pixel_size"],
        modulation_factor=lambda w: optics(w.sim_ds)["modulation_factor"],
        calibrated=simulate_calibration_options,
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps simulate {params.dst:q} {params.calibrated} --split {wildcards.split:q} --seed {params.seed:q} "
        "--structures {params.structures:q} --n-per-structure {params.n:q} "
        "--size {params.size:q} --levels {params.levels:q} "
        "--pattern-frequency {params.frequency:q} --modulation {params.modulation:q} "
        "--angle-error {params.angle_error:q} --phase-error {params.phase_error:q} "
        "--read-noise {params.read_noise:q} --gain {params.gain:q} --offset {params.offset:q} "
        "--bits {params.bits:q} --salt-pepper {params.salt_pepper:q} --tile {params.tile:q} "
        "--wavelength {params.wavelength:q} --na {params.na:q} "
        "--pixel-size {params.pixel_size:q} --modulation-factor {params.modulation_factor:q} "
        "> {log:q} 2>&1"


rule extract_level:
    input:
        store(f"{RESULTS}/{{sim_ds}}/simulate/test.zarr"),
    output:
        raw=store(f"{RESULTS}/{{sim_ds}}/{{level}}/raw.zarr"),
        widefield=store(f"{RESULTS}/{{sim_ds}}/{{level}}/widefield.zarr"),
    log:
        f"{RESULTS}/logs/{{sim_ds}}/extract_{{level}}.log",
    params:
        src=in_store(),
        raw=out_store("raw"),
        widefield=out_store("widefield"),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps extract {params.src:q} --level {wildcards.level:q} "
        "--raw {params.raw:q} --widefield {params.widefield:q} > {log:q} 2>&1"


rule import_raw:
    input:
        lambda w: DATASETS[w.raw_ds]["source"],
    output:
        raw=store(f"{RESULTS}/{{raw_ds}}/input/raw.zarr"),
        widefield=store(f"{RESULTS}/{{raw_ds}}/input/widefield.zarr"),
    log:
        f"{RESULTS}/logs/{{raw_ds}}/import.log",
    params:
        raw=out_store("raw"),
        widefield=out_store("widefield"),
        pixel_size=lambda w: pixel_size_of_input(w.raw_ds),
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps import {input:q} {params.raw:q} --kind raw --widefield {params.widefield:q} "
        "--pixel-size {params.pixel_size:q} --tile {params.tile:q} > {log:q} 2>&1"


rule import_image:
    input:
        lambda w: DATASETS[w.image_ds]["source"],
    output:
        store(f"{RESULTS}/{{image_ds}}/input/{{kind}}.zarr"),
    log:
        f"{RESULTS}/logs/{{image_ds}}/import_{{kind}}.log",
    wildcard_constraints:
        kind="widefield|sim",
    params:
        dst=out_store(),
        pixel_size=lambda w: pixel_size_of_input(w.image_ds),
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps import {input:q} {params.dst:q} --kind {wildcards.kind:q} "
        "--pixel-size {params.pixel_size:q} --tile {params.tile:q} > {log:q} 2>&1"
