"""Graph mode or XLA for each model of the pipeline: milliseconds per generator iteration, side by side.

The pipeline's training step (``keras_sngan.poster.running.training``: the WGAN
with per-layer gradient norms, ``n_critic`` = 5) is timed for every model the
default and long profiles train, with ``jit_compile=False`` and ``True``, on
one thread (the pipeline's ``threads: 1``), in alternating rounds in one
process so that machine load hits both alike. Warm-up (tracing, XLA
compilation) is excluded and reported separately as ``first_call_s``. The
result decides ``training.JIT_COMPILE`` (the per-model choice of
``jit_compile="auto"``), which quotes this file's committed output,
``benchmarks/results/step_choice.json``.

Usage:
    python benchmarks/step_choice.py > benchmarks/results/step_choice.json
    python benchmarks/step_choice.py --quick     # a short run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sngan import runtime  # noqa: E402
from keras_sngan.poster.plumbing import data_stream  # noqa: E402
from keras_sngan.poster.running import training  # noqa: E402

ADAM = {"name": "adam", "learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-8}
RMSPROP = {"name": "rmsprop", "learning_rate": 5e-5, "epsilon": 1e-10}
# (label, dataset, model options, batch size): the models of config/config.yaml and config/long.yaml
MODELS = [
    ("toy_mlp_256", "8gaussians", {"width": 256, "depth": 3}, 256),
    ("toy_mlp_512", "8gaussians", {"width": 512, "depth": 3}, 256),
    ("deep_mlp_12x128", "swissroll", {"width": 128, "depth": 12}, 256),
    ("digits_cnn", "digits", {"critic_channels": 16, "generator_channels": 64, "latent_dim": 32}, 64),
]


def runner(dataset, method, model, batch, xla):
    """A function ``run(steps) -> [seconds per step]`` training one pipeline WGAN."""
    import keras

    from keras_sngan.wgan import WGAN

    x, _ = training.training_arrays(dataset, 0)
    optimizer = RMSPROP if method == "clip" else ADAM
    gan, _ = training._build_wgan(dataset, method, dict(model), optimizer, 0, 5, 0.1, 0.01, x.shape[1:], WGAN, jit_compile=xla)
    stream = data_stream.training_stream(x, batch, 5, 0, 0, 10**6).repeat()

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    stamps = []

    def run(steps):
        stamps.clear()
        gan.fit(stream, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[Clock()])
        return [b - a for a, b in zip(stamps, stamps[1:])]

    return run


def measure(dataset, method, model, batch, steps, repeats):
    runs, first = {}, {}
    for xla in (False, True):
        runs[xla] = runner(dataset, method, model, batch, xla)
        start = time.perf_counter()
        runs[xla](1)
        first[xla] = time.perf_counter() - start
    times = {False: [], True: []}
    for _ in range(repeats):
        for xla in (False, True):
            times[xla].extend(runs[xla](steps))
    graph, xla = statistics.median(times[False]), statistics.median(times[True])
    return {
        "graph_ms": round(1e3 * graph, 2), "xla_ms": round(1e3 * xla, 2), "xla_over_graph": round(xla / graph, 3),
        "first_call_s": {"graph": round(first[False], 2), "xla": round(first[True], 2)},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default=",".join(m[0] for m in MODELS))
    parser.add_argument("--methods", default="clip,gp,sn")
    args = parser.parse_args(argv)
    runtime.configure_tensorflow(1, 0)
    results = []
    for label, dataset, model, batch in MODELS:
        if label not in args.models.split(","):
            continue
        steps, repeats = (5, 2) if args.quick else ((4, 5) if dataset == "digits" else (20, 5))
        for method in args.methods.split(","):
            row = {"model": label, "method": method, **measure(dataset, method, model, batch, steps, repeats)}
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    import keras
    import tensorflow as tf

    print(json.dumps({
        "benchmark": "pipeline_step_graph_vs_xla",
        "unit": "milliseconds per generator iteration (5 critic updates + 1 generator update), median",
        "threads": 1, "quick": args.quick,
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
