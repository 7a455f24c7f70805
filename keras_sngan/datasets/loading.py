"""The entry points: training batches for ``fit`` (:func:`load_dataset`) and in-memory splits (:func:`load_arrays`)."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from keras_sngan.datasets import prepared
from keras_sngan.datasets.digits import BUILTIN_DATASETS, load_digits_split
from keras_sngan.datasets.errors import DatasetNotAvailableError, how_to_provide
from keras_sngan.datasets.tfds import _tfds_images, _tfds_split_size, _to_numpy, tfds_builder
from keras_sngan.datasets.toy import DEFAULT_TOY_HELDOUT_SIZE, DEFAULT_TOY_TRAIN_SIZE, TOY_DATASETS, sample_toy
from keras_sngan.validation import check_int


class GANData(NamedTuple):
    """What :func:`load_dataset` returns.

    Attributes:
        train: batches of float32 samples of shape
            ``(n_critic * batch_size, *sample_shape)``: shuffled with the seed
            (reshuffled every epoch), the remainder dropped. Finite: one pass
            is one epoch of ``steps_per_epoch`` batches. On the TensorFlow
            backend a ``tf.data.Dataset`` (prefetched); on JAX and PyTorch,
            or without TensorFlow, a
            `keras_sngan.datasets.ShuffledBatches` (a `keras.utils.PyDataset`
            yielding ``(batch,)``), which needs no TensorFlow.
        heldout: float32 NumPy array of held-out real samples (never in
            ``train``), for evaluation.
        heldout_labels: int64 labels of ``heldout`` for labelled image sets,
            ``None`` for the toy sets.
        steps_per_epoch: number of batches in one pass over ``train``.
        sample_shape: shape of one sample, e.g. ``(2,)`` or ``(8, 8, 1)``.
    """

    train: object
    heldout: np.ndarray
    heldout_labels: np.ndarray | None
    steps_per_epoch: int
    sample_shape: tuple


def load_dataset(
    name: str,
    batch_size: int,
    *,
    n_critic: int = 1,
    seed: int = 0,
    train_size: int | None = None,
    heldout_size: int | None = None,
    split: str = "train",
    heldout_split: str = "test",
    shuffle_buffer: int = 10_000,
    data_dir: str | None = None,
    download: bool = False,
    arrays=None,
) -> GANData:
    """Training batches for a WGAN and a held-out real sample, in one call.

    Each element of ``train`` holds ``n_critic * batch_size`` real samples: the
    WGAN's ``train_step`` splits it into ``n_critic`` fresh critic batches of
    ``batch_size``. ``train`` is finite (one pass = one epoch) and reshuffled
    every epoch, deterministically given ``seed``.

    Sizes and splits per family:

    - toy sets (infinite-sample generators): a **fixed** training sample of
      ``train_size`` points (default 100,000, as ``gan_toy.py``'s
      25gaussians) is drawn once from ``seed``; ``heldout`` is an independent
      sample of ``heldout_size`` points (default 2,000). A finite training set
      is what makes the critic's train vs held-out gap measurable. For fresh
      samples use :func:`sample_toy`. ``split``/``heldout_split`` are not used.
    - ``"digits"``: the fixed stratified 80/20 split of
      :func:`load_digits_split` (1437 train, 360 held-out).
    - TFDS: ``split`` (default ``"train"``) for training, ``heldout_split``
      (default ``"test"``) loaded into memory as the held-out array.

    For the image sets ``train_size`` / ``heldout_size`` optionally keep only
    the first that many examples.

    Args:
        name: one of :data:`BUILTIN_DATASETS`, or a TFDS image dataset name
            (e.g. ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``).
        batch_size: critic batch size, ``>= 1``.
        n_critic: critic steps per generator step, ``>= 1``; each dataset
            element holds ``n_critic * batch_size`` samples.
        seed: seed for the toy samples and for shuffling.
        train_size: number of training samples (toy default 100,000; image
            sets: all).
        heldout_size: number of held-out samples (toy default 2,000; image
            sets: all).
        split: TFDS training split, e.g. ``"train"`` or ``"train[:90%]"``.
        heldout_split: TFDS held-out split, e.g. ``"test"``.
        shuffle_buffer: shuffle buffer for TFDS data (the built-in sets are
            shuffled in full).
        data_dir: TFDS data directory.
        download: allow TFDS to download and prepare missing data.
        arrays: a TFDS image set's prepared array file
            (:mod:`~keras_sngan.datasets.prepared`; default
            ``$KERAS_SNGAN_IMAGE_ARRAYS/<name>.npz`` if it exists): read on
            every backend, without TensorFlow (``split`` / ``heldout_split``
            then ``"train"`` / ``"test"``).

    Returns:
        A :class:`GANData` ``(train, heldout, heldout_labels,
        steps_per_epoch, sample_shape)``.

    Raises:
        ValueError: unknown ``name``, bad split, non-positive sizes, or
            ``n_critic * batch_size`` larger than the training set; raised
            before any sampling or loading.
        DatasetNotAvailableError: a TFDS dataset is not prepared in
            ``data_dir`` and ``download=False``, or it is asked for without
            TensorFlow and without a prepared array file (the built-in sets
            need only NumPy and scikit-learn). The message says how to
            provide it.

    Example:
        >>> data = load_dataset("digits", batch_size=64, n_critic=5, seed=1)
        >>> data.steps_per_epoch, data.sample_shape
        (4, (8, 8, 1))

    Reference:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017
        (toy sets; 5 critic steps per generator step).
    """
    if not isinstance(name, str):
        raise ValueError(f"load_dataset: `name` must be a string, received {name!r}.")
    batch_size = check_int("batch_size", batch_size, 1, owner="load_dataset")
    n_critic = check_int("n_critic", n_critic, 1, owner="load_dataset")
    if train_size is not None:
        train_size = check_int("train_size", train_size, 1, owner="load_dataset")
    if heldout_size is not None:
        heldout_size = check_int("heldout_size", heldout_size, 1, owner="load_dataset")
    shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, 1, owner="load_dataset")
    for param, value in (("split", split), ("heldout_split", heldout_split)):
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"load_dataset: `{param}` must be a non-empty TFDS split string such as "
                f"'train', 'test' or 'train[:90%]', received {value!r}."
            )
    step = n_critic * batch_size
    key = name.lower()

    if key in TOY_DATASETS:
        n_train = DEFAULT_TOY_TRAIN_SIZE if train_size is None else train_size
        n_heldout = DEFAULT_TOY_HELDOUT_SIZE if heldout_size is None else heldout_size
        _check_fits(name, step, batch_size, n_critic, n_train)
        train_seed, heldout_seed = np.random.SeedSequence(seed).spawn(2)
        x_train = sample_toy(key, n_train, seed=train_seed.generate_state(1)[0])
        heldout = sample_toy(key, n_heldout, seed=heldout_seed.generate_state(1)[0])
        return GANData(
            _shuffled_batches(x_train, step, seed), heldout, None, n_train // step, tuple(x_train.shape[1:])
        )

    if key == "digits":
        x_train, _, heldout, heldout_labels = load_digits_split()
        if train_size is not None:
            x_train = x_train[:train_size]
        if heldout_size is not None:
            heldout, heldout_labels = heldout[:heldout_size], heldout_labels[:heldout_size]
        _check_fits(name, step, batch_size, n_critic, len(x_train))
        return GANData(
            _shuffled_batches(x_train, step, seed),
            heldout,
            heldout_labels,
            len(x_train) // step,
            tuple(x_train.shape[1:]),
        )

    path = prepared.arrays_path(name, arrays)
    if path is not None:
        x_train, _ = prepared.read_arrays(path, name, split, train_size, owner="load_dataset")
        heldout, heldout_labels = prepared.read_arrays(path, name, heldout_split, heldout_size, owner="load_dataset")
        _check_fits(name, step, batch_size, n_critic, len(x_train))
        return GANData(_shuffled_batches(x_train, step, seed), heldout, heldout_labels, len(x_train) // step,
                       tuple(x_train.shape[1:]))
    _tfds_needs_tensorflow(name)
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    n_train = _tfds_split_size(builder, split, "split")
    _tfds_split_size(builder, heldout_split, "heldout_split")
    if n_train is not None and train_size is not None:
        n_train = min(n_train, train_size)
    if n_train is not None:
        _check_fits(name, step, batch_size, n_critic, n_train)
    train, _ = _tfds_images(builder, split, limit=train_size)
    train = train.map(lambda x, y: x)
    if n_train is None:  # no split metadata (mock data): count once
        n_train = int(train.reduce(0, lambda count, _: count + 1))
        _check_fits(name, step, batch_size, n_critic, n_train)
    train = train.shuffle(min(shuffle_buffer, n_train), seed=seed, reshuffle_each_iteration=True)
    heldout_ds, has_labels = _tfds_images(builder, heldout_split, limit=heldout_size)
    heldout, heldout_labels = _to_numpy(heldout_ds, has_labels)
    return GANData(
        _batch(train, step),
        heldout,
        heldout_labels,
        n_train // step,
        tuple(heldout.shape[1:]),
    )


def load_arrays(
    name: str,
    split: str = "train",
    *,
    n: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
    arrays=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A split of a dataset as in-memory arrays (for metrics and classifiers).

    Args:
        name: a built-in or TFDS image dataset name (see :func:`load_dataset`).
        split: ``"train"`` or ``"test"`` for the built-in sets (``"test"`` is
            the held-out part); any TFDS split string for TFDS sets.
        n: keep at most the first ``n`` examples (toy sets: draw ``n``
            points, default as in :func:`load_dataset`).
        seed: seed of the toy samples (same convention as
            :func:`load_dataset`, so ``load_arrays(toy, "train", n=N, seed=s)``
            equals the training sample of ``load_dataset(toy, ...,
            train_size=N, seed=s)``).
        data_dir: TFDS data directory.
        download: allow TFDS to download missing data.
        arrays: a TFDS image set's prepared array file, as for
            :func:`load_dataset` (``False``: always read through TFDS).

    Returns:
        ``(x, y)``: float32 samples and int64 labels (``None`` for toy sets).

    Example:
        >>> x, y = load_arrays("digits", "test")
        >>> x.shape, y.shape
        ((360, 8, 8, 1), (360,))
    """
    if n is not None:
        n = check_int("n", n, 1, owner="load_arrays")
    key = name.lower() if isinstance(name, str) else name
    if key in BUILTIN_DATASETS and split not in ("train", "test"):
        raise ValueError(
            f"load_arrays: `split` for built-in dataset {name!r} must be 'train' or 'test', "
            f"received {split!r}."
        )
    if key in TOY_DATASETS:
        default = DEFAULT_TOY_TRAIN_SIZE if split == "train" else DEFAULT_TOY_HELDOUT_SIZE
        train_seed, heldout_seed = np.random.SeedSequence(seed).spawn(2)
        seq = train_seed if split == "train" else heldout_seed
        return sample_toy(key, default if n is None else n, seed=seq.generate_state(1)[0]), None
    if key == "digits":
        x_train, y_train, x_test, y_test = load_digits_split()
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return (x, y) if n is None else (x[:n], y[:n])
    if not isinstance(name, str):
        raise ValueError(f"load_arrays: `name` must be a string, received {name!r}.")
    path = None if arrays is False else prepared.arrays_path(name, arrays)
    if path is not None:
        return prepared.read_arrays(path, name, split, n)
    _tfds_needs_tensorflow(name)
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    _tfds_split_size(builder, split, "split")
    ds, has_labels = _tfds_images(builder, split, limit=n)
    return _to_numpy(ds, has_labels)


