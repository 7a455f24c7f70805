"""Ours vs the oracle (`oracle_wgan`) on a toy set: runs, measurements, agreement rule.

Used by ``tests/test_oracle.py`` (short, CI) and ``benchmarks/oracle.py``
(long). Ours is trained through its public entry,
`keras_sngan.poster.running.training.train` (what ``keras-sngan train`` and the
pipeline run); the oracle is `oracle_wgan.OracleWGAN`, which imports nothing
from keras_sngan. Both are measured with the same instrument,
`keras_sngan.metrics`, on the same real samples:

- ``modes_covered`` and ``high_quality_fraction`` (VEEGAN) of 2,500 samples;
- ``w1_excess``: exact W1 of 1,000 samples to 1,000 held-out points minus the
  real-vs-real floor at that size;
- ``w_est_<t>``: the critic's Wasserstein estimate as logged during training
  (``mean f(real) - mean f(fake)`` averaged over the critic updates of an
  iteration), averaged over the window of ``window`` iterations ending at
  iteration ``t``, for each ``t`` in ``checkpoints``;
- ``w_heldout``: the trained critic's estimate on held-out real data
  (`keras_sngan.metrics.critic_generalization_gap`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

import oracle_wgan

METRICS_SCALE_FREE = ("modes_covered", "high_quality_fraction", "w1_excess")
# Absolute and relative floors of the agreement rule (see `agreement`).
FLOORS = {
    "modes_covered": (1.0, 0.0),        # one mode
    "high_quality_fraction": (0.05, 0.0),
    "w1_excess": (0.03, 0.1),
    "w_est": (0.0, 0.25),               # estimates live on method-dependent scales (clip: ~1e-3)
    "w_heldout": (0.0, 0.25),
}


def _optimizer_settings(opt: dict) -> dict:
    """A ``make_optimizer`` dictionary (``name``, ...) as RunSpec settings (``optimizer``, ...)."""
    return {("optimizer" if key == "name" else key): value for key, value in opt.items()}


def settings(method: str, gp_weight: float = 0.1) -> dict:
    """One method's settings from its reference (gan_toy.py / Arjovsky et al.), for both trainers."""
    spec = dict(oracle_wgan.REFERENCE_SETTINGS[method])
    if method == "gp":
        spec["gp_weight"] = gp_weight
    return spec


def real_sets(dataset: str):
    """The held-out and reference real samples every run is measured against (fixed seeds)."""
    from keras_sngan.datasets import sample_toy

    return sample_toy(dataset, 1000, seed=10_001), sample_toy(dataset, 1000, seed=10_002)


def measure(generate, score, history, dataset, checkpoints, window, seed=0) -> dict:
    """The comparison's numbers for one trained run (``generate(z)``, ``score(x)`` callables)."""
    from keras_sngan import datasets, metrics

    rng = np.random.default_rng([seed, 99])
    z = rng.standard_normal((2500, 2)).astype(np.float32)
    fake = np.asarray(generate(z), np.float64)
    heldout, reference = real_sets(dataset)
    out = {}
    if dataset in ("8gaussians", "25gaussians"):
        centers, std = datasets.gaussian_mixture_modes(dataset)
        stats = metrics.mode_statistics(fake, centers, std)
        out["modes_covered"] = float(stats["modes_covered"])
        out["high_quality_fraction"] = stats["high_quality_fraction"]
    out["w1_excess"] = metrics.wasserstein1_with_floor(fake[:1000], heldout, reference)["excess"]
    estimates = np.asarray(history, np.float64)
    for t in checkpoints:
        out[f"w_est_{t}"] = float(np.mean(estimates[t - window : t]))
    gap = metrics.critic_generalization_gap(score, generate, reference, heldout, 2, n=1000, seed=seed)
    out["w_heldout"] = gap["w_heldout"]
    return out


def run_oracle(dataset, method, seed, iterations, width, checkpoints, window, gp_weight=0.1, init="gan_toy",
               optimizer=None, clip_initial=False, sn_layer="keras") -> dict:
    spec = settings(method, gp_weight)
    gan = oracle_wgan.OracleWGAN(method, width=width, gp_weight=spec.get("gp_weight", 0.1),
                                 clip_value=spec.get("clip_value", 0.01), init=init, seed=seed,
                                 optimizer=optimizer, clip_initial=clip_initial, sn_layer=sn_layer)
    history = gan.train(iterations, oracle_wgan.ToySampler(dataset, seed))
    return measure(gan.generate, gan.score, history["wasserstein"], dataset, checkpoints, window, seed)


