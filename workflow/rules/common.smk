# Shared helpers: paths and per-run parameters, read from the validated config.

import importlib.util
import os
import sys


def _load(name, *path):
    """A module of the package by path: the workflow needs the standard library only, not the package's imports."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(workflow.basedir, "keras_sngan", *path))
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up
    spec.loader.exec_module(loaded)
    return loaded


# A rerun after `kill -9` of snakemake itself needs no `snakemake --unlock`:
# every main process holds a shared flock for its lifetime, and one that can
# take it exclusively (no other run alive here) removes Snakemake's stale lock
# files (keras_sngan/poster/plumbing/locks.py).
if workflow.is_main_process:
    for _stale in _load("keras_sngan_locks", "poster", "plumbing", "locks.py").hold_workflow_lock(".snakemake"):
        print(f"keras-sngan: removed the stale Snakemake lock {_stale} (its run is no longer alive)", file=sys.stderr)

# The training runs' settings: one RunSpec per job, built from the config (run_spec below).
RunSpec = _load("keras_sngan_run_spec", "poster", "running", "spec.py").RunSpec

R = config["results"]
LOGS = f"{R}/logs"
BENCH = f"{R}/benchmarks"
# BackupAndRestore directories: outside every declared output, so Snakemake
# never deletes them when a job fails, and a rerun resumes from them.
CKPT = f"{R}/checkpoints"
CMP = config["compare"]
GF = config["gradient_flow"]
TOYS = ("8gaussians", "25gaussians", "swissroll")


if not set(GF["profile_iterations"]) <= set(range(GF["iterations"] + 1)):
    raise ValueError(
        f"config: `gradient_flow.profile_iterations`={GF['profile_iterations']} must lie in "
        f"[0, gradient_flow.iterations={GF['iterations']}]."
    )

COMPARE_RUNS = [
    f"{R}/runs/compare/{d}/{m}/seed{s}"
    for d in CMP["datasets"]
    for m in CMP["methods"]
    for s in CMP["seeds"]
]
IMAGE_SETS = [d for d in CMP["datasets"] if d not in TOYS]
TOY_SETS = [d for d in CMP["datasets"] if d in TOYS]
TOY_RUNS = [f"{R}/runs/compare/{d}/{m}/seed{s}" for d in TOY_SETS for m in CMP["methods"] for s in CMP["seeds"]]
GF_CONFIGS = [f"clip{c:g}" for c in GF["clip_values"]] + list(GF["methods"])
GF_RUNS = {
    f"{label}": [f"{R}/runs/gradient_flow/{label}/seed{s}" for s in GF["seeds"]] for label in GF_CONFIGS
}
RUN_FILES = ("history.csv", "layers.csv", "gap.csv", "run.json", "critic.keras", "generator.keras")
# Comparison runs also record their sample quality when the profile asks for it (the long profile).
QUALITY = CMP.get("quality_samples", 0)
COMPARE_FILES = RUN_FILES + (("quality.csv",) if QUALITY else ())
if QUALITY and IMAGE_SETS:
    raise ValueError(
        f"config: `compare.quality_samples`={QUALITY} records W1 and modes of 2-d points: it needs toy "
        f"datasets only, received `compare.datasets`={CMP['datasets']} (image sets {IMAGE_SETS}); set it to 0."
    )
# Jobs that cannot run on the chosen backend are refused here, when the workflow is built.
IMAGE_ARRAYS = config.get("image_arrays")
# (Under --use-conda / apptainer the jobs run in another environment than this one: not checked here.)
_OWN_ENVIRONMENT = not getattr(getattr(workflow, "deployment_settings", None), "deployment_method", None)
if BACKEND == "tensorflow" and _OWN_ENVIRONMENT and importlib.util.find_spec("tensorflow") is None:
    raise ValueError(
        "config: `backend` is 'tensorflow', but TensorFlow is not installed in this environment "
        "(pip install 'keras-sngan[cpu]'); or run every job on JAX: --config backend=jax."
    )
for _dataset in IMAGE_SETS:
    if _dataset == "digits" or BACKEND == "tensorflow":
        continue
    _arrays = os.path.join(IMAGE_ARRAYS, f"{_dataset}.npz") if IMAGE_ARRAYS else None
    if _arrays is None or not os.path.isfile(_arrays):
        raise ValueError(
            f"config: the jobs train_compare, classifier and evaluate of {_dataset!r} read it through "
            f"tensorflow-datasets, which needs TensorFlow, and `backend` is {BACKEND!r}. Give it as a prepared "
            f"array file: on a machine with TensorFlow run `keras-sngan prepare-images --dataset {_dataset} "
            f"--out DIR/{_dataset}.npz`, then set `image_arrays: DIR`"
            + (f" ({_arrays} does not exist)." if _arrays else " in the config.")
        )

# The long profile reads the experiments that do not depend on the comparison's
# settings (variance, Lipschitz, overfitting, gradient flow) from this results
# directory instead of recomputing them.
REUSE = config.get("reuse")


def shared(paths):
    """The outputs of an experiment the profile may reuse: under `reuse` if set, else this profile's own."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    return [f"{REUSE}/{p[len(R) + 1:]}" if REUSE else p for p in paths]


