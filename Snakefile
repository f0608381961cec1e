# dps: restore fluorescence microscopy images with the DPS framework.
# Run `snakemake --cores N` (profile: profiles/default, loaded by itself); see README.md.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


# trivial rules (a PNG copied, a table of a few rows, the target): run in the Snakemake
# process itself, never submitted to a cluster (profiles/slurm)
localrules:
    all,
    model_figure,
    metrics_table,


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/background.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/networks.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/paper.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
