"""keras-sngan: reproduce "Stabilizing GANs: A Case for Spectral Normalization".

    snakemake --cores all                                # default CPU profile
    snakemake --cores all --configfile config/test.yaml  # tiny CI run
    snakemake --cores 2 --configfile config/long.yaml    # long runs + robustness (results/long)
    snakemake --cores 8 --configfile config/paper.yaml   # GPU, papers' scale
    snakemake --report report.html                       # HTML report of the figures

Data flow: config -> rule -> `keras-sngan <command>` -> keras_sngan.experiments
-> files under config["results"]. The rules hold no science.
"""

import importlib.util
import os
import sys

from snakemake.utils import min_version, validate

min_version("8.0")


# A rerun after `kill -9` of snakemake itself needs no `snakemake --unlock`:
# every main process holds a shared flock for its lifetime, and one that can
# take it exclusively (no other run alive here) removes Snakemake's stale lock
# files (keras_sngan/experiments/locks.py). Loaded by path: importing the
# package would start TensorFlow in this process.
if workflow.is_main_process:
    _spec = importlib.util.spec_from_file_location(
        "keras_sngan_locks", os.path.join(workflow.basedir, "keras_sngan", "experiments", "locks.py")
    )
    _locks = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_locks)
    for _stale in _locks.hold_workflow_lock(".snakemake"):
        print(f"keras-sngan: removed the stale Snakemake lock {_stale} (its run is no longer alive)", file=sys.stderr)


configfile: "config/config.yaml"


validate(config, schema="config/schema.yaml")


# With `warm_start: true` every `keras-sngan` job forks from one warm process that has imported
# TensorFlow (about 6 s of CPU saved per job; keras_sngan/warm_start.py); SLURM jobs start cold.
# (The prefix replaces Snakemake's default one, bash strict mode, so it repeats it.)
_WARM = "1" if config["warm_start"] in (True, "true") else "0"
shell.prefix(f"set -euo pipefail; export KERAS_SNGAN_WARM_START={_WARM}; ")


include: "workflow/rules/common.smk"
include: "workflow/rules/variance.smk"
include: "workflow/rules/lipschitz.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/overfitting.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/robustness.smk"


rule all:
    input:
        [] if REUSE else rules.variance.output,
        [] if REUSE else rules.lipschitz.output,
        rules.summary_table.output,
        rules.training_curves.output,
        [] if REUSE else rules.gradient_flow_table.output,
        [] if REUSE else rules.overfitting_table.output,
        rules.convergence.output if QUALITY else [],
        rules.robustness.output if ROBUSTNESS else [],
        FIGURES,
        rules.claims.output,
    default_target: True
