"""Step time of critics with and without spectral normalization; prints JSON.

A step is forward + backward + Adam update of a WGAN-style critic loss
``mean(f(x_fake)) - mean(f(x_real))`` on one batch. Compared side by side in
one process, interleaved round-robin (every other round reversed) so machine
noise hits every variant alike, and compared round by round (``paired_ratio_*``):

- ``plain``: the critic without any normalization;
- ``reshape`` / ``bidirectional`` / ``operator``: ``keras_sngan.SpectralNormalization``;
- ``keras_builtin``: ``keras.layers.SpectralNormalization``;

for the WGAN-GP 512-wide MLP critic (batch 256) and Miyato et al.'s standard
CNN critic (32x32x3, batch 64): on TensorFlow with XLA off (graph mode) and
on, and on JAX (``jax.jit`` of a stateless step, always XLA) in a second
process (one Keras backend per process; ratios are taken within a process).

Usage: ``python benchmarks/layers.py [--quick] [--no-jax] [--out benchmarks/results/layers.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_sngan import SpectralNormalization  # noqa: E402

BACKEND = keras.backend.backend()

VARIANTS = ("plain", "reshape", "bidirectional", "operator", "keras_builtin")


def wrapper(variant):
    if variant == "plain":
        return lambda layer: layer
    if variant == "keras_builtin":
        return lambda layer: keras.layers.SpectralNormalization(layer)
    return lambda layer: SpectralNormalization(layer, method=variant)


def mlp_critic(wrap):
    """WGAN-GP toy critic: 2 -> 3 x 512 ReLU -> 1."""
    layers = [keras.Input((2,))]
    layers += [wrap(keras.layers.Dense(512, activation="relu")) for _ in range(3)]
    layers += [wrap(keras.layers.Dense(1))]
    return keras.Sequential(layers), (256, 2)


def cnn_critic(wrap):
    """Miyato et al. (2018) standard CNN critic, LeakyReLU(0.1), 32x32x3."""
    spec = [(64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2), (512, 3, 1)]
    layers = [keras.Input((32, 32, 3))]
    for filters, kernel, stride in spec:
        layers += [wrap(keras.layers.Conv2D(filters, kernel, stride, padding="same")), keras.layers.LeakyReLU(0.1)]
    layers += [keras.layers.Flatten(), wrap(keras.layers.Dense(1))]
    return keras.Sequential(layers), (64, 32, 32, 3)


def make_step(model, jit):
    if BACKEND == "jax":
        return make_jax_step(model)
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-4, 0.5, 0.9)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit)
    def step(real, fake):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(fake, training=True)) - tf.reduce_mean(model(real, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def make_jax_step(model):
    """The same step as a jitted stateless JAX function (what Keras' JAX trainer does)."""
    import jax

    optimizer = keras.optimizers.Adam(1e-4, 0.5, 0.9)
    optimizer.build(model.trainable_variables)

    def loss_fn(trainable, non_trainable, real, fake):
        y_fake, non_trainable = model.stateless_call(trainable, non_trainable, fake, training=True)
        y_real, non_trainable = model.stateless_call(trainable, non_trainable, real, training=True)
        return keras.ops.mean(y_fake) - keras.ops.mean(y_real), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def jitted(state, real, fake):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, real, fake)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    state = [
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    ]

    def step(real, fake):
        nonlocal state
        loss, state = jitted(state, real, fake)
        return loss

    return step


