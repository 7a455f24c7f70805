"""keras-sngan: reproduce "Stabilizing GANs: A Case for Spectral Normalization".

    snakemake --cores 4                                  # default CPU profile (<= 20 min)
    snakemake --cores 4 --configfile config/test.yaml    # tiny CI run
    snakemake --cores 8 --configfile config/paper.yaml   # GPU, papers' scale
    snakemake --report report.html                       # HTML report of the figures

Data flow: config -> rule -> `keras-sngan <command>` -> keras_sngan.experiments
-> files under config["results"]. The rules hold no science.
"""

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, schema="config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/variance.smk"
include: "workflow/rules/lipschitz.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/overfitting.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.variance.output,
        rules.lipschitz.output,
        rules.summary_table.output,
        rules.training_curves.output,
        rules.gradient_flow_table.output,
        rules.overfitting_table.output,
        FIGURES,
        rules.claims.output,
    default_target: True
