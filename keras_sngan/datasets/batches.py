"""Seeded, reshuffled batches of an in-memory array as a `keras.utils.PyDataset` (every backend)."""

from __future__ import annotations

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    """``len(x) // step`` batches of ``step`` samples, reshuffled every epoch from ``seed``.

    What :func:`~keras_sngan.datasets.load_dataset` returns as ``train`` on
    the JAX and PyTorch backends (and wherever TensorFlow is not installed):
    the backend-neutral counterpart of its ``tf.data`` pipeline. Epoch ``e``
    uses the permutation ``numpy.random.default_rng([seed, e])``; the last
    ``len(x) % step`` samples of each permutation are dropped (as
    ``drop_remainder=True``). Keras calls :meth:`on_epoch_end` after each
    epoch, which moves to the next permutation; iterating the object directly
    (``for (batch,) in data.train``) yields the current epoch's batches.

    Args:
        x: the samples, first axis = samples.
        step: samples per batch (``n_critic * batch_size`` for a WGAN).
        seed: seed of the permutations.

    Example:
        >>> import numpy as np
        >>> batches = ShuffledBatches(np.arange(10.0).reshape(10, 1), step=4, seed=0)
        >>> len(batches), batches[0][0].shape
        (2, (4, 1))
    """

    def __init__(self, x, step, seed=0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = np.asarray(x)
        self.step = int(step)
        self.seed = int(seed)
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self):
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def __len__(self):
        return len(self.x) // self.step

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"ShuffledBatches: batch {index} of {len(self)}.")
        return (self.x[self._order[index * self.step:(index + 1) * self.step]],)

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._permutation()
