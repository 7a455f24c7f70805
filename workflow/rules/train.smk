# Experiments 3 and 4: WGAN training runs. Progress: one Keras line per epoch
# (tee'd to the terminal and the log). After every epoch a run writes a
# crash-safe checkpoint under {CKPT}, which is not a declared output (Snakemake
# deletes the outputs of a failed or interrupted job, never the checkpoint).
# Rerunning the same snakemake command after Ctrl-C or a killed job resumes
# the run from its last complete epoch, with the same numbers as an
# uninterrupted run (tests/test_pipeline_resume.py). That includes kill -9 of
# snakemake itself: the rerun removes the dead run's Snakemake locks (see the
# Snakefile), and a training job that outlived it keeps the checkpoint
# directory to itself until it exits (the rerun's job waits for it).


wildcard_constraints:
    dataset="|".join(CMP["datasets"]),
    method="clip|gp|sn",
    config="|".join(GF_CONFIGS) if GF_CONFIGS else "none",


# One job per (dataset, method) cell trains all of its seeds, one after the
# other in one process: TensorFlow starts, and the training step is traced,
# once per cell instead of once per seed. Each seed still has its own output
# directory and checkpoint directory, and its outputs equal those of the same
# seed trained alone (tests/test_train_seeds.py). A cell killed in its second
# seed resumes there: the finished seed kept its final checkpoint, so it only
# rewrites its outputs.
rule train_compare:
    output:
        [f"{R}/runs/compare/{{dataset}}/{{method}}/seed{s}/{name}" for s in CMP["seeds"] for name in COMPARE_FILES],
    params:
        spec=lambda w: compare_spec(w.dataset, w.method).to_cli(),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/train/compare/{{dataset}}/{{method}}.log",
    benchmark:
        f"{BENCH}/train/compare/{{dataset}}/{{method}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan train {params.spec} --threads {threads} 2>&1 | tee {log}"


rule train_gradient_flow:
    output:
        [f"{R}/runs/gradient_flow/{{config}}/seed{s}/{name}" for s in GF["seeds"] for name in RUN_FILES],
    params:
        spec=lambda w: gradient_flow_spec(w.config).to_cli(),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/train/gradient_flow/{{config}}.log",
    benchmark:
        f"{BENCH}/train/gradient_flow/{{config}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan train {params.spec} --threads {threads} 2>&1 | tee {log}"
