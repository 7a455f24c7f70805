"""``keras-sngan``: run the poster's experiments from the command line.

Every subcommand calls one function of ``keras_sngan.poster``;
the Snakemake pipeline calls these subcommands, and you can run any of them
by hand with the same parameters. ``keras-sngan <command> --help`` lists the
options.

Subcommands:

- ``variance``: initialization variance and signal propagation (claim 5).
- ``lipschitz``: certified vs searched Lipschitz bounds of SN networks (claim 4).
- ``train``: one WGAN run (clip / gp / sn) with per-iteration diagnostics;
  rerunning the same command after a kill resumes it exactly.
- ``classifier``: train the cached digits feature classifier.
- ``evaluate``: final metrics and samples of a trained run.
- ``gradient-flow``: per-layer gradient-norm table of deep-critic runs.
- ``summarize``: summary table (CSV + Markdown) of the final metrics.
- ``curves``: per-iteration metrics over seeds of the comparison runs (compact CSV).
- ``figure``: draw one figure (``variance``, ``lipschitz``, ``training``,
  ``layers``, ``samples``, ``images``, ``gradient-flow``, ``overfitting``).
- ``claims``: verdicts on the poster's claims (``claims.md`` + JSON + HTML).
- ``overfit``: one cell of the overfitting experiment (claim 2b), every seed.
- ``overfit-table``: concatenate the overfitting cells into one table.
- ``prepare-images``: write a TFDS image set's splits to one array file, which
  every backend reads without TensorFlow (``image_arrays`` in the config).
- ``agreement``: does a reproduced results directory agree with the committed
  one (claims' verdicts, headline metrics within the seeds' spread)? Exit
  status 0 if it agrees, 1 if anything differs (listed on stdout). Needs
  only json / numpy / pandas.

Example::

    keras-sngan train --out-dir runs/8g-sn --dataset 8gaussians --method sn \\
        --seed 0 --iterations 500 --batch-size 256 --width 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_variance(sub):
    p = sub.add_parser("variance", help="initialization variance and signal propagation")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--widths", type=int, nargs="+", required=True, help="input sizes n for Var((Wx)_i)")
    p.add_argument("--s2", type=float, nargs="+", required=True, help="weight variances s^2")
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--depths", type=int, nargs="+", required=True)
    p.add_argument("--activations", nargs="+", default=["relu", "leaky_relu"])
    p.add_argument("--c-values", type=float, nargs="+", default=[0.25, 1, 2, 4], help="s^2 = c / n")
    p.add_argument("--bsn-scale", type=float, required=True)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="BLAS / OpenMP threads (default: the library's)")


def _add_lipschitz(sub):
    p = sub.add_parser("lipschitz", help="Lipschitz bounds of SN networks by activation and depth")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--activations", nargs="+", default=["relu", "leaky_relu", "gelu", "swish"])
    p.add_argument("--depths", type=int, nargs="+", required=True)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--target-slope", type=float, default=3.0)
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--n-starts", type=int, default=32)
    p.add_argument("--search-steps", type=int, default=100)
    p.add_argument("--conv-image-size", type=int, default=16)
    p.add_argument("--conv-channels", type=int, default=3)
    p.add_argument("--conv-base-channels", type=int, default=16)
    p.add_argument("--conv-n-starts", type=int, default=8)
    p.add_argument("--conv-search-steps", type=int, default=50)
    p.add_argument("--conv-power-iterations", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)


def _add_train(sub):
    from keras_sngan.poster.running.spec import RunSpec

    p = sub.add_parser("train", help="train one WGAN with per-iteration diagnostics, every seed given")
    RunSpec.add_arguments(p)  # one option per setting of the run specification


def _add_simple(sub):
    p = sub.add_parser("classifier", help="train the cached feature classifier of an image dataset")
    p.add_argument("--out", required=True, help="path ending in .keras")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--threads", type=int, default=None)

    p = sub.add_parser("evaluate", help="final metrics of trained runs (written to <run>/eval/)")
    p.add_argument("--run-dirs", nargs="+", required=True)
    p.add_argument("--classifier", default=None)
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)

    p = sub.add_parser("gradient-flow", help="per-layer gradient-norm table of deep-critic runs")
    p.add_argument("--runs", nargs="+", required=True, help="LABEL=RUN_DIR pairs")
    p.add_argument("--iterations", type=int, nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("curves", help="training curves over seeds (compact table)")
    p.add_argument("--runs", nargs="+", required=True, help="compare run directories")
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--out", required=True)

    p = sub.add_parser("summarize", help="summary table of final metrics")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json files")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)

    p = sub.add_parser("figure", help="draw one figure")
    p.add_argument("name", help="variance, lipschitz, training, layers, samples, images, gradient-flow or overfitting")
    p.add_argument("--inputs", nargs="+", required=True, help="input directories or files")
    p.add_argument("--out", required=True)

    p = sub.add_parser("claims", help="verdicts on the poster's claims")
    p.add_argument("--variance-dir", required=True)
    p.add_argument("--lipschitz-dir", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="compare run directories (with eval/)")
    p.add_argument("--gradient-flow", nargs="*", default=[], help="LABEL=RUN_DIR pairs (context lines of claim 1)")
    p.add_argument("--window", type=int, nargs=2, default=[150, 250], help="iterations of 'about iteration 200'")
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-html", default=None, help="also write the verdicts as HTML (snakemake --report)")
    p.add_argument("--overfitting", default=None, help="the overfitting experiment's table (claim 2b)")
    p.add_argument("--variance-width", type=int, default=None, help="layer width of the variance experiment (rule 5's tolerance)")
    p.add_argument("--robustness", default=None, help="robustness.json of these runs (holds in k of n, fragile)")
    p.add_argument("--convergence", default=None, help="convergence.json of these runs")
    p.add_argument("--compare-with", default=None, help="another profile's claims.json, shown side by side")
    p.add_argument("--reference-runs", nargs="+", default=None,
                   help="run directories of the robustness table's reference (claims decided there)")


def _add_long(sub):
    p = sub.add_parser("convergence", help="did the long runs converge? (criterion on their quality.csv records)")
    p.add_argument("--runs", nargs="+", required=True, help="compare run directories with quality.csv")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-json", default=None)

    p = sub.add_parser("robustness", help="every verdict decided again one factor at a time")
    p.add_argument("--runs", nargs="+", required=True, help="the profile's comparison run directories (the base)")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "RUN_DIR"),
                   help="a variant's name and its own run directories (repeat per variant)")
    p.add_argument("--around", nargs=2, action="append", default=[], metavar=("NAME", "CENTRE"),
                   help="variant NAME changes one factor around variant CENTRE (repeat per variant)")
    p.add_argument("--reference", default=None,
                   help="the variant at the reference's value of a setting the profile scales down")
    p.add_argument("--budgets", type=int, nargs="*", default=[], help="shorter iteration budgets to judge the runs at")
    p.add_argument("--window", type=int, nargs=2, default=[150, 250], help="iterations of 'about iteration 200'")
    p.add_argument("--overfitting", default=None, help="the overfitting experiment's table (claims 2b and 3)")
    p.add_argument("--bootstrap", type=int, default=200, help="seed resamples (0: none)")
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-md", required=True)


def _add_overfit(sub):
    p = sub.add_parser("overfit", help="one cell of the overfitting experiment (claim 2b), every seed")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--dataset", required=True, help="digits or a toy set")
    p.add_argument("--train-size", required=True, help="training-set size or 'all' (digits)")
    p.add_argument("--method", required=True, help="clip, gp or sn")
    p.add_argument("--label", default=None, help="method label in the table (default: the method)")
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--records", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--sn-method", default="reshape")
    p.add_argument("--optimizer", default="adam", help="adam or rmsprop")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--beta-1", type=float, default=0.5)
    p.add_argument("--beta-2", type=float, default=0.9)
    p.add_argument("--epsilon", type=float, default=None,
                   help="optimizer epsilon (default: Keras' own, 1e-7; gan_toy.py's TF1 optimizers: 1e-10 RMSprop, 1e-8 Adam)")
    p.add_argument("--gp-weight", type=float, default=10.0)
    p.add_argument("--clip-value", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None)

    p = sub.add_parser("overfit-table", help="concatenate the overfitting cells into one table")
    p.add_argument("--inputs", nargs="+", required=True, help="cell CSVs")
    p.add_argument("--out", required=True)


def _add_prepare(sub):
    p = sub.add_parser("prepare-images", help="write a TFDS image set as an array file (read without TensorFlow)")
    p.add_argument("--dataset", required=True, help="a TFDS image set, e.g. mnist or cifar10")
    p.add_argument("--out", required=True, help="the .npz file to write (the pipeline reads <image_arrays>/<dataset>.npz)")
    p.add_argument("--data-dir", default=None, help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--download", action="store_true", help="let TFDS download the data (needs network)")


def _add_agreement(sub):
    p = sub.add_parser("agreement", help="does a reproduced results directory agree with the committed one?")
    p.add_argument("--committed", default="results", help="the committed results directory (default: results)")
    p.add_argument("--reproduced", required=True, help="the directory a reproduction wrote (e.g. reproduction)")
    p.add_argument("--out", default=None, help="Markdown report (a JSON twin is written next to it)")


BACKENDS = ("tensorflow", "jax", "torch")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-sngan", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend of the command (default: $KERAS_BACKEND, else Keras' default, tensorflow); "
             "give it before the command: keras-sngan --backend jax train ...",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_variance(sub)
    _add_lipschitz(sub)
    _add_train(sub)
    _add_simple(sub)
    _add_overfit(sub)
    _add_long(sub)
    _add_prepare(sub)
    _add_agreement(sub)
    return parser


def _pairs(items):
    labels, paths = [], []
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected LABEL=RUN_DIR, received {item!r}.")
        label, path = item.split("=", 1)
        labels.append(label)
        paths.append(path)
    return labels, paths


# Commands that build or load models; the others only read tables and draw figures,
# and start no deep-learning backend (`import keras_sngan` imports no Keras).
BACKEND_COMMANDS = ("lipschitz", "train", "classifier", "evaluate", "overfit", "prepare-images")


def select_backend(backend: str | None) -> None:
    """Make ``backend`` the Keras backend of this process (``KERAS_BACKEND``), before Keras is imported.

    ``None`` keeps ``$KERAS_BACKEND`` (else Keras' default, tensorflow).

    Raises:
        ValueError: Keras is already imported with another backend.
    """
    if backend is None:
        return
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise ValueError(
            f"`--backend`={backend!r}, but this process already runs Keras on {keras.backend.backend()!r}; "
            f"set KERAS_BACKEND={backend} before the command starts."
        )
    os.environ["KERAS_BACKEND"] = backend


def _dataset_missing(error) -> bool:
    """Whether ``error`` says a dataset is not there (one line on stderr, not a traceback)."""
    tfds = sys.modules.get("keras_sngan.datasets.tfds")
    return tfds is not None and isinstance(error, tfds.DatasetNotAvailableError)


def _error(command, error, notes=True) -> int:
    """Print a command's error (and its notes, e.g. which seed of a several-seed run failed); exit status 2."""
    print(f"keras-sngan {command}: error: {error}", file=sys.stderr)
    for note in getattr(error, "__notes__", []) if notes else ():
        print(note, file=sys.stderr)
    return 2


def run(args) -> dict | None:
    """Dispatch parsed arguments to the library; return what it returns."""
    from keras_sngan import runtime

    if args.command == "variance":
        if args.threads is not None:
            runtime.limit_threads(args.threads)
        from keras_sngan.poster.running import variance

        return variance.run(
            args.out_dir, args.widths, args.s2, args.samples, args.depths, args.activations,
            args.c_values, args.bsn_scale, width=args.width, batch=args.batch, seed=args.seed,
        )
    if args.command == "lipschitz":
        runtime.configure(args.threads, args.seed)
        from keras_sngan.poster.running import lipschitz_activations

        conv = dict(
            image_size=args.conv_image_size, channels=args.conv_channels, base_channels=args.conv_base_channels,
            n_starts=args.conv_n_starts, search_steps=args.conv_search_steps,
            power_iterations=args.conv_power_iterations,
        )
        return lipschitz_activations.run(
            args.out_dir, args.activations, args.depths, width=args.width, target_slope=args.target_slope,
            train_steps=args.train_steps, n_starts=args.n_starts, search_steps=args.search_steps, conv=conv, seed=args.seed,
        )
    if args.command == "train":
        from keras_sngan.poster.running import training
        from keras_sngan.poster.running.spec import RunSpec

        infos = training.train(RunSpec.from_args(args))
        return infos[0] if len(infos) == 1 else infos
    if args.command == "classifier":
        from keras_sngan.poster.running import training

        return training.train_classifier(args.out, dataset=args.dataset, threads=args.threads)
    if args.command == "evaluate":
        from keras_sngan.poster.running import training

        return [
            training.evaluate(run, os.path.join(run, "eval"), classifier_path=args.classifier,
                              n_samples=args.n_samples, threads=args.threads)
            for run in args.run_dirs
        ]
    if args.command == "gradient-flow":
        from keras_sngan.poster.reporting import gradient_flow

        labels, paths = _pairs(args.runs)
        gradient_flow.run(paths, labels, args.out, args.iterations)
        return None
    if args.command == "curves":
        from keras_sngan.poster.reporting import tables

        tables.training_curves(args.runs, args.out, every=args.every)
        return None
    if args.command == "summarize":
        from keras_sngan.poster.reporting import tables

        tables.summary_table(args.metrics, args.out_csv, args.out_md)
        return None
    if args.command == "figure":
        from keras_sngan.poster.reporting import figures

        figures.draw(args.name, args.inputs, args.out)
        return None
    if args.command == "claims":
        from keras_sngan.poster.reporting import claims_report

        labels, paths = _pairs(args.gradient_flow)
        result = claims_report.run(
            args.variance_dir, args.lipschitz_dir, args.runs, dict(zip(labels, paths)),
            out_md=args.out_md, out_json=args.out_json, window=tuple(args.window),
            overfit_csv=args.overfitting, out_html=args.out_html, variance_width=args.variance_width,
            robustness_json=args.robustness, convergence_json=args.convergence, compare_with=args.compare_with,
            reference_runs=args.reference_runs,
        )
        return {c["id"]: c["verdict"] for c in result["claims"]}
    if args.command == "overfit":
        from keras_sngan.poster.plumbing.runs import overfitting_final
        from keras_sngan.poster.running import overfitting

        optimizer = dict(name=args.optimizer, learning_rate=args.learning_rate, beta_1=args.beta_1, beta_2=args.beta_2,
                         epsilon=args.epsilon)
        table = overfitting.run(
            args.out, args.dataset, args.train_size, args.method, args.seeds, label=args.label,
            iterations=args.iterations, records=args.records, batch_size=args.batch_size, n_critic=args.n_critic,
            width=args.width, depth=args.depth, optimizer=optimizer, gp_weight=args.gp_weight,
            clip_value=args.clip_value, sn_method=args.sn_method, threads=args.threads,
        )
        last = overfitting_final(table)
        return {"rows": len(table), "mean_final_std_gap": float(last["std_gap"].mean())}
    if args.command == "overfit-table":
        from keras_sngan.poster.running import overfitting

        overfitting.combine(args.inputs, args.out)
        return None
    if args.command == "convergence":
        from keras_sngan.poster.judging import convergence

        table = convergence.run(args.runs, args.out_csv, args.out_md, out_json=args.out_json)
        return convergence.reached(table)
    if args.command == "robustness":
        from keras_sngan.poster.judging import robustness

        for item in args.variant:
            if len(item) < 2:
                raise ValueError(f"--variant: expected NAME RUN_DIR [RUN_DIR ...], received {item!r}.")
        result = robustness.run(
            args.runs, {item[0]: item[1:] for item in args.variant}, args.budgets, tuple(args.window),
            args.out_json, args.out_md, overfit_csv=args.overfitting, bootstrap=args.bootstrap,
            around=dict(args.around), reference=args.reference,
        )
        return {cid: f"{c['k']} of {c['n']}" + (f", fragile ({', '.join(c['flipped_by'])})" if c["fragile"] else "")
                for cid, c in result["claims"].items() if c["base"] is not None}
    if args.command == "prepare-images":
        from keras_sngan.datasets import save_arrays

        return save_arrays(args.dataset, args.out, data_dir=args.data_dir, download=args.download)
    if args.command == "agreement":
        from keras_sngan.poster.judging import agreement

        return agreement.compare(args.committed, args.reproduced, out_md=args.out)
    raise ValueError(f"unknown command {args.command!r}")  # argparse prevents this


def main(argv=None) -> int:
    """Run one ``keras-sngan`` command in this process; return its exit status.

    ``argv``: the command's arguments (default ``sys.argv[1:]``). The console
    script (:mod:`keras_sngan.poster.command`) first offers the command to a
    warm server (:mod:`keras_sngan.poster.warm_start`), whose forked child
    calls this function too.
    """
    args = build_parser().parse_args(argv)
    try:
        select_backend(args.backend)
    except ValueError as error:
        return _error(args.command, error)
    if args.command == "train":  # the run specification is checked whole before the backend's seconds of import
        from keras_sngan.poster.running.spec import RunSpec

        try:
            RunSpec.from_args(args)
        except ValueError as error:
            return _error(args.command, error)
    if args.command in ("train", "classifier"):  # a missing dataset: one line, before the backend's seconds of import
        from keras_sngan.datasets import DatasetNotAvailableError
        from keras_sngan.datasets.prepared import check_available

        try:
            check_available(args.dataset)
        except DatasetNotAvailableError as error:
            return _error(args.command, error, notes=False)
    from keras_sngan.poster.plumbing import timing

    timing.add("import", timing.process_start_seconds_ago())  # interpreter, keras_sngan and its libraries
    if args.command in BACKEND_COMMANDS:  # start the backend here, so the record charges it to `import`
        with timing.phase("import"):
            import keras  # noqa: F401
    try:
        result = run(args)
    except ValueError as error:
        return _error(args.command, error)
    except FileNotFoundError as error:
        if not _dataset_missing(error):
            raise
        return _error(args.command, error, notes=False)  # one line: which dataset, and how to provide it
    finally:  # the job's timing record, into its log (keras_sngan.poster.plumbing.timing)
        print(timing.line(args.command), file=sys.stderr, flush=True)
    if args.command == "agreement":  # a verdict for people and for make: the list, and the exit status
        from keras_sngan.poster.judging.agreement import difference_lines

        print("\n".join([result["headline"].split(":")[0] + f" ({args.reproduced} vs {args.committed})",
                         *difference_lines(result)]))
        return 0 if result["agrees"] else 1
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
