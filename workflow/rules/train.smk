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
    seed=r"\d+",
    config="|".join(GF_CONFIGS) if GF_CONFIGS else "none",


rule train_compare:
    output:
        multiext(f"{R}/runs/compare/{{dataset}}/{{method}}/seed{{seed}}/", *RUN_FILES),
    params:
        out_dir=lambda w: f"{R}/runs/compare/{w.dataset}/{w.method}/seed{w.seed}",
        checkpoint=lambda w: f"{CKPT}/compare/{w.dataset}/{w.method}/seed{w.seed}",
        args=compare_args,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/train/compare/{{dataset}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/compare/{{dataset}}/{{method}}/seed{{seed}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan train --out-dir {params.out_dir} --checkpoint-dir {params.checkpoint} "
        "--threads {threads} {params.args} 2>&1 | tee {log}"


rule train_gradient_flow:
    output:
        multiext(f"{R}/runs/gradient_flow/{{config}}/seed{{seed}}/", *RUN_FILES),
    params:
        out_dir=lambda w: f"{R}/runs/gradient_flow/{w.config}/seed{w.seed}",
        checkpoint=lambda w: f"{CKPT}/gradient_flow/{w.config}/seed{w.seed}",
        args=gradient_flow_args,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/train/gradient_flow/{{config}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/gradient_flow/{{config}}/seed{{seed}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan train --out-dir {params.out_dir} --checkpoint-dir {params.checkpoint} "
        "--threads {threads} {params.args} 2>&1 | tee {log}"
