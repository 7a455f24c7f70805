"""Time one WGAN generator iteration (n_critic critic updates + 1 generator update).

For each model (toy MLP at batch 256, Miyato's standard CNN at batch 64 on
32x32x3), each Lipschitz method and with / without XLA, this measures
``WGAN.fit`` next to a plain hand-written `tf.function` loop doing the same
work (same models, optimizers, noise draws, penalty / clipping and the
grad-norm measurement), side by side in one process. Both are timed step by
step in steady state: ``fit`` runs one long epoch and a callback stamps the
end of every batch (so ``fit``'s per-call set-up, iterator creation and
callbacks' begin/end hooks are not charged to the step, just as they are not
charged to a long training run); the reference loop is stamped the same way.
Warm-up (tracing, compilation) is excluded; each number is the median
step time over rounds that alternate between the two. Prints JSON.

Usage:
    python benchmarks/train_step.py            # full run (the CNN takes minutes)
    python benchmarks/train_step.py --quick    # a short run
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_sngan import models  # noqa: E402
from keras_sngan.wgan import WGAN  # noqa: E402

N_CRITIC = 5
GP_WEIGHT = 10.0
CLIP_VALUE = 0.01


def build(model, method):
    if model == "toy_mlp":
        critic = models.toy_critic(lipschitz=method)
        generator = models.toy_generator()
        return critic, generator, 2, (2,), 256
    critic = models.standard_critic(image_size=32, channels=3, lipschitz=method)
    generator = models.standard_generator(latent_dim=128, image_size=32, channels=3)
    return critic, generator, 128, (32, 32, 3), 64


def dataset(sample_shape, batch):
    x = np.random.default_rng(0).standard_normal((4 * N_CRITIC * batch,) + sample_shape)
    ds = tf.data.Dataset.from_tensor_slices(x.astype("float32")).repeat()
    return ds.batch(N_CRITIC * batch, drop_remainder=True).prefetch(2)


def adam():
    return keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)


def reference_step(critic, generator, latent_dim, method, xla):
    """The hand-written baseline: one `tf.function`, no Keras training loop."""
    c_opt, g_opt = adam(), adam()
    c_vars, g_vars = critic.trainable_variables, generator.trainable_variables
    c_opt.build(c_vars)
    g_opt.build(g_vars)
    seed = keras.random.SeedGenerator(0)

    def grad_norms(real, fake, training):
        alpha = keras.random.uniform((tf.shape(real)[0],), seed=seed)
        alpha = tf.reshape(alpha, [-1] + [1] * (len(real.shape) - 1))
        x_hat = alpha * real + (1 - alpha) * fake
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            total = tf.reduce_sum(tf.cast(critic(x_hat, training=training), "float32"))
        g = tape.gradient(total, x_hat)
        return tf.sqrt(tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape)))) + 1e-12)

    def step(x):
        b = tf.shape(x)[0] // N_CRITIC
        xs = tf.reshape(x, [-1, N_CRITIC] + list(x.shape[1:]))
        for k in range(N_CRITIC):
            real = xs[:, k]
            fake = generator(keras.random.normal((b, latent_dim), seed=seed), training=True)
            with tf.GradientTape() as tape:
                scores = tf.reshape(critic(tf.concat([real, fake], 0), training=True), [-1])
                wasserstein = tf.reduce_mean(scores[:b]) - tf.reduce_mean(scores[b:])
                loss = -wasserstein
                if method == "gp":
                    norms = grad_norms(real, fake, True)
                    loss += GP_WEIGHT * tf.reduce_mean(tf.square(norms - 1))
            grads = tape.gradient(loss, c_vars)
            c_opt.apply_gradients(zip(grads, c_vars))
            if method == "clip":
                for v in c_vars:
                    v.assign(tf.clip_by_value(v, -CLIP_VALUE, CLIP_VALUE))
        if method != "gp":
            norms = grad_norms(real, fake, False)
        with tf.GradientTape() as tape:
            fake = generator(keras.random.normal((b, latent_dim), seed=seed), training=True)
            with keras.StatelessScope():  # as WGAN: the training-mode critic, no state change
                g_loss = -tf.reduce_mean(critic(fake, training=True))
        grads = tape.gradient(g_loss, g_vars)
        g_opt.apply_gradients(zip(grads, g_vars))
        return loss, wasserstein, g_loss, tf.reduce_mean(norms)

    return tf.function(step, jit_compile=xla)


class _StepClock(keras.callbacks.Callback):
    """Stamps the end of every training batch (perf_counter seconds)."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())