def run_ours(dataset, method, seed, iterations, width, checkpoints, window, gp_weight=0.1, threads=None,
             n_critic=oracle_wgan.CRITIC_ITERS, optimizer=None, probe=False) -> dict:
    """Ours through `keras_sngan.poster.running.training.train` at the oracle's settings.

    ``probe=False`` replaces the recorder's per-iteration gradient probe by NaN:
    it is a pure measurement (it draws no random numbers and assigns no
    variable, see `keras_sngan.poster.running.gradient_probe`), so training is unchanged,
    and at width 64 it costs a third of a run.
    """
    import contextlib
    from unittest import mock

    import keras
    import pandas as pd

    from keras_sngan.poster.running import training
    from keras_sngan.poster.running.spec import RunSpec
    from keras_sngan.poster.running.gradient_probe import GradientProbe

    spec = settings(method, gp_weight)
    opt = {"name": spec["optimizer"], "learning_rate": spec["learning_rate"]}
    if spec["optimizer"] == "adam":
        opt.update(beta_1=spec["beta_1"], beta_2=spec["beta_2"])
    opt.update(optimizer or {})
    captured = {}

    class Capture(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            captured["gan"] = self.model

    no_probe = mock.patch.object(GradientProbe, "__call__", lambda self, critic, generator: float("nan"))
    with tempfile.TemporaryDirectory() as out_dir, (contextlib.nullcontext() if probe else no_probe):
        training.train(RunSpec(
            out_dir=out_dir, dataset=dataset, method=method, seeds=[seed], iterations=iterations,
            batch_size=oracle_wgan.BATCH_SIZE, n_critic=n_critic, width=width, depth=oracle_wgan.DEPTH,
            **_optimizer_settings(opt), gp_weight=spec.get("gp_weight", 0.1), clip_value=spec.get("clip_value", 0.01),
            epochs=1, stats_every=iterations, gap_samples=256, threads=threads, verbose=0,
        ), callbacks=[Capture()])
        history = pd.read_csv(os.path.join(out_dir, "history.csv"))
    history = history[history["iteration"] >= 1].sort_values("iteration")["wasserstein"].to_numpy()
    gan = captured["gan"]

    def generate(z):
        return gan.generator(np.asarray(z, np.float32), training=False)

    def score(x):
        return gan.critic(np.asarray(x, np.float32), training=False)

    return measure(generate, score, history, dataset, checkpoints, window, seed)


def _floor(name):
    return FLOORS["w_est"] if name.startswith("w_est_") else FLOORS[name]


def agreement(ours: list[dict], oracle: list[dict], k: float = 3.0) -> dict:
    """Per metric: do the two sets of runs agree within seed spread?

    ``|mean_ours - mean_oracle| <= k * pooled_sd + abs_floor + rel_floor * max(|means|)``
    where ``pooled_sd = sqrt((sd_ours^2 + sd_oracle^2) / 2)`` (sample standard
    deviations over seeds, ``ddof=1``) and the floors are ``FLOORS[metric]``
    (one mode, 0.05 high-quality fraction, 0.03 + 10% W1 excess; 25% for
    the critic's estimates, whose scale depends on the method). With 2-3
    seeds a standard deviation is itself uncertain by a factor of about 2,
    hence ``k = 3``.

    Returns ``{metric: {"ours", "oracle", "sd_ours", "sd_oracle", "diff",
    "tolerance", "agree"}}``.
    """
    if len(ours) < 2 or len(oracle) < 2:
        raise ValueError(f"agreement: needs >= 2 runs per side, received {len(ours)} and {len(oracle)}.")
    result = {}
    for name in ours[0]:
        a = np.array([r[name] for r in ours], np.float64)
        b = np.array([r[name] for r in oracle], np.float64)
        sd_a, sd_b = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
        pooled = math.sqrt((sd_a**2 + sd_b**2) / 2.0)
        absolute, relative = _floor(name)
        diff = float(np.mean(a) - np.mean(b))
        tolerance = k * pooled + absolute + relative * max(abs(np.mean(a)), abs(np.mean(b)))
        result[name] = {
            "ours": float(np.mean(a)), "oracle": float(np.mean(b)), "sd_ours": sd_a, "sd_oracle": sd_b,
            "diff": diff, "tolerance": float(tolerance), "agree": bool(abs(diff) <= tolerance),
        }
    return result


def format_table(method: str, table: dict) -> str:
    lines = [f"{method}: metric, ours (sd), oracle (sd), |diff| <= tolerance"]
    for name, row in table.items():
        mark = "ok" if row["agree"] else "DISAGREE"
        lines.append(
            f"  {name:22s} {row['ours']:+.4g} ({row['sd_ours']:.2g})  {row['oracle']:+.4g} "
            f"({row['sd_oracle']:.2g})  {abs(row['diff']):.3g} <= {row['tolerance']:.3g} {mark}"
        )
    return "\n".join(lines)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


# ----------------------------------------------------------------- lockstep (same weights, data and draws)
class _Draws:
    """Pre-drawn noise and mixing weights, handed out in order (one queue per kind)."""

    def __init__(self, seed, batch):
        rng = np.random.default_rng([seed, 5])
        self.normals = [rng.standard_normal((batch, 2)).astype(np.float32) for _ in range(200)]
        self.uniforms = [rng.uniform(size=(batch, 1)).astype(np.float32) for _ in range(200)]

    def normal(self, shape):
        return self.normals.pop(0).reshape(shape)

    def uniform(self, shape, minval=0.0, maxval=1.0):
        return self.uniforms.pop(0).reshape(shape)


def lockstep(method, iterations=3, width=32, batch=64, seed=0, gp_weight=0.1, sgd=None, oracle_gp_weight=None):
    """Our `WGAN.train_step` and the oracle from the same weights, data and random draws.

    Ours is built as `keras_sngan.poster.running.training.train` builds it and
    its steps run eagerly; the noise of every critic and generator update and
    the penalty's mixing weights come from one pre-drawn stream that both
    consume in the same order. The oracle runs with Keras' optimizer epsilon
    (1e-7; for RMSprop also its zero-initialized accumulator) and, for
    ``"clip"``, clipped initial weights, the choices of ours. ``sgd=lr``
    replaces both trainers' optimizers by plain gradient descent: Adam's
    first steps are about ``lr * sign(gradient)`` whatever the gradient's
    size, so they would hide a wrong gradient (a wrong penalty weight, say),
    and they amplify float rounding in near-zero gradients to full steps.
    ``oracle_gp_weight`` gives the oracle another penalty weight (to show
    that a difference is seen).

    Returns ``(ours, oracle, largest |difference| / largest |weight|)`` with
    the weights of both after ``iterations`` iterations, critic then
    generator, as NumPy arrays.
    """
    from unittest import mock

    import tensorflow as tf

    from keras_sngan.poster.running import training
    from keras_sngan.poster.running.spec import RunSpec
    from keras_sngan.wgan import WGAN, critic_step, generator_step

    spec = settings(method, gp_weight)
    opt = {"name": spec["optimizer"], "learning_rate": spec["learning_rate"]}
    if spec["optimizer"] == "adam":
        opt.update(beta_1=spec["beta_1"], beta_2=spec["beta_2"])
    run = RunSpec(out_dir="unused", dataset="8gaussians", method=method, seeds=[seed], iterations=1, batch_size=batch,
                  n_critic=oracle_wgan.CRITIC_ITERS, width=width, depth=oracle_wgan.DEPTH, **_optimizer_settings(opt),
                  gp_weight=spec.get("gp_weight", 0.1), clip_value=spec.get("clip_value", 0.01), epochs=1)
    gan, _ = training._build_wgan(run, seed, (2,), WGAN)  # what train() runs
    keras_like = {"epsilon": 1e-7} if spec["optimizer"] == "adam" else {"epsilon": 1e-7, "initial_mean_square": 0.0}
    if sgd is not None:
        import keras

        gan.compile(critic_optimizer=keras.optimizers.SGD(sgd), generator_optimizer=keras.optimizers.SGD(sgd))
        keras_like = {"optimizer": "sgd", "learning_rate": sgd}
    oracle_gp_weight = spec.get("gp_weight", 0.1) if oracle_gp_weight is None else oracle_gp_weight
    oracle = oracle_wgan.OracleWGAN(method, width=width, batch_size=batch, gp_weight=oracle_gp_weight,
                                    init="glorot", seed=seed, optimizer=keras_like)
    for mine, theirs in ((gan.critic, oracle.critic), (gan.generator, oracle.generator)):
        values = [v.numpy() for v in mine.trainable_variables]
        assert len(values) == len(theirs.variables)
        for variable, value in zip(theirs.variables, values):
            variable.assign(value)

    ours_draws, oracle_draws = _Draws(seed, batch), _Draws(seed, batch)
    oracle.noise = oracle_draws

    def draw_noise(gan_, local_batch, replica):
        return tf.constant(ours_draws.normal((batch, 2)))

    measurement = np.random.default_rng(1).uniform(size=(batch, 1)).astype(np.float32)

    def penalty_interpolates(seed_generator, real, fake, replica):
        alpha = tf.constant(ours_draws.uniform((batch, 1)))
        return alpha * real + (1.0 - alpha) * fake

    def measured_interpolates(seed_generator, real, fake, replica):  # clip/sn's logged norm: not part of training
        return measurement * real + (1.0 - measurement) * fake

    sampler = oracle_wgan.ToySampler("8gaussians", seed)
    with mock.patch.object(generator_step, "draw_noise", draw_noise), \
            mock.patch.object(critic_step, "draw_noise", draw_noise), \
            mock.patch.object(critic_step, "interpolates", penalty_interpolates if method == "gp" else measured_interpolates):
        for _ in range(iterations):
            reals = [sampler.next(batch) for _ in range(oracle_wgan.CRITIC_ITERS)]
            # WGAN.train_step splits an element strided: batch k = samples k, k + 5, k + 10, ...
            element = np.stack(reals, axis=1).reshape(-1, 2)
            gan.train_step(tf.constant(element))
            for real in reals:
                oracle._critic_step(tf.constant(real))
            oracle._generator_step()
    ours = [v.numpy() for v in gan.critic.trainable_variables + gan.generator.trainable_variables]
    theirs = [v.numpy() for v in oracle.critic.variables + oracle.generator.variables]
    scale = max(float(np.abs(w).max()) for w in theirs)
    error = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs)) / scale
    return ours, theirs, error
