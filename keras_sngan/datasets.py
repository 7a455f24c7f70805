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
  says how to provide the data.

Everything is scaled to ``[-1, 1]`` (images) or to the toy sets' own scale,
and returned as ``float32``.

The single entry point for training is :func:`load_dataset`: it returns a
``tf.data.Dataset`` ready for a WGAN's ``fit`` (each element is one batch of
``n_critic * batch_size`` real samples, which the WGAN's ``train_step`` splits
into ``n_critic`` fresh critic batches) plus a held-out real sample for
evaluation.

Example:

>>> data = load_dataset("8gaussians", batch_size=256, n_critic=5, seed=0)
>>> next(iter(data.train)).shape
TensorShape([1280, 2])
>>> data.heldout.shape
(2000, 2)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from keras_sngan.validation import check_int

TOY_DATASETS = ("8gaussians", "25gaussians", "swissroll")
"""Names of the built-in 2-D toy sets (infinite-sample generators)."""

BUILTIN_DATASETS = TOY_DATASETS + ("digits",)
"""Names of all datasets that need no download."""

TFDS_EXAMPLES = ("mnist", "fashion_mnist", "cifar10")
"""TFDS image datasets known to work; any other TFDS image dataset works too."""

DEFAULT_TOY_TRAIN_SIZE = 100_000
"""Toy training-set size; ``gan_toy.py`` uses a fixed 100,000-point 25gaussians set."""

DEFAULT_TOY_HELDOUT_SIZE = 2_000
"""Toy held-out size; exact W1 (see ``keras_sngan.metrics``) is fast up to ~2000 points."""

DIGITS_HELDOUT_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
"""The digits held-out split is fixed (independent of the training ``seed``)."""

_TOY_SCALE = {"8gaussians": 1.414, "25gaussians": 2.828, "swissroll": 7.5}
_TOY_NOISE = {"8gaussians": 0.02, "25gaussians": 0.05, "swissroll": 0.25}


class DatasetNotAvailableError(FileNotFoundError):
    """A TFDS dataset is not prepared in ``data_dir`` and downloading is off."""