def run_spec(where, section, method, seeds, out_dir, checkpoint_dir, **fixed):
    """The RunSpec of one training job (keras_sngan/poster/running/spec.py): every key of the config that names
    one of its settings, from `compare` (n_critic, epochs, ...), then `section` (a dataset's sizes), then
    `methods.<method>` (optimizer, constraint), then ``fixed``; checked whole when the workflow is built."""
    try:
        return RunSpec.from_settings(
            ("compare", CMP), section, (f"methods.{method}", config["methods"][method]), method=method, seeds=seeds, out_dir=out_dir,
            checkpoint_dir=checkpoint_dir, **fixed,
        )
    except ValueError as error:
        raise ValueError(f"config: the training runs of {where}: {error}") from None


def compare_spec(dataset, method, changes=None, out=None, ckpt=None, where="compare"):
    """One comparison cell (dataset, method): every seed of `compare.seeds`, or a robustness variant's run.

    ``changes``: a robustness variant's changes (`seeds`, toy `width`, `gp_weight`, `iterations`, `initializer`). On the 2-d
    toy sets the penalty weight of GP is ``compare.toy.gp_weight`` (gan_toy.py's 0.1), or the variant's;
    elsewhere ``methods.gp.gp_weight``.
    """
    changes = changes or {}
    toy = dataset in TOYS
    section = dict(CMP["toy"] if toy else CMP["images"])
    toy_gp_weight = section.pop("gp_weight", None)
    origin = "compare.toy" if toy else "compare.images"
    if changes and toy:  # a robustness variant's own width and length
        origin = where
        section.update({k: changes[k] for k in ("width", "iterations", "initializer") if k in changes})
    fixed = {"dataset": dataset}
    if toy and method == "gp":
        fixed["gp_weight"] = changes.get("gp_weight", toy_gp_weight)
    if not toy:
        fixed["quality_samples"] = 0  # refused above for image sets; the toy record only
    out = out or f"{R}/runs/compare/{dataset}/{method}/seed{{seed}}"
    ckpt = ckpt or f"{CKPT}/compare/{dataset}/{method}/seed{{seed}}"
    return run_spec(f"{where} ({dataset}, {method})", (origin, section), method, tuple(changes.get("seeds", CMP["seeds"])),
                    out, ckpt, **fixed)


def gradient_flow_spec(label):
    """One gradient-flow configuration (``clip<value>``, ``gp`` or ``sn``): every seed of `gradient_flow.seeds`."""
    method = "clip" if label.startswith("clip") else label
    fixed = {"clip_value": float(label[4:])} if method == "clip" else {}
    if method == "gp":  # the gradient-flow data is a toy set
        fixed["gp_weight"] = CMP["toy"]["gp_weight"]
    section = {k: v for k, v in GF.items() if k != "seeds"}
    return run_spec(f"gradient_flow ({label})", ("gradient_flow", section), method, tuple(GF["seeds"]),
                    f"{R}/runs/gradient_flow/{label}/seed{{seed}}", f"{CKPT}/gradient_flow/{label}/seed{{seed}}",
                    quality_samples=0, **fixed)


def gradient_flow_pairs():
    """LABEL=RUN_DIR arguments for every gradient-flow run."""
    return " ".join(f"{label}={run}" for label, runs in GF_RUNS.items() for run in runs)


def classifier_input(wildcards):
    """The cached feature classifier an image dataset's evaluation needs (none for toys)."""
    if wildcards.dataset in TOYS:
        return []
    return f"{R}/classifiers/{wildcards.dataset}.keras"


def dataset_runs(wildcards):
    """Comparison run directories of one dataset."""
    return [run for run in COMPARE_RUNS if run.split("/")[-3] == wildcards.dataset]


# Claim 2b's overfitting experiment: one job per (cell, method label), every seed in it.
OV = config["overfitting"]
if OV["iterations"] % OV["records"]:
    raise ValueError(
        f"config: `overfitting.iterations`={OV['iterations']} must be a multiple of "
        f"`overfitting.records`={OV['records']}."
    )
OVERFIT_CELLS = {f"{c['dataset']}-{c['train_size']}": c for c in OV["cells"]}
OVERFIT_JOBS = [
    (cell, method) for cell in OVERFIT_CELLS for method in OV["methods"]
] + [
    (cell, f"gp{w:g}")
    for cell, c in OVERFIT_CELLS.items()
    if c["dataset"] in TOYS and "gp" in OV["methods"]
    for w in OV["toy_extra_gp_weights"]
    if float(w) != float(config["methods"]["gp"].get("gp_weight", 10.0))
]
OVERFIT_FILES = [f"{R}/overfitting/{cell}/{label}.csv" for cell, label in OVERFIT_JOBS]


def method_args(method):
    """``keras-sngan overfit`` options of one method's optimizer and constraint (config `methods.<method>`)."""
    spec = dict(config["methods"][method])
    args = f"--optimizer {spec['optimizer']} --learning-rate {spec['learning_rate']}"
    for key in ("beta_1", "beta_2", "epsilon", "gp_weight", "clip_value", "sn_method"):
        if key in spec:
            args += f" --{key.replace('_', '-')} {spec[key]}"
    return args


