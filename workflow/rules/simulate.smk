# Stage inputs: a simulated dataset (ground truth, raw SIM frames, widefield at several
# signal levels) or a user's images, validated and written as chunked Zarr.


rule simulate:
    output:
        directory(f"{RESULTS}/{{sim_ds}}/simulate/{{split}}.zarr"),
    log:
        f"{RESULTS}/logs/{{sim_ds}}/simulate_{{split}}.log",
    params:
        args=lambda w: simulate_args(w.sim_ds, w.split),
        settings=settings_digest(
            DATA_SETTINGS, NET["simulate"], {ds: DATASETS[ds] for ds in SIMULATED}
        ),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps simulate {output} --split {wildcards.split} {params.args} > {log} 2>&1"


rule extract_level:
    input:
        f"{RESULTS}/{{sim_ds}}/simulate/test.zarr",
    output:
        raw=directory(f"{RESULTS}/{{sim_ds}}/{{level}}/raw.zarr"),
        widefield=directory(f"{RESULTS}/{{sim_ds}}/{{level}}/widefield.zarr"),
    log:
        f"{RESULTS}/logs/{{sim_ds}}/extract_{{level}}.log",
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps extract {input} --level {wildcards.level} "
        "--raw {output.raw} --widefield {output.widefield} > {log} 2>&1"


rule import_raw:
    input:
        lambda w: DATASETS[w.raw_ds]["source"],
    output:
        raw=directory(f"{RESULTS}/{{raw_ds}}/input/raw.zarr"),
        widefield=directory(f"{RESULTS}/{{raw_ds}}/input/widefield.zarr"),
    log:
        f"{RESULTS}/logs/{{raw_ds}}/import.log",
    params:
        pixel_size=lambda w: pixel_size_of_input(w.raw_ds),
        settings=DATA_SETTINGS,
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps import {input:q} {output.raw} --kind raw --widefield {output.widefield} "
        "--pixel-size {params.pixel_size} --tile {params.tile} > {log} 2>&1"


rule import_image:
    input:
        lambda w: DATASETS[w.image_ds]["source"],
    output:
        directory(f"{RESULTS}/{{image_ds}}/input/{{kind}}.zarr"),
    log:
        f"{RESULTS}/logs/{{image_ds}}/import_{{kind}}.log",
    wildcard_constraints:
        kind="widefield|sim",
    params:
        pixel_size=lambda w: pixel_size_of_input(w.image_ds),
        settings=DATA_SETTINGS,
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps import {input:q} {output} --kind {wildcards.kind} "
        "--pixel-size {params.pixel_size} --tile {params.tile} > {log} 2>&1"