class GANData(NamedTuple):
    """What :func:`load_dataset` returns.

    Attributes:
        train: ``tf.data.Dataset`` of float32 tensors of shape
            ``(n_critic * batch_size, *sample_shape)``: shuffled with the seed
            (reshuffled every epoch), batched with ``drop_remainder=True``,
            prefetched. Finite: one pass is one epoch of ``steps_per_epoch``
            batches.
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


# ---------------------------------------------------------------------------
# Toy sets (Gulrajani et al. 2017, gan_toy.py)
# ---------------------------------------------------------------------------


def gaussian_mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """Mode centers and per-coordinate std of a toy Gaussian mixture.

    Both are given in the scale of the samples (after ``gan_toy.py``'s final
    division), so they can be fed directly to
    ``keras_sngan.metrics.mode_statistics``.

    Args:
        name: ``"8gaussians"`` or ``"25gaussians"``.

    Returns:
        ``(centers, std)``: ``centers`` is a float64 array of shape ``(8, 2)``
        or ``(25, 2)``; ``std`` is the isotropic per-coordinate standard
        deviation of every mode (``0.02 / 1.414`` and ``0.05 / 2.828``).

    Example:
        >>> centers, std = gaussian_mixture_modes("8gaussians")
        >>> centers.shape, round(std, 5)
        ((8, 2), 0.01414)
    """
    if name == "8gaussians":
        d = 1.0 / np.sqrt(2.0)
        unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)]
        centers = 2.0 * np.asarray(unit, dtype=np.float64)
    elif name == "25gaussians":
        centers = np.asarray(
            [(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)], dtype=np.float64
        )
    else:
        raise ValueError(
            "gaussian_mixture_modes: `name` must be '8gaussians' or '25gaussians', "
            f"received {name!r}."
        )
    scale = _TOY_SCALE[name]
    return centers / scale, _TOY_NOISE[name] / scale


def sample_toy(name: str, n: int, seed: int | None = None) -> np.ndarray:
    """Draw ``n`` i.i.d. points from a WGAN-GP toy distribution.

    Same recipe, noise and scaling as ``inf_train_gen`` in Gulrajani et al.'s
    ``gan_toy.py`` (verified against the original source):

    - ``"8gaussians"``: a uniformly chosen center among the 4 axis points and
      4 diagonal points of the unit circle, scaled by 2, plus N(0, 0.02^2)
      noise per coordinate; then everything divided by 1.414.
    - ``"25gaussians"``: a uniformly chosen center of the grid
      ``{-4, -2, 0, 2, 4}^2`` (``2 * {-2..2}``), plus N(0, 0.05^2) noise per
      coordinate; then divided by 2.828. As in ``gan_toy.py`` (which builds
      a fixed 100,000-point set), every center gets the same number of points
      (``n // 25``; the ``n % 25`` left over go to distinct random centers)
      and the points are shuffled.
    - ``"swissroll"``: ``sklearn.datasets.make_swiss_roll(noise=0.25)``,
      columns ``[0, 2]``, divided by 7.5.

    Args:
        name: one of :data:`TOY_DATASETS`.
        n: number of points, ``>= 1``.
        seed: seed of the NumPy generator (``None``: fresh entropy).

    Returns:
        float32 array of shape ``(n, 2)``.

    Example:
        >>> sample_toy("swissroll", 1000, seed=0).shape
        (1000, 2)

    Reference:
        Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. "Improved Training of
        Wasserstein GANs", NeurIPS 2017 (code: ``improved_wgan_training/gan_toy.py``).
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"sample_toy: `name` must be one of {TOY_DATASETS}, received {name!r}.")
    n = check_int("n", n, 1, owner="sample_toy")
    rng = np.random.default_rng(seed)
    if name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        # make_swiss_roll takes a legacy RandomState seed; derive it from rng.
        points, _ = make_swiss_roll(
            n_samples=n, noise=_TOY_NOISE[name], random_state=int(rng.integers(2**31 - 1))
        )
        points = points[:, [0, 2]]
    else:
        centers, _ = gaussian_mixture_modes(name)
        centers = centers * _TOY_SCALE[name]  # back to the unscaled centers
        if name == "25gaussians":  # equal counts per center, as gan_toy.py
            k = len(centers)
            idx = np.concatenate(
                [np.repeat(np.arange(k), n // k), rng.choice(k, n % k, replace=False)]
            )
            idx = rng.permutation(idx)
        else:  # gan_toy.py: random.choice(centers) for every point
            idx = rng.integers(len(centers), size=n)
        points = centers[idx] + _TOY_NOISE[name] * rng.standard_normal((n, 2))
    return (points / _TOY_SCALE[name]).astype(np.float32)


# ---------------------------------------------------------------------------
# scikit-learn digits
# ---------------------------------------------------------------------------


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 8x8 scikit-learn digits with a fixed stratified 80/20 split.

    1797 real handwritten digits (UCI optical recognition set, values 0..16)
    scaled to ``[-1, 1]`` as ``x / 8 - 1``. The split uses
    ``train_test_split(test_size=0.2, stratify=labels, random_state=0)``,
    so every caller sees the same 1437 training and 360 held-out images.

    Returns:
        ``(x_train, y_train, x_heldout, y_heldout)``; images are float32 of
        shape ``(n, 8, 8, 1)``, labels int64 in ``0..9``.

    Example:
        >>> x_train, y_train, x_test, y_test = load_digits_split()
        >>> x_train.shape, x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=DIGITS_HELDOUT_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------
# TFDS
# ---------------------------------------------------------------------------


def tfds_builder(name: str, *, data_dir: str | None = None, download: bool = False):
    """A TFDS builder whose data is ready to read, or a fast, clear error.

    With no network, ``tfds.load`` retries for about 200 s before failing.
    This checks for prepared data first, so a missing dataset fails in
    milliseconds.

    Args:
        name: TFDS dataset name, e.g. ``"mnist"`` or ``"cifar10:3.0.2"``.
        data_dir: TFDS data directory (``None``: TFDS default,
            ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
        download: if ``True`` and the data is missing, call
            ``builder.download_and_prepare()`` (needs network).

    Returns:
        A prepared ``tfds.core.DatasetBuilder``.

    Raises:
        ValueError: ``name`` is not a TFDS dataset.
        DatasetNotAvailableError: the data is not in ``data_dir`` and
            ``download=False``.
    """
    from keras_sngan.tf_required import require_tensorflow

    require_tensorflow("datasets.tfds_builder (TFDS image datasets)", backend=False)
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"load_dataset: unknown dataset `name`={name!r}. Built in (no download): "
            f"{list(BUILTIN_DATASETS)}; through tensorflow-datasets: e.g. {list(TFDS_EXAMPLES)} "
            "or any image dataset listed by `tfds.list_builders()`."
        ) from None
    if not builder.is_prepared():
        if not download:
            raise DatasetNotAvailableError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r} and "
                "`download=False`. To provide it: (1) on a machine with network run "
                f"`tfds.builder({name!r}, data_dir=DIR).download_and_prepare()` and copy DIR "
                "to this machine, then pass `data_dir=DIR` (or set $TFDS_DATA_DIR); or "
                "(2) put the raw archives in a manual directory and call "
                "`download_and_prepare(download_config=tfds.download.DownloadConfig("
                "manual_dir=...))`; or (3) pass `download=True` on a machine with network."
            )
        builder.download_and_prepare()
    return builder


