# Figures (PNG), each wrapped in report() for `snakemake --report report.html`.

FIG = f"{R}/figures"
# With `reuse`, the figures of the reused experiments are the reused directory's.
FIGURES = [f"{FIG}/training_behaviour.png", f"{FIG}/layer_stats.png"]
if not REUSE:
    FIGURES += [f"{FIG}/variance.png", f"{FIG}/lipschitz.png", f"{FIG}/gradient_flow.png", f"{FIG}/overfitting.png"]
if QUALITY:
    FIGURES.append(f"{FIG}/convergence.png")
if TOY_SETS:
    FIGURES.append(f"{FIG}/samples.png")
if IMAGE_SETS:
    FIGURES.append(f"{FIG}/image_samples.png")


rule figure_variance:
    input:
        summary=rules.variance.output.summary,
    output:
        report(f"{FIG}/variance.png", category="1. Initialization variance", caption="../report/variance.rst"),
    params:
        inputs=lambda w, input: os.path.dirname(input.summary),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/variance.log",
    benchmark:
        f"{BENCH}/figures/variance.tsv"
    shell:
        "keras-sngan figure variance --inputs {params.inputs} --out {output} > {log} 2>&1"


rule figure_lipschitz:
    input:
        summary=rules.lipschitz.output.summary,
    output:
        report(f"{FIG}/lipschitz.png", category="2. Lipschitz and activations", caption="../report/lipschitz.rst"),
    params:
        inputs=lambda w, input: os.path.dirname(input.summary),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/lipschitz.log",
    benchmark:
        f"{BENCH}/figures/lipschitz.tsv"
    shell:
        "keras-sngan figure lipschitz --inputs {params.inputs} --out {output} > {log} 2>&1"


rule figure_training:
    input:
        [f"{run}/{name}" for run in COMPARE_RUNS for name in ("history.csv", "gap.csv", "run.json")],
    output:
        report(f"{FIG}/training_behaviour.png", category="3. SN vs GP vs clipping", caption="../report/training.rst"),
    params:
        runs=COMPARE_RUNS,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/training.log",
    benchmark:
        f"{BENCH}/figures/training.tsv"
    shell:
        "keras-sngan figure training --inputs {params.runs} --out {output} > {log} 2>&1"


rule figure_layer_stats:
    input:
        [f"{run}/{name}" for run in COMPARE_RUNS for name in ("layers.csv", "run.json")],
    output:
        report(f"{FIG}/layer_stats.png", category="3. SN vs GP vs clipping", caption="../report/layers.rst"),
    params:
        runs=COMPARE_RUNS,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/layer_stats.log",
    benchmark:
        f"{BENCH}/figures/layer_stats.tsv"
    shell:
        "keras-sngan figure layers --inputs {params.runs} --out {output} > {log} 2>&1"


rule figure_samples:
    input:
        [f"{run}/eval/samples.npz" for run in COMPARE_RUNS if run.split("/")[-3] in TOYS],
    output:
        report(f"{FIG}/samples.png", category="3. SN vs GP vs clipping", caption="../report/samples.rst"),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/samples.log",
    benchmark:
        f"{BENCH}/figures/samples.tsv"
    shell:
        "keras-sngan figure samples --inputs {input} --out {output} > {log} 2>&1"


rule figure_image_samples:
    input:
        [f"{run}/eval/samples.npz" for run in COMPARE_RUNS if run.split("/")[-3] not in TOYS],
    output:
        report(f"{FIG}/image_samples.png", category="3. SN vs GP vs clipping", caption="../report/images.rst"),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/image_samples.log",
    benchmark:
        f"{BENCH}/figures/image_samples.tsv"
    shell:
        "keras-sngan figure images --inputs {input} --out {output} > {log} 2>&1"


rule figure_gradient_flow:
    input:
        [f"{run}/{name}" for runs in GF_RUNS.values() for run in runs for name in ("layers.csv", "run.json")],
    output:
        report(f"{FIG}/gradient_flow.png", category="4. Gradient flow", caption="../report/gradient_flow.rst"),
    params:
        pairs=gradient_flow_pairs(),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/gradient_flow.log",
    benchmark:
        f"{BENCH}/figures/gradient_flow.tsv"
    shell:
        "keras-sngan figure gradient-flow --inputs {params.pairs} --out {output} > {log} 2>&1"


rule figure_overfitting:
    input:
        rules.overfitting_table.output,
    output:
        report(f"{FIG}/overfitting.png", category="3. SN vs GP vs clipping", caption="../report/overfitting.rst"),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/overfitting.log",
    benchmark:
        f"{BENCH}/figures/overfitting.tsv"
    shell:
        "keras-sngan figure overfitting --inputs {input} --out {output} > {log} 2>&1"


rule figure_convergence:
    input:
        [f"{run}/{name}" for run in TOY_RUNS for name in ("quality.csv", "run.json")],
    output:
        report(f"{FIG}/convergence.png", category="3. SN vs GP vs clipping", caption="../report/convergence.rst"),
    params:
        runs=TOY_RUNS,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/figures/convergence.log",
    benchmark:
        f"{BENCH}/figures/convergence.tsv"
    shell:
        "keras-sngan figure convergence --inputs {params.runs} --out {output} > {log} 2>&1"
