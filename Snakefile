"""keras-sngan: reproduce "Stabilizing GANs: A Case for Spectral Normalization".

    snakemake --cores all                                # default CPU profile
    snakemake --cores all --configfile config/test.yaml  # tiny CI run
    snakemake --cores 2 --configfile config/long.yaml    # long runs + robustness (results/long)
    snakemake --cores 8 --configfile config/paper.yaml   # GPU, papers' scale
    snakemake --report report.html                       # HTML report of the figures

Data flow: config -> rule -> `keras-sngan <command>` -> keras_sngan.poster
-> files under config["results"]. The rules hold no science.
"""

import os
import shlex

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, schema="config/schema.yaml")


# `backend`: the Keras backend of every job (KERAS_BACKEND). With `warm_start: true` every
# `keras-sngan` job on TensorFlow forks from one warm process that has imported it (about 6 s of CPU
# saved per job; keras_sngan/poster/warm_start.py); SLURM jobs and other backends start cold.
# (The prefix replaces Snakemake's default one, bash strict mode, so it repeats it.)
BACKEND = config.get("backend", "tensorflow")
_WARM = "1" if config["warm_start"] in (True, "true") else "0"
# On JAX the jobs share XLA's compiled programs through JAX's persistent cache (in the results directory,
# so a fresh directory starts cold): the test profile's jobs took 2 min instead of 3 (docs/performance.md).
_JAX_CACHE = (f"export JAX_COMPILATION_CACHE_DIR={shlex.quote(os.path.join(os.path.abspath(config['results']), '.jax-cache'))} "
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0; "
              if BACKEND == "jax" else "")
# `image_arrays`: the directory of prepared TFDS image sets (<name>.npz), read by every job instead of TFDS.
_ARRAYS = (f"export KERAS_SNGAN_IMAGE_ARRAYS={shlex.quote(os.path.abspath(config['image_arrays']))}; "
           if config.get("image_arrays") else "")
shell.prefix(f"set -euo pipefail; export KERAS_BACKEND={BACKEND} KERAS_SNGAN_WARM_START={_WARM}; {_JAX_CACHE}{_ARRAYS}")


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
