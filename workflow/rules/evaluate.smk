# Final metrics of every comparison run, the summary table and the
# gradient-flow table.


rule classifier:
    output:
        model=f"{R}/classifiers/{{dataset}}.keras",
        meta=f"{R}/classifiers/{{dataset}}.json",
    log:
        f"{LOGS}/classifier/{{dataset}}.log",
    benchmark:
        f"{BENCH}/classifier/{{dataset}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan classifier --dataset {wildcards.dataset} --out {output.model} "
        "--threads {threads} > {log} 2>&1"


def _classifier_input(wildcards):
    if wildcards.dataset in TOYS:
        return []
    return f"{R}/classifiers/{wildcards.dataset}.keras"


rule evaluate:
    input:
        run=multiext(f"{R}/runs/compare/{{dataset}}/{{method}}/seed{{seed}}/", *RUN_FILES),
        classifier=_classifier_input,
    output:
        metrics=f"{R}/runs/compare/{{dataset}}/{{method}}/seed{{seed}}/eval/metrics.json",
        samples=f"{R}/runs/compare/{{dataset}}/{{method}}/seed{{seed}}/eval/samples.npz",
    params:
        run_dir=lambda w: f"{R}/runs/compare/{w.dataset}/{w.method}/seed{w.seed}",
        classifier=lambda w, input: f"--classifier {input.classifier}" if input.classifier else "",
    log:
        f"{LOGS}/evaluate/{{dataset}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{dataset}}/{{method}}/seed{{seed}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan evaluate --run-dir {params.run_dir} --out-dir {params.run_dir}/eval "
        "{params.classifier} --threads {threads} > {log} 2>&1"


rule summary_table:
    input:
        [f"{run}/eval/metrics.json" for run in COMPARE_RUNS],
    output:
        csv=f"{R}/tables/summary.csv",
        md=f"{R}/tables/summary.md",
    log:
        f"{LOGS}/summary_table.log",
    benchmark:
        f"{BENCH}/summary_table.tsv"
    shell:
        "keras-sngan summarize --metrics {input} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule gradient_flow_table:
    input:
        [f"{run}/layers.csv" for runs in GF_RUNS.values() for run in runs],
    output:
        f"{R}/tables/gradient_flow.csv",
    params:
        pairs=gradient_flow_pairs(),
        iterations=GF["profile_iterations"],
    log:
        f"{LOGS}/gradient_flow_table.log",
    benchmark:
        f"{BENCH}/gradient_flow_table.tsv"
    shell:
        "keras-sngan gradient-flow --runs {params.pairs} --iterations {params.iterations} "
        "--out {output} > {log} 2>&1"