def _tensorflow_backend() -> bool:
    import importlib.util

    import keras

    return keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorflow") is not None


def _shuffled_batches(x, step: int, seed: int):
    """A seeded, per-epoch reshuffled pass of ``step``-sample batches over ``x``.

    ``tf.data`` on the TensorFlow backend (the pipeline's committed results
    were drawn with it); `ShuffledBatches` elsewhere, which needs no TensorFlow.
    """
    if not _tensorflow_backend():
        from keras_sngan.datasets.batches import ShuffledBatches

        return ShuffledBatches(x, step, seed)
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _batch(train, step)


def _tfds_needs_tensorflow(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise DatasetNotAvailableError(
            f"dataset {name!r} is not built in ({', '.join(BUILTIN_DATASETS)}); TFDS image sets are read "
            f"through tensorflow-datasets, which needs TensorFlow, and it is not installed. "
            f"To use it, {how_to_provide(name)}; or install TensorFlow (the 'cpu' or 'gpu' extra)."
        )


def _batch(ds, step: int):
    import tensorflow as tf

    return ds.batch(step, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _check_fits(name: str, step: int, batch_size: int, n_critic: int, n_train: int) -> None:
    if step > n_train:
        raise ValueError(
            f"load_dataset: `n_critic * batch_size` = {n_critic} * {batch_size} = {step} "
            f"exceeds the {n_train} training samples of {name!r}; each training step needs "
            f"that many samples. Use `batch_size` <= {n_train // n_critic} for "
            f"`n_critic`={n_critic}."
        )


def save_arrays(name: str, path, *, data_dir=None, download: bool = False) -> dict:
    """Write TFDS image set ``name``'s ``train`` and ``test`` splits to ``path`` (``.npz``); needs TensorFlow.

    Args:
        name: a TFDS image dataset (``"mnist"``, ``"cifar10"``, ...).
        path: the file to write (written whole, then renamed into place).
        data_dir: TFDS data directory.
        download: allow TFDS to download missing data.

    Returns:
        ``{"name", "path", "train", "test", "shape"}``: the sizes written.

    Raises:
        ValueError: ``name`` is a built-in set (it needs no file), or the
            images are not 8-bit (the uint8 round trip would not be exact).
    """
    if name in BUILTIN_DATASETS:
        raise ValueError(f"prepare-images: {name!r} is built in and needs no array file; give a TFDS image set.")
    arrays = {"name": np.array(name)}
    for split in prepared.SPLITS:
        x, y = load_arrays(name, split, data_dir=data_dir, download=download, arrays=False)
        images = np.rint((x.astype(np.float64) + 1.0) * 127.5)
        if images.min() < 0 or images.max() > 255 or not np.array_equal(prepared.to_float(images.astype(np.uint8)), x):
            raise ValueError(f"prepare-images: the {split} images of {name!r} are not 8-bit; cannot store them exactly.")
        arrays[f"x_{split}"] = images.astype(np.uint8)
        arrays[f"y_{split}"] = np.full(len(x), -1, np.int64) if y is None else y.astype(np.int64)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"name": name, "path": path, "train": len(arrays["x_train"]), "test": len(arrays["x_test"]),
            "shape": list(arrays["x_train"].shape[1:])}
