# Robustness runs (config `robustness`, the long profile): each variant reruns
# the comparison with one factor changed (penalty weight, width, ...), only for
# the methods it names (the others are the profile's own runs, or those of the
# variant it is `around`). One job per (variant, dataset, method) cell, trained
# like `train_compare`. `reference`: see keras_sngan.poster.judging.robustness.

for _name, _spec in VARIANTS.items():

    rule:
        name:
            f"train_variant_{_name}"
        output:
            [f"{R}/runs/variants/{_name}/{{dataset}}/{{method}}/seed{s}/{f}" for s in variant_seeds(_spec) for f in COMPARE_FILES],
        wildcard_constraints:
            dataset="|".join(TOY_SETS) or "none",
            method="|".join(_spec.get("methods", CMP["methods"])),
        params:
            spec=lambda w, name=_name: variant_spec(name, w.dataset, w.method).to_cli(),
        conda:
            "../../environment.yml"
        log:
            f"{LOGS}/train/variants/{_name}/{{dataset}}/{{method}}.log",
        benchmark:
            f"{BENCH}/train/variants/{_name}/{{dataset}}/{{method}}.tsv"
        threads: config["threads"]
        shell:
            "keras-sngan train {params.spec} --threads {threads} 2>&1 | tee {log}"


rule convergence:
    """The convergence criterion on the comparison runs' quality records (profiles with compare.quality_samples)."""
    input:
        [f"{run}/{name}" for run in TOY_RUNS for name in ("quality.csv", "run.json")],
    output:
        csv=f"{R}/tables/convergence.csv",
        md=f"{R}/tables/convergence.md",
        json=f"{R}/tables/convergence.json",
    params:
        runs=TOY_RUNS,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/convergence.log",
    benchmark:
        f"{BENCH}/convergence.tsv"
    shell:
        "keras-sngan convergence --runs {params.runs} --out-csv {output.csv} --out-md {output.md} "
        "--out-json {output.json} > {log} 2>&1"


rule robustness:
    """Every training verdict decided again per variant, shorter budget and seed bootstrap."""
    input:
        runs=[f"{run}/{name}" for run in COMPARE_RUNS for name in ("history.csv", "run.json")],
        variants=[f"{run}/{name}" for v in VARIANTS for run in variant_runs(v) for name in ("history.csv", "run.json")],
        overfitting=shared(rules.overfitting_table.output),
    output:
        json=f"{R}/robustness.json",
        md=f"{R}/robustness.md",
    params:
        runs=COMPARE_RUNS,
        variants=" ".join(f"--variant {v} {' '.join(variant_runs(v))}" for v in VARIANTS),
        around=" ".join(f"--around {v} {s['around']}" for v, s in VARIANTS.items() if s.get("around")),
        reference=f"--reference {REFERENCE}" if REFERENCE else "",
        budgets=" ".join(map(str, ROB.get("budgets", []))),
        bootstrap=ROB.get("bootstrap", 200),
        window=config["claims"]["window"],
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/robustness.log",
    benchmark:
        f"{BENCH}/robustness.tsv"
    shell:
        "keras-sngan robustness --runs {params.runs} {params.variants} {params.around} {params.reference} "
        "--budgets {params.budgets} "
        "--bootstrap {params.bootstrap} --window {params.window} --overfitting {input.overfitting} "
        "--out-json {output.json} --out-md {output.md} > {log} 2>&1"
