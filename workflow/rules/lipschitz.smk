# Experiment 2: certified upper vs certified lower Lipschitz bounds of SN networks (each row names its methods).


rule lipschitz:
    output:
        mlp=f"{R}/lipschitz/mlp_bounds.csv",
        conv_layers=f"{R}/lipschitz/conv_layers.csv",
        conv_networks=f"{R}/lipschitz/conv_networks.csv",
        summary=f"{R}/lipschitz/lipschitz_summary.json",
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
        l=config["lipschitz"],
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/lipschitz.log",
    benchmark:
        f"{BENCH}/lipschitz.tsv"
    threads: config["threads"]
    priority: 10  # the longest single job, independent of training: start it first, not as the tail
    shell:
        "keras-sngan lipschitz --out-dir {params.out_dir} --threads {threads} "
        "--activations {params.l[activations]} --depths {params.l[depths]} --width {params.l[width]} "
        "--target-slope {params.l[target_slope]} --train-steps {params.l[train_steps]} "
        "--n-starts {params.l[n_starts]} --search-steps {params.l[search_steps]} "
        "--conv-image-size {params.l[conv][image_size]} --conv-channels {params.l[conv][channels]} "
        "--conv-base-channels {params.l[conv][base_channels]} --conv-n-starts {params.l[conv][n_starts]} "
        "--conv-search-steps {params.l[conv][search_steps]} "
        "--conv-power-iterations {params.l[conv][power_iterations]} > {log} 2>&1"
