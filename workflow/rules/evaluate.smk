# Evaluation: metrics of every stage against ground truth (where one exists) and by
# decorrelation resolution; figures; final images as OME-Zarr and TIFF.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        f"{RESULTS}/{{ds}}/{{level}}/metrics.tsv",
    log:
        f"{RESULTS}/logs/{{ds}}/evaluate_{{level}}.log",
    params:
        stages=stage_options,
        n_r=config["evaluate"]["n_r"],
        n_g=config["evaluate"]["n_g"],
        max_region=config["evaluate"]["max_region"],
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps evaluate {output:q} {params.stages:q} --level {wildcards.level:q} "
        "--n-r {params.n_r:q} --n-g {params.n_g:q} --max-region {params.max_region:q} "
        "> {log:q} 2>&1"


rule stage_figure:
    input:
        unpack(evaluate_inputs),
        metrics=f"{RESULTS}/{{ds}}/{{level}}/metrics.tsv",
    output:
        report(
            f"{RESULTS}/{{ds}}/{{level}}/stages/{{group}}.png",
            caption="../report/stages.rst",
            category="Stages side by side",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "level": "{level}", "stages": "{group}"},
        ),
    log:
        f"{RESULTS}/logs/{{ds}}/stage_figure_{{level}}_{{group}}.log",
    params:
        stages=stage_figure_options,
        n=config["evaluate"]["figure_images"],
        title=lambda w: f"{w.ds}, level {w.level}: {w.group}",
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps figures {output:q} {params.stages:q} --level {wildcards.level:q} "
        "--n-images {params.n:q} --metrics {input.metrics:q} --title {params.title:q} "
        "> {log:q} 2>&1"


rule metrics_table:
    input:
        lambda w: [f"{RESULTS}/{w.ds}/{level}/metrics.tsv" for level in levels(w.ds)],
    output:
        table=report(
            f"{RESULTS}/{{ds}}/metrics.tsv",
            caption="../report/metrics_table.rst",
            category="Metrics",
            labels={"dataset": "{ds}", "table": "every image"},
        ),
        summary=report(
            f"{RESULTS}/{{ds}}/metrics_summary.tsv",
            caption="../report/metrics_summary.rst",
            category="Metrics",
            labels={"dataset": "{ds}", "table": "mean per stage"},
        ),
        figure=report(
            f"{RESULTS}/{{ds}}/metrics.png",
            caption="../report/metrics_figure.rst",
            category="Metrics",
            labels={"dataset": "{ds}", "table": "figure"},
        ),
        html=report(
            f"{RESULTS}/{{ds}}/metrics_summary.html",
            caption="../report/metrics_summary.rst",
            category="Metrics",
            labels={"dataset": "{ds}", "table": "mean per stage (tables)"},
        ),
    log:
        f"{RESULTS}/logs/{{ds}}/metrics_table.log",
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps summarise {output.table:q} {input:q} --summary {output.summary:q} "
        "--figure {output.figure:q} --summary-html {output.html:q} > {log:q} 2>&1"


rule export:
    input:
        store(f"{RESULTS}/{{ds}}/{{level}}/{{stage}}.zarr"),
    output:
        ome=store(f"{RESULTS}/{{ds}}/{{level}}/final/{{stage}}.ome.zarr"),
        tiff=f"{RESULTS}/{{ds}}/{{level}}/final/{{stage}}.tif",
    log:
        f"{RESULTS}/logs/{{ds}}/export_{{level}}_{{stage}}.log",
    params:
        src=in_store(),
        ome=out_store("ome"),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps export {params.src:q} --ome-zarr {params.ome:q} --tiff {output.tiff:q} > {log:q} 2>&1"
