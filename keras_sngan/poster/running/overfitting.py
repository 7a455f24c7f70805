"""Claim 2b's experiment: can a WGAN critic overfit a small training set, and does GP's more?

Gulrajani et al. (2017, Fig. 5b) show the critic of a WGAN-GP trained on a
small data set scoring its training images above held-out ones: the critic's
Wasserstein estimate on the training set exceeds the one on held-out data.
That can only happen if the critic sees the same training points again and
again. The comparison runs of this project do not allow it (their toy sets
hold 100k points, never revisited), so this experiment trains small WGANs on
*fixed small training sets* that are revisited hundreds of times:

- digits: the first ``train_size`` images of a seeded permutation of the
  scikit-learn digits training split (e.g. 256, 512 or all 1437), held-out
  split 360 images;
- toy sets: ``train_size`` (e.g. 512) points drawn once per seed, and the same
  number of fresh held-out points.

Critic and generator are the WGAN-GP toy MLPs (digits flattened to 64
inputs), trained by `keras_sngan.wgan.WGAN` with each method's classic
optimizer. Every ``iterations / records`` generator iterations (and at
iteration 0) the critic's train vs held-out Wasserstein estimates are
measured with :func:`keras_sngan.metrics.critic_generalization_gap`: the
*same* fakes in both terms, so the gap is ``mean f(x_train) - mean
f(x_heldout)``, plus the scale-free ``std_gap``. Seeds are independent
replicates (new models, data order, and for the toy sets new training sets),
so the rule of claim 2b (:func:`keras_sngan.poster.judging.claims.claim_gp_overfit`)
can test the final gaps with Welch t-tests.

One call of :func:`run` trains one (dataset, training-set size, method) cell
for every seed in one process; the pipeline runs the cells as parallel
one-thread jobs.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from keras_sngan import runtime
from keras_sngan.poster.plumbing import io

TOY_LATENT, IMAGE_LATENT = 2, 16
_TRAIN_STREAM, _HELDOUT_STREAM, _ORDER_STREAM = 101, 202, 303


def parse_train_size(value):
    """``"all"`` (or None) -> None, else an integer >= 2."""
    if value is None or value == "all":
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if isinstance(value, bool) or size < 2 or (isinstance(value, float) and value != size):
        raise ValueError(f"overfitting: `train_size` must be an integer >= 2 or 'all', received {value!r}.")
    return size


def data(dataset: str, train_size, seed: int):
    """``(x_train, x_heldout)`` of one replicate, flattened to ``(n, features)`` float32.

    Toy sets need an integer ``train_size`` (the held-out sample has the same
    size); digits accept ``None`` (the whole training split).
    """
    from keras_sngan import datasets

    train_size = parse_train_size(train_size)
    if dataset == "digits":
        x_train, _, x_heldout, _ = datasets.load_digits_split()
        if train_size is not None and train_size > len(x_train):
            raise ValueError(f"overfitting: `train_size`={train_size} exceeds the {len(x_train)} digits training images.")
        order = np.random.default_rng([seed, _TRAIN_STREAM]).permutation(len(x_train))
        chosen = x_train[order if train_size is None else order[:train_size]]
        return chosen.reshape(len(chosen), -1), x_heldout.reshape(len(x_heldout), -1)
    if dataset not in datasets.TOY_DATASETS:
        raise ValueError(f"overfitting: `dataset` must be 'digits' or one of {list(datasets.TOY_DATASETS)}, received {dataset!r}.")
    if train_size is None:
        raise ValueError(f"overfitting: toy set {dataset!r} needs an integer `train_size`, received 'all'.")
    train = datasets.sample_toy(dataset, train_size, seed=int(np.random.default_rng([seed, _TRAIN_STREAM]).integers(2**31)))
    heldout = datasets.sample_toy(dataset, train_size, seed=int(np.random.default_rng([seed, _HELDOUT_STREAM]).integers(2**31)))
    return train.astype(np.float32), heldout.astype(np.float32)


def _order(n_points, count, seed):
    """``count`` indices into ``n_points``: concatenated seeded permutations (every point once per pass)."""
    rng = np.random.default_rng([seed, _ORDER_STREAM])
    passes = -(-count // n_points)
    return np.concatenate([rng.permutation(n_points) for _ in range(passes)])[:count]


def _check(dataset, method, seeds, iterations, records, batch_size, n_critic, width, depth):
    from keras_sngan.poster.running.training import METHODS

    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"overfitting: `dataset` must be a dataset name, received {dataset!r}.")
    io.check_choice("overfitting", "method", method, METHODS)
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"overfitting: `seeds` must be a non-empty list of integers >= 0, received {seeds!r}.")
    iterations = io.check_int("overfitting", "iterations", iterations, 1)
    records = io.check_int("overfitting", "records", records, 1)
    if iterations % records:
        raise ValueError(f"overfitting: `iterations`={iterations} must be a multiple of `records`={records}.")
    for name, value in (("batch_size", batch_size), ("n_critic", n_critic), ("width", width), ("depth", depth)):
        io.check_int("overfitting", name, value, 1)
    return seeds


def run(
    out_csv,
    dataset: str,
    train_size,
    method: str,
    seeds,
    *,
    label: str | None = None,
    iterations: int = 150,
    records: int = 5,
    batch_size: int = 64,
    n_critic: int = 5,
    width: int = 128,
    depth: int = 3,
    optimizer: dict | None = None,
    gp_weight: float = 10.0,
    clip_value: float = 0.01,
    sn_method: str = "reshape",
    threads: int | None = None,
) -> pd.DataFrame:
    """Train one cell for every seed; write and return its gap table.

    Args:
        out_csv: output CSV, one row per (seed, recorded iteration): ``dataset,
            train_size, method, gp_weight, seed, iteration, w_train, w_heldout,
            gap, std_gap, n, seconds``.
        dataset: ``"digits"`` or a toy set.
        train_size: training-set size, or ``"all"`` (digits only).
        method: ``"clip"``, ``"gp"`` or ``"sn"``.
        seeds: independent replicates.
        label: method label written to the table (default ``method``; e.g.
            ``"gp0.1"`` for GP at another penalty weight).
        iterations: generator iterations per seed.
        records: gap measurements after every ``iterations / records``
            iterations (plus iteration 0).
        batch_size: critic batch size.
        n_critic: critic steps per generator step.
        width: the toy MLPs' hidden width.
        depth: the toy MLPs' number of hidden layers.
        optimizer: spec for :func:`keras_sngan.poster.running.training.make_optimizer`.
        gp_weight: the gradient penalty's weight (method ``"gp"``).
        clip_value: the clipping bound (method ``"clip"``).
        sn_method: the `SpectralNormalization` method (method ``"sn"``).
        threads: TensorFlow intra-op threads.
    """
    seeds = _check(dataset, method, seeds, iterations, records, batch_size, n_critic, width, depth)
    size = parse_train_size(train_size)
    from keras_sngan.poster.running.training import make_optimizer

    optimizer = dict(optimizer or {"name": "adam", "learning_rate": 1e-4})
    runtime.configure(threads, seeds[0])  # before the first TensorFlow op, or the thread pools are fixed
    make_optimizer(optimizer)  # validate before any expensive work
    data(dataset, size, seeds[0])  # validate the dataset / size pair too
    import keras

    from keras_sngan import metrics, models
    from keras_sngan.wgan import WGAN

    latent_dim = IMAGE_LATENT if dataset == "digits" else TOY_LATENT
    step = batch_size * n_critic
    chunk = iterations // records
    features = data(dataset, size, seeds[0])[0].shape[1]

    def networks():
        critic = models.toy_critic(input_dim=features, width=width, depth=depth, lipschitz=method,
                                   sn_method=sn_method, clip_value=clip_value)
        generator = models.toy_generator(latent_dim=latent_dim, output_dim=features, width=width, depth=depth)
        return critic, generator

    # One WGAN, traced once, serves every seed: each replicate loads freshly initialized weights (seeded),
    # the optimizers' just-built state and a fresh noise stream, which is exactly a new run.
    critic, generator = networks()
    gan = WGAN(critic, generator, latent_dim, lipschitz=method, n_critic=n_critic, gp_weight=gp_weight,
               clip_value=clip_value, seed=int(seeds[0]))
    gan.compile(critic_optimizer=make_optimizer(optimizer), generator_optimizer=make_optimizer(optimizer))
    optimizers = (gan.critic_optimizer, gan.generator_optimizer)
    fresh_optimizers = [[v.numpy().copy() for v in opt.variables] for opt in optimizers]
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        keras.utils.set_random_seed(int(seed))
        x_train, x_heldout = data(dataset, size, seed)
        new_critic, new_generator = networks()
        critic.set_weights(new_critic.get_weights())
        generator.set_weights(new_generator.get_weights())
        for opt, values in zip(optimizers, fresh_optimizers):
            for variable, value in zip(opt.variables, values):
                variable.assign(value)
        gan.seed_generator.state.assign(keras.random.SeedGenerator(int(seed)).state.numpy())
        if method == "clip":  # clip the initial weights too, as in the comparison runs
            for variable in critic.trainable_variables:
                variable.assign(keras.ops.clip(variable, -clip_value, clip_value))
        order = _order(len(x_train), iterations * step, seed)
        n = min(len(x_train), len(x_heldout))

        def record(iteration):
            gap = metrics.critic_generalization_gap(critic, generator, x_train, x_heldout, latent_dim, n=n, seed=int(seed))
            rows.append({"dataset": dataset, "train_size": len(x_train), "method": label or method,
                         "gp_weight": float(gp_weight) if method == "gp" else float("nan"), "seed": int(seed),
                         "iteration": iteration, **{k: gap[k] for k in ("w_train", "w_heldout", "gap", "std_gap", "n")},
                         "seconds": time.perf_counter() - start})

        # One `fit` per seed, an epoch per record: every `fit` ends by tearing down its input pipeline,
        # which waits on tf.data's autotuning thread (docs/performance.md), once instead of `records` times.
        # The epochs take consecutive slices of one array, so the steps are those of one `fit` per record.
        record(0)
        gan.fit(x_train[order], batch_size=step, epochs=records, steps_per_epoch=chunk, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: record((epoch + 1) * chunk))])
    table = pd.DataFrame(rows)
    io.write_csv(out_csv, table)
    return table


def combine(inputs, out_csv) -> pd.DataFrame:
    """Concatenate the cells' tables into one (the committed ``tables/overfitting.csv``)."""
    if not inputs:
        raise ValueError("overfitting.combine: `inputs` must name at least one cell table.")
    table = pd.concat([pd.read_csv(path) for path in inputs], ignore_index=True)
    io.write_csv(out_csv, table)
    return table