def _tfds_image_keys(builder) -> tuple[str, str | None]:
    """(image feature key, label key or None) of a TFDS image dataset."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    supervised = builder.info.supervised_keys
    if supervised and isinstance(features[supervised[0]], tfds.features.Image):
        label = supervised[1] if isinstance(supervised[1], str) else None
        return supervised[0], label
    for key, feature in features.items():
        if isinstance(feature, tfds.features.Image):
            label = "label" if "label" in features else None
            return key, label
    raise ValueError(
        f"load_dataset: TFDS dataset {builder.name!r} has no image feature "
        f"(features: {list(features.keys())}); only image datasets are supported."
    )


def _tfds_split_size(builder, split: str, param: str) -> int | None:
    """Number of examples in ``split``; ``None`` when TFDS has no split info."""
    if not builder.info.splits:  # e.g. under tfds.testing.mock_data
        return None
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, AssertionError) as err:
        raise ValueError(
            f"load_dataset: `{param}`={split!r} is not a valid split of {builder.name!r}; "
            f"available splits: {list(builder.info.splits.keys())} (slices such as "
            f"'train[:90%]' are allowed). TFDS said: {err}"
        ) from None


def _tfds_images(builder, split: str, limit: int | None = None):
    """(images in [-1, 1] as a tf.data.Dataset of (x, y), has_labels)."""
    import tensorflow as tf

    image_key, label_key = _tfds_image_keys(builder)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if limit is not None:
        ds = ds.take(limit)

    def convert(example):
        x = tf.cast(example[image_key], tf.float32) / 127.5 - 1.0
        y = example[label_key] if label_key else tf.constant(-1, tf.int64)
        return x, tf.cast(y, tf.int64)

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE), label_key is not None


def _to_numpy(ds, has_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    xs, ys = [], []
    for x, y in ds.batch(1024).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("load_dataset: the held-out split is empty.")
    return np.concatenate(xs), (np.concatenate(ys) if has_labels else None)


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


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

    Returns:
        A :class:`GANData` ``(train, heldout, heldout_labels,
        steps_per_epoch, sample_shape)``.

    Raises:
        ValueError: unknown ``name``, bad split, non-positive sizes, or
            ``n_critic * batch_size`` larger than the training set; raised
            before any sampling or loading.
        DatasetNotAvailableError: a TFDS dataset is not prepared in
            ``data_dir`` and ``download=False``.
        ImportError: TensorFlow is not installed (the in-memory
            :func:`sample_toy` / :func:`load_digits_split` need only NumPy).

    Example:
        >>> data = load_dataset("digits", batch_size=64, n_critic=5, seed=1)
        >>> data.steps_per_epoch, data.sample_shape
        (4, (8, 8, 1))

    Reference:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017
        (toy sets; 5 critic steps per generator step).
    """
    from keras_sngan.tf_required import require_tensorflow

    require_tensorflow("datasets.load_dataset (a tf.data pipeline)", backend=False)
    import tensorflow as tf

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
        train = tf.data.Dataset.from_tensor_slices(x_train).shuffle(
            len(x_train), seed=seed, reshuffle_each_iteration=True
        )
        return GANData(
            _batch(train, step), heldout, None, n_train // step, tuple(x_train.shape[1:])
        )

    if key == "digits":
        x_train, _, heldout, heldout_labels = load_digits_split()
        if train_size is not None:
            x_train = x_train[:train_size]
        if heldout_size is not None:
            heldout, heldout_labels = heldout[:heldout_size], heldout_labels[:heldout_size]
        _check_fits(name, step, batch_size, n_critic, len(x_train))
        train = tf.data.Dataset.from_tensor_slices(x_train).shuffle(
            len(x_train), seed=seed, reshuffle_each_iteration=True
        )
        return GANData(
            _batch(train, step),
            heldout,
            heldout_labels,
            len(x_train) // step,
            tuple(x_train.shape[1:]),
        )

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
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    _tfds_split_size(builder, split, "split")
    ds, has_labels = _tfds_images(builder, split, limit=n)
    return _to_numpy(ds, has_labels)


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


__all__ = [
    "BUILTIN_DATASETS",
    "TFDS_EXAMPLES",
    "TOY_DATASETS",
    "DatasetNotAvailableError",
    "GANData",
    "gaussian_mixture_modes",
    "load_arrays",
    "load_dataset",
    "load_digits_split",
    "sample_toy",
    "tfds_builder",
]