def _step_times(stamps):
    return [b - a for a, b in zip(stamps, stamps[1:])]


def reference_runner(model, method, xla):
    critic, generator, latent_dim, shape, batch = build(model, method)
    step = reference_step(critic, generator, latent_dim, method, xla)
    it = iter(dataset(shape, batch))

    def run(steps):
        stamps = [time.perf_counter()]
        for _ in range(steps):
            [float(v) for v in step(next(it))]  # read the metrics, as fit's callbacks do
            stamps.append(time.perf_counter())
        return _step_times(stamps)

    return run


def fit_runner(model, method, xla):
    critic, generator, latent_dim, shape, batch = build(model, method)
    gan = WGAN(critic, generator, latent_dim=latent_dim, lipschitz=method, n_critic=N_CRITIC,
               gp_weight=GP_WEIGHT, clip_value=CLIP_VALUE, seed=0)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam(), jit_compile=xla)
    ds = dataset(shape, batch)

    def run(steps):
        clock = _StepClock()
        # one extra step: the first stamp only starts the clock
        gan.fit(ds, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[clock])
        return _step_times(clock.stamps)

    return run


def side_by_side(model, method, xla, steps, repeats):
    """Median seconds per step of fit and of the reference, alternating rounds."""
    runners = {"fit": fit_runner(model, method, xla), "reference": reference_runner(model, method, xla)}
    for run in runners.values():
        run(2)  # warm-up: trace (and compile)
    times = {name: [] for name in runners}
    for _ in range(repeats):  # alternate so machine load hits both alike
        for name, run in runners.items():
            times[name].extend(run(steps))
    return statistics.median(times["fit"]), statistics.median(times["reference"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and repeats")
    parser.add_argument("--models", default="toy_mlp,standard_cnn")
    parser.add_argument("--methods", default="clip,gp,sn")
    args = parser.parse_args(argv)
    plan = {  # (steps per repeat, repeats)
        "toy_mlp": (10, 3) if args.quick else (30, 7),
        "standard_cnn": (1, 2) if args.quick else (3, 3),
    }
    results = []
    for model in args.models.split(","):
        steps, repeats = plan[model]
        for xla in (False, True):
            for method in args.methods.split(","):
                keras.utils.set_random_seed(0)
                fit_s, ref_s = side_by_side(model, method, xla, steps, repeats)
                keras.backend.clear_session()
                results.append({
                    "model": model, "method": method, "xla": xla,
                    "fit_ms": round(1e3 * fit_s, 2), "reference_ms": round(1e3 * ref_s, 2),
                    "fit_over_reference": round(fit_s / ref_s, 3),
                })
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress
    ratios = {}
    for model in args.models.split(","):
        for xla in (False, True):
            by_method = {r["method"]: r["fit_ms"] for r in results if r["model"] == model and r["xla"] == xla}
            if "gp" in by_method and "sn" in by_method:
                ratios[f"{model}/{'xla' if xla else 'graph'}"] = round(by_method["gp"] / by_method["sn"], 3)
    report = {
        "benchmark": "wgan_train_step",
        "unit": "milliseconds per generator iteration (n_critic=5 critic updates + 1 generator update)",
        "batch": {"toy_mlp": 256, "standard_cnn": 64},
        "quick": args.quick,
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
        "results": results,
        "gp_over_sn": ratios,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
