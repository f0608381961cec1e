# The reviewer's path: `snakemake paper` writes <results>/paper/index.html and index.md
# (`make figures` runs it on the real data: results_real/paper/), every claim of the papers
# beside the number this run gives, with a verdict per row, the figures (PDF and PNG) and the
# real TIRF-SIM table.
# It reads everything the run computes, and the shared reference data beside the project.


localrules:
    paper,


rule paper_page:
    input:
        all_outputs(),
    output:
        html=f"{PAPER_DIR}/index.html",
        md=f"{PAPER_DIR}/index.md",
        claims=f"{PAPER_DIR}/claims.tsv",
    log:
        f"{RESULTS}/logs/paper.log",
    params:
        results=lambda w: RESULTS,
        data=PAPER_DATA,
        datasets=paper_datasets(),
        folder=lambda w, output: os.path.dirname(output.html),
    conda:
        "../../envs/dps.yaml"
    shell:
        "dps paper {params.folder:q} --results {params.results:q} --data {params.data:q} "
        "{params.datasets:q} --command-line 'snakemake paper' > {log:q} 2>&1"


rule paper:
    input:
        rules.paper_page.output.html,
