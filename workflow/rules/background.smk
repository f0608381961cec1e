# Rolling-ball background removal (as DPS does it), tile by tile with a halo.


rule background:
    input:
        f"{RESULTS}/{{ds}}/{{level}}/{{stage}}.zarr",
    output:
        directory(f"{RESULTS}/{{ds}}/{{level}}/{{stage}}_bg.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/background_{{level}}_{{stage}}.log",
    wildcard_constraints:
        stage="raw|widefield|sim|raw_dn|sim_ar",
    params:
        radius=config["background"]["radius"],
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps background {input} {output} --radius {params.radius} --tile {params.tile} "
        "--stage {wildcards.stage}_bg > {log} 2>&1"
