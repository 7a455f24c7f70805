# Claim 2b: can a critic overfit a small training set, and does GP's more?
# One job per (cell, method label) with config `threads` (1 by default) so the jobs run in parallel.


rule overfit:
    output:
        f"{R}/overfitting/{{cell}}/{{label}}.csv",
    params:
        args=overfit_args,
    wildcard_constraints:
        cell="|".join(OVERFIT_CELLS) if OVERFIT_CELLS else "none",
        label=r"clip|sn|gp[0-9.e+-]*",
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/overfitting/{{cell}}/{{label}}.log",
    benchmark:
        f"{BENCH}/overfitting/{{cell}}/{{label}}.tsv"
    threads: config["threads"]
    shell:
        "keras-sngan overfit --out {output} --threads {threads} {params.args} > {log} 2>&1"


rule overfitting_table:
    input:
        OVERFIT_FILES,
    output:
        f"{R}/tables/overfitting.csv",
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/overfitting_table.log",
    benchmark:
        f"{BENCH}/overfitting_table.tsv"
    shell:
        "keras-sngan overfit-table --inputs {input} --out {output} > {log} 2>&1"
