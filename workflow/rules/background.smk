# Rolling-ball background removal (as DPS does it), tile by tile with a halo.


rule background:
    input:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{stage}}.zarr"),
    output:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{stage}}_bg.zarr"),
    log:
        f"{RESULTS}/logs/{{ds}}/background_{{level}}_{{stage}}.log",
    wildcard_constraints:
        stage="raw|widefield|sim|raw_dn|sim_ar",
    params:
        src=in_store(),
        dst=out_store(),
        radius=config["background"]["radius"],
        tile=config["tile"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps background {params.src:q} {params.dst:q} --radius {params.radius:q} "
        "--tile {params.tile:q} --stage {wildcards.stage:q}_bg > {log:q} 2>&1"