def overfit_args(wildcards):
    """CLI options of one overfitting job: the cell, the method's classic settings, the experiment's sizes."""
    cell = OVERFIT_CELLS[wildcards.cell]
    label = wildcards.label
    method = "gp" if label.startswith("gp") else label
    args = method_args(method)
    if label != method:  # GP at another penalty weight (argparse keeps the last --gp-weight)
        args += f" --gp-weight {label[len(method):]}"
    return (
        f"--dataset {cell['dataset']} --train-size {cell['train_size']} --method {method} --label {label} "
        f"--seeds {' '.join(str(s) for s in OV['seeds'])} --iterations {OV['iterations']} "
        f"--records {OV['records']} --batch-size {OV['batch_size']} --n-critic {OV['n_critic']} "
        f"--width {OV['width']} --depth {OV['depth']} {args}"
    )


# Robustness variants (config `robustness`: the long profile's table; the default profile's width reference
# for claim 1): see workflow/rules/robustness.smk.
ROB = config.get("robustness") or {}
REFERENCE = ROB.get("reference")  # the variant at the reference's value of a setting the profile scales down


def _resolve_variants(variants):
    """Each variant's full changes: one with `around: other` takes the other's changes (but its methods), then its own."""
    out = {}
    for name, spec in variants.items():
        around = spec.get("around")
        if around is None:
            out[name] = dict(spec)
            continue
        if around not in variants or around == name or variants[around].get("around") is not None:
            raise ValueError(
                f"config: `robustness.variants.{name}.around`={around!r} must name another variant that is not "
                f"itself around one; variants: {sorted(variants)}."
            )
        inherited = {k: v for k, v in variants[around].items() if k != "methods"}
        out[name] = {**inherited, **spec}
    return out


# A profile layered on another drops an inherited variant by setting it to null (config/test.yaml drops
# config.yaml's width_512; config/paper.yaml, already at gan_toy.py's width, needs no reference).
VARIANTS = _resolve_variants({k: v for k, v in (ROB.get("variants") or {}).items() if v is not None})
if REFERENCE is not None and (REFERENCE not in VARIANTS or VARIANTS[REFERENCE].get("around") is not None):
    raise ValueError(
        f"config: `robustness.reference`={REFERENCE!r} must name a variant that is not around another; "
        f"variants: {sorted(VARIANTS)}."
    )


ROBUSTNESS = bool(VARIANTS or ROB.get("budgets"))  # is there a robustness table to compute?


for _name, _spec in VARIANTS.items():
    _iterations = _spec.get("iterations", CMP["toy"]["iterations"])
    if _iterations > CMP["toy"]["iterations"]:
        raise ValueError(
            f"config: `robustness.variants.{_name}.iterations`={_iterations} must not exceed "
            f"`compare.toy.iterations`={CMP['toy']['iterations']} (a variant is judged against the profile's runs "
            "truncated to its length)."
        )
    # keras_sngan.poster.judging.robustness.judged_claims, checked before any job starts. A variant that stops
    # before the runs end, at no budget, judges claim 1 only, so it must reach the end of claim 1's window.
    _window_end = config["claims"]["window"][1]
    if (_spec.get("around") is None and _iterations < CMP["toy"]["iterations"]
            and _iterations not in ROB.get("budgets", []) and _iterations < _window_end):
        raise ValueError(
            f"config: `robustness.variants.{_name}.iterations`={_iterations} stops before the profile's runs "
            f"(`compare.toy.iterations`={CMP['toy']['iterations']}), at none of `robustness.budgets`="
            f"{ROB.get('budgets', [])} and before the end of `claims.window`={config['claims']['window']}: no "
            f"claim could be judged on its runs."
        )


def variant_seeds(spec):
    return spec.get("seeds", CMP["seeds"])


def variant_runs(name):
    """Every run directory of a variant: its own cells."""
    spec = VARIANTS[name]
    return [
        f"{R}/runs/variants/{name}/{d}/{m}/seed{s}"
        for d in TOY_SETS
        for m in spec.get("methods", CMP["methods"])
        for s in variant_seeds(spec)
    ]


def variant_spec(name, dataset, method):
    """One cell of a robustness variant: the comparison's cell with the variant's changes."""
    return compare_spec(
        dataset, method, VARIANTS[name], out=f"{R}/runs/variants/{name}/{dataset}/{method}/seed{{seed}}",
        ckpt=f"{CKPT}/variants/{name}/{dataset}/{method}/seed{{seed}}", where=f"robustness.variants.{name}",
    )


# Every training job's RunSpec, built (and so checked whole) when the workflow is, before any job starts.
TRAIN_SPECS = (
    [compare_spec(d, m) for d in CMP["datasets"] for m in CMP["methods"]]
    + [gradient_flow_spec(label) for label in GF_CONFIGS]
    + [variant_spec(n, d, m) for n, v in VARIANTS.items() for d in TOY_SETS for m in v.get("methods", CMP["methods"])]
)
