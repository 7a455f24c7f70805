# The verdicts: results/claims.md (+ JSON), computed from the data by the
# documented rules in keras_sngan.poster.judging.claims.


# With `reuse` (the long profile) the run-length-independent experiments are
# read from the reused results directory, the gradient-flow context lines are
# left out, and the verdicts are shown next to that directory's own.


rule claims:
    input:
        variance=shared(rules.variance.output),
        lipschitz=shared(rules.lipschitz.output),
        metrics=[f"{run}/eval/metrics.json" for run in COMPARE_RUNS],
        flow=[] if REUSE else [f"{run}/layers.csv" for runs in GF_RUNS.values() for run in runs],
        overfitting=shared(rules.overfitting_table.output),
        robustness=[f"{R}/robustness.json"] if ROBUSTNESS else [],
        reference=[f"{run}/history.csv" for run in variant_runs(REFERENCE)] if REFERENCE else [],
        convergence=[f"{R}/tables/convergence.json"] if QUALITY else [],
        reused_claims=[f"{REUSE}/claims.json"] if REUSE else [],
    output:
        md=f"{R}/claims.md",
        json=f"{R}/claims.json",
        html=report(f"{R}/claims.html", category="0. Claims and verdicts", caption="../report/claims.rst"),
    params:
        runs=COMPARE_RUNS,
        pairs="" if REUSE else gradient_flow_pairs(),
        extra=lambda w, input: " ".join(
            f"--{option} {files[0]}"
            for option, files in (
                ("robustness", input.robustness),
                ("convergence", input.convergence),
                ("compare-with", input.reused_claims),
            )
            if files
        )
        + (f" --reference-runs {' '.join(variant_runs(REFERENCE))}" if REFERENCE else ""),
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
        "--out-md {output.md} --out-json {output.json} --out-html {output.html} {params.extra} > {log} 2>&1"
