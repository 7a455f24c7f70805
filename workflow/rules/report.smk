# The verdicts: results/claims.md (+ JSON), computed from the data by the
# documented rules in keras_sngan.experiments.claims.


rule claims:
    input:
        variance=rules.variance.output,
        lipschitz=rules.lipschitz.output,
        metrics=[f"{run}/eval/metrics.json" for run in COMPARE_RUNS],
        flow=[f"{run}/layers.csv" for runs in GF_RUNS.values() for run in runs],
        overfitting=rules.overfitting_table.output,
    output:
        md=f"{R}/claims.md",
        json=f"{R}/claims.json",
        html=report(f"{R}/claims.html", category="0. Claims and verdicts", caption="../report/claims.rst"),
    params:
        runs=COMPARE_RUNS,
        pairs=gradient_flow_pairs(),
        window=config["claims"]["window"],
        variance_width=config["variance"]["width"],
        variance=lambda w, input: os.path.dirname(input.variance[0]),
        lipschitz=lambda w, input: os.path.dirname(input.lipschitz[0]),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/claims.log",
    benchmark:
        f"{BENCH}/claims.tsv"
    shell:
        "keras-sngan claims --variance-dir {params.variance} --lipschitz-dir {params.lipschitz} "
        "--runs {params.runs} --gradient-flow {params.pairs} --window {params.window} "
        "--overfitting {input.overfitting} --variance-width {params.variance_width} "
        "--out-md {output.md} --out-json {output.json} --out-html {output.html} > {log} 2>&1"
