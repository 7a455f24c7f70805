# Final metrics of every comparison run, the summary table and the
# gradient-flow table.


rule classifier:
    output:
        model=f"{R}/classifiers/{{dataset}}.keras",
        meta=f"{R}/classifiers/{{dataset}}.json",
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/classifier/{{dataset}}.log",
    benchmark:
        f"{BENCH}/classifier/{{dataset}}.tsv"
    threads: config["threads"]
    priority: 5  # the digits evaluation waits for it: train it early
    shell:
        "keras-sngan classifier --dataset {wildcards.dataset} --out {output.model} "
        "--threads {threads} > {log} 2>&1"


rule evaluate:
    """All seeds and methods of one dataset in one job (one TensorFlow start-up)."""
    input:
        runs=lambda w: [f"{run}/{name}" for run in dataset_runs(w) for name in RUN_FILES],
        classifier=classifier_input,
    output:
        metrics=[f"{R}/runs/compare/{{dataset}}/{m}/seed{s}/eval/metrics.json" for m in CMP["methods"] for s in CMP["seeds"]],
        samples=[f"{R}/runs/compare/{{dataset}}/{m}/seed{s}/eval/samples.npz" for m in CMP["methods"] for s in CMP["seeds"]],
    params:
        runs=dataset_runs,
        classifier=lambda w, input: f"--classifier {input.classifier}" if input.classifier else "",
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/evaluate/{{dataset}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{dataset}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan evaluate --run-dirs {params.runs} {params.classifier} --threads {threads} > {log} 2>&1"


rule summary_table:
    input:
        [f"{run}/eval/metrics.json" for run in COMPARE_RUNS],
    output:
        csv=f"{R}/tables/summary.csv",
        md=f"{R}/tables/summary.md",
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/summary_table.log",
    benchmark:
        f"{BENCH}/summary_table.tsv"
    shell:
        "keras-sngan summarize --metrics {input} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule training_curves:
    input:
        [f"{run}/{name}" for run in COMPARE_RUNS for name in ("history.csv", "gap.csv", "run.json")],
    output:
        f"{R}/tables/training_curves.csv",
    params:
        runs=COMPARE_RUNS,
        every=CMP["stats_every"],
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/training_curves.log",
    benchmark:
        f"{BENCH}/training_curves.tsv"
    shell:
        "keras-sngan curves --runs {params.runs} --every {params.every} --out {output} > {log} 2>&1"


rule gradient_flow_table:
    input:
        [f"{run}/layers.csv" for runs in GF_RUNS.values() for run in runs],
    output:
        f"{R}/tables/gradient_flow.csv",
    params:
        pairs=gradient_flow_pairs(),
        iterations=GF["profile_iterations"],
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/gradient_flow_table.log",
    benchmark:
        f"{BENCH}/gradient_flow_table.tsv"
    shell:
        "keras-sngan gradient-flow --runs {params.pairs} --iterations {params.iterations} "
        "--out {output} > {log} 2>&1"
