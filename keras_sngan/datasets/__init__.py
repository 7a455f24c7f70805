"""Datasets for WGAN training and evaluation, usable offline.

Two families:

- **Built in, no download.** The WGAN-GP toy sets ``"8gaussians"``,
  ``"25gaussians"`` and ``"swissroll"`` (sampled exactly as in Gulrajani et
  al.'s ``gan_toy.py``), and ``"digits"``, the real 8x8 handwritten digits
  that ship inside scikit-learn.
- **Through tensorflow-datasets (TFDS).** ``"mnist"``, ``"fashion_mnist"``,
  ``"cifar10"`` and any other TFDS image dataset by name. These need prepared
  data in ``data_dir``; without it and with ``download=False`` (the default)
  loading fails within seconds with :class:`DatasetNotAvailableError`, which
  says how to provide the data. TFDS needs TensorFlow; on other backends (or
  without TensorFlow) these sets are read from a prepared array file
  (:mod:`.prepared`, written once by ``keras-sngan prepare-images`` where
  TensorFlow is installed).

Everything is scaled to ``[-1, 1]`` (images) or to the toy sets' own scale,
and returned as ``float32``.

The single entry point for training is :func:`load_dataset`: it returns
batches ready for a WGAN's ``fit`` (a ``tf.data.Dataset`` on the TensorFlow
backend, a `ShuffledBatches` `keras.utils.PyDataset` on JAX and PyTorch) (each element is one batch of
``n_critic * batch_size`` real samples, which the WGAN's ``train_step`` splits
into ``n_critic`` fresh critic batches) plus a held-out real sample for
evaluation.

Example:

>>> data = load_dataset("8gaussians", batch_size=256, n_critic=5, seed=0)
>>> next(iter(data.train)).shape
TensorShape([1280, 2])
>>> data.heldout.shape
(2000, 2)

The implementation is split by job: :mod:`.toy` (the toy sets), :mod:`.digits`
(scikit-learn's digits), :mod:`.tfds` (TFDS image sets) and :mod:`.loading`
(the entry points). Everything public is importable from here.
"""

from keras_sngan.datasets.digits import BUILTIN_DATASETS, DIGITS_HELDOUT_FRACTION, DIGITS_SPLIT_SEED, load_digits_split
from keras_sngan.datasets.errors import ARRAYS_ENV
from keras_sngan.datasets.loading import GANData, load_arrays, load_dataset, save_arrays
from keras_sngan.datasets.tfds import TFDS_EXAMPLES, DatasetNotAvailableError, tfds_builder
from keras_sngan.datasets.toy import (
    DEFAULT_TOY_HELDOUT_SIZE,
    DEFAULT_TOY_TRAIN_SIZE,
    TOY_DATASETS,
    gaussian_mixture_modes,
    sample_toy,
)

__all__ = [
    "ARRAYS_ENV",
    "BUILTIN_DATASETS",
    "DEFAULT_TOY_HELDOUT_SIZE",
    "DEFAULT_TOY_TRAIN_SIZE",
    "DIGITS_HELDOUT_FRACTION",
    "DIGITS_SPLIT_SEED",
    "TFDS_EXAMPLES",
    "TOY_DATASETS",
    "DatasetNotAvailableError",
    "GANData",
    "ShuffledBatches",
    "gaussian_mixture_modes",
    "load_arrays",
    "load_dataset",
    "load_digits_split",
    "sample_toy",
    "save_arrays",
    "tfds_builder",
]


def __getattr__(name):
    # ShuffledBatches subclasses keras.utils.PyDataset: importing this package
    # must not import Keras (the reporting commands read toy modes from here).
    if name == "ShuffledBatches":
        from keras_sngan.datasets.batches import ShuffledBatches

        return ShuffledBatches
    raise AttributeError(f"module 'keras_sngan.datasets' has no attribute {name!r}")
