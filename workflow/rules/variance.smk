# Experiment 1: Var((Wx)_i) = n s^2, and signal propagation through deep networks.


rule variance:
    output:
        check=f"{R}/variance/variance_check.csv",
        propagation=f"{R}/variance/propagation.csv",
        stability=f"{R}/variance/stability.csv",
        bound=f"{R}/variance/sn_bound.csv",
        summary=f"{R}/variance/variance_summary.json",
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
        v=config["variance"],
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/variance.log",
    benchmark:
        f"{BENCH}/variance.tsv"
    threads: config["threads"]
    priority: 5  # long and independent of training: start it first, not as the tail
    shell:
        "keras-sngan variance --out-dir {params.out_dir} --threads {threads} "
        "--widths {params.v[widths]} --s2 {params.v[s2]} --samples {params.v[samples]} "
        "--depths {params.v[depths]} --activations {params.v[activations]} "
        "--c-values {params.v[c_values]} --bsn-scale {params.v[bsn_scale]} "
        "--width {params.v[width]} --batch {params.v[batch]} > {log} 2>&1"