def benchmark(builder, variants, jit, steps, rounds):
    keras.utils.set_random_seed(0)
    runs = {}
    for variant in variants:
        model, shape = builder(wrapper(variant))
        real = keras.random.normal(shape)
        fake = keras.random.normal(shape)
        step = make_step(model, jit)
        for _ in range(3):  # trace, compile, warm up
            keras.ops.convert_to_numpy(step(real, fake))
        runs[variant] = (step, real, fake)
    times = {v: [] for v in variants}
    cpu_times = {v: [] for v in variants}
    for round_index in range(rounds):
        # Every other round in reverse order, so that a drift within a round
        # (thermal, another process) does not always hit the same variant.
        order = list(runs.items())
        if round_index % 2:
            order.reverse()
        for variant, (step, real, fake) in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                loss = step(real, fake)
            keras.ops.convert_to_numpy(loss)
            times[variant].append((time.perf_counter() - start) / steps * 1e3)
            cpu_times[variant].append((time.process_time() - cpu_start) / steps * 1e3)
    ms = {v: statistics.median(t) for v, t in times.items()}
    # CPU time of this process (all its threads): not inflated by time spent
    # waiting for a core that another process holds.
    cpu = {v: statistics.median(t) for v, t in cpu_times.items()}
    # The fastest round of each variant: the least disturbed by other
    # processes (as timeit recommends); the steadier statistic on a shared machine.
    best = {v: min(t) for v, t in times.items()}
    return {
        "paired_ratio_to_plain": _paired(times, "plain"),
        "paired_ratio_to_keras_builtin": _paired(times, "keras_builtin"),
        "ms_per_step": {v: round(m, 3) for v, m in ms.items()},
        "ratio_to_plain": {v: round(m / ms["plain"], 3) for v, m in ms.items()},
        "ratio_to_keras_builtin": {v: round(m / ms["keras_builtin"], 3) for v, m in ms.items()},
        "best_round_ms_per_step": {v: round(m, 3) for v, m in best.items()},
        "best_round_ratio_to_plain": {v: round(m / best["plain"], 3) for v, m in best.items()},
        "best_round_ratio_to_keras_builtin": {v: round(m / best["keras_builtin"], 3) for v, m in best.items()},
        "cpu_ms_per_step": {v: round(m, 3) for v, m in cpu.items()},
        "cpu_ratio_to_plain": {v: round(m / cpu["plain"], 3) for v, m in cpu.items()},
        "cpu_ratio_to_keras_builtin": {v: round(m / cpu["keras_builtin"], 3) for v, m in cpu.items()},
    }


def _paired(times, reference):
    """Per-round ratios to ``reference`` (both timed in the same round): median and quartiles.

    A ratio taken within one round cancels the slow drifts of the machine that
    move every variant alike; the quartiles say how far the rounds disagree.
    """
    summary = {}
    for variant, series in times.items():
        ratios = [t / r for t, r in zip(series, times[reference])]
        q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        summary[variant] = {"median": round(median, 3), "q1": round(q1, 3), "q3": round(q3, 3)}
    return summary


def run(tags, steps, rounds, cnn_steps, cnn_rounds):
    result = {}
    for tag in tags:
        jit = tag != "graph"
        result[f"mlp_{tag}"] = benchmark(mlp_critic, VARIANTS, jit, steps, rounds)
        print(json.dumps({f"mlp_{tag}": result[f"mlp_{tag}"]}), file=sys.stderr, flush=True)
        result[f"cnn_{tag}"] = benchmark(cnn_critic, VARIANTS, jit, cnn_steps, cnn_rounds)
        print(json.dumps({f"cnn_{tag}": result[f"cnn_{tag}"]}), file=sys.stderr, flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX process")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    steps, rounds = (3, 2) if args.quick else (20, 15)
    cnn_steps, cnn_rounds = (1, 2) if args.quick else (1, 25)
    if BACKEND == "jax":  # the child process: JSON of the JAX column on stdout
        print(json.dumps(run(["jax"], steps, rounds, cnn_steps, cnn_rounds)))
        return
    import tensorflow as tf

    result = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "settings": {"mlp_batch": 256, "cnn_batch": 64, "cnn_image": [32, 32, 3], "steps": steps, "rounds": rounds,
                     "cnn_steps": cnn_steps, "cnn_rounds": cnn_rounds, "statistic": "paired_ratio_*: per-round ratios (same round), median and quartiles; ms_per_step: median ms per step over rounds; best_round_*: the fastest round; cpu_*: median process CPU ms per step"},
    }
    result.update(run(["graph", "xla"], steps, rounds, cnn_steps, cnn_rounds))
    if not args.no_jax:
        import jax

        result["machine"]["jax"] = jax.__version__
        child = subprocess.run(
            [sys.executable, __file__, *(["--quick"] if args.quick else [])],
            env=dict(os.environ, KERAS_BACKEND="jax"),
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
