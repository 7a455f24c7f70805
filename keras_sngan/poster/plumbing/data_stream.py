"""The training data of a run as a pure function of (seed, step).

Element ``s`` of the stream (the real samples of generator iteration ``s``)
depends only on the training array, the seed and ``s``: the data are cut into
passes of ``steps_per_pass = len(x) // (n_critic * batch_size)`` steps, and
pass ``p`` uses one seeded permutation of ``range(len(x))``. Nothing about the
order lives in an iterator, so a resumed run re-derives the stream at its
restored step (:func:`training_stream` with ``start_step``) instead of having
to checkpoint an iterator, and the samples it sees are exactly those an
uninterrupted run would have seen.

The permutation depends on the backend, which is recorded in each run's
``run.json``: on TensorFlow it is ``tf.random.experimental.stateless_shuffle``
with seed ``(seed, p)`` in a `tf.data` pipeline (the order of every TensorFlow
run since the first release, so their checkpoints still resume exactly); on
every other backend, where TensorFlow may not be installed, it is
``numpy.random.default_rng([seed, p]).permutation`` in a
`keras.utils.PyDataset` (:class:`StepStream`).
"""

from __future__ import annotations

import keras
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
    """The elements of steps ``start_step .. start_step + num_steps - 1``, for ``fit``.

    Each element holds ``n_critic * batch_size`` samples of ``x`` (the WGAN
    data contract, see `keras_sngan.wgan`). On the TensorFlow backend a
    `tf.data.Dataset`, on the others a :class:`StepStream`.
    """
    if keras.backend.backend() != "tensorflow":
        return StepStream(x, batch_size, n_critic, seed, start_step, num_steps)
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


class StepStream(keras.utils.PyDataset):
    """Steps ``start_step .. start_step + num_steps - 1`` of a run's data, NumPy only (every backend).

    Item ``i`` is the ``n_critic * batch_size`` samples of step
    ``start_step + i``: pass ``p = step // steps_per_pass`` of the data is
    ``x[numpy.random.default_rng([seed, p]).permutation(len(x))]`` cut into
    ``steps_per_pass`` consecutive blocks (the last ``len(x) % per_step``
    samples of each permutation unused). Items are computed on demand
    from their index alone, so any item equals the one an uninterrupted
    run sees at that step.

    Example:
        >>> import numpy as np
        >>> from keras_sngan.poster.plumbing.data_stream import StepStream
        >>> stream = StepStream(np.arange(8.0)[:, None], batch_size=2, n_critic=2, seed=0, start_step=0, num_steps=4)
        >>> len(stream), stream[0].shape
        (4, (4, 1))
    """

    def __init__(self, x, batch_size, n_critic, seed, start_step, num_steps):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = np.asarray(x, np.float32)
        self.per_step = int(n_critic) * int(batch_size)
        self.per_pass = steps_per_pass(len(self.x), int(batch_size), int(n_critic))
        self.seed, self.start_step, self.num_steps = int(seed), int(start_step), int(num_steps)
        self._pass, self._order = None, None

    def __len__(self):
        return self.num_steps

    def __getitem__(self, index):
        if not 0 <= index < self.num_steps:
            raise IndexError(f"StepStream: item {index} of {self.num_steps}.")
        step = self.start_step + int(index)
        p, k = divmod(step, self.per_pass)
        if p != self._pass:
            self._pass, self._order = p, np.random.default_rng([self.seed, p]).permutation(len(self.x))
        return self.x[self._order[k * self.per_step:(k + 1) * self.per_step]]

    def __iter__(self):
        for index in range(self.num_steps):
            yield self[index]


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
