"""The training data of a run as a pure function of (seed, step).

Element ``s`` of the stream (the real samples of generator iteration ``s``)
depends only on the training array, the seed and ``s``: the data are cut into
passes of ``steps_per_pass = len(x) // (n_critic * batch_size)`` steps, and
pass ``p`` uses the permutation ``stateless_shuffle(range(len(x)), seed=(seed,
p))``. Nothing about the order lives in an iterator, so a resumed run
re-derives the stream at its restored step (:func:`training_stream` with
``start_step``) instead of having to checkpoint a `tf.data` iterator, and the
samples it sees are exactly those an uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np


def steps_per_pass(num_samples: int, batch_size: int, n_critic: int) -> int:
    """Generator iterations per pass over ``num_samples`` training samples."""
    per_step = n_critic * batch_size
    if per_step > num_samples:
        raise ValueError(
            f"train: `n_critic * batch_size` = {n_critic} * {batch_size} = {per_step} exceeds "
            f"the {num_samples} training samples; each generator iteration needs that many. "
            f"Use `batch_size` <= {num_samples // n_critic} for `n_critic`={n_critic}."
        )
    return num_samples // per_step


def training_stream(x, batch_size: int, n_critic: int, seed: int, start_step: int, num_steps: int):
    """A `tf.data.Dataset` of the elements of steps ``start_step .. start_step + num_steps - 1``.

    Each element holds ``n_critic * batch_size`` samples of ``x`` (the WGAN
    data contract, see `keras_sngan.wgan`).
    """
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    n = len(x)
    per_pass = steps_per_pass(n, batch_size, n_critic)
    per_step = n_critic * batch_size
    first_pass = start_step // per_pass
    last_pass = (start_step + num_steps - 1) // per_pass

    def pass_indices(p):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), p])
        )
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: per_pass * per_step], (per_pass, per_step))
        )

    data = tf.constant(x)
    return (
        tf.data.Dataset.range(first_pass, last_pass + 1)
        .flat_map(pass_indices)
        .skip(start_step - first_pass * per_pass)
        .take(num_steps)
        .map(lambda idx: tf.gather(data, idx))
        .prefetch(2)
        .with_options(without_autotune())
    )


def without_autotune():
    """`tf.data.Options` that turn off tf.data's autotuning model thread.

    The stream's parallelism is fixed (``prefetch(2)``), so autotuning has
    nothing to tune; but its thread is started anyway, and when the iterator
    is destroyed at the end of ``fit`` it can keep the process waiting for up
    to several seconds (measured: 8 s of a 28 s run, with no CPU spent, when
    another job shared the two cores; TensorFlow 2.21). The elements, and so
    the training results, are the same with or without it.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
