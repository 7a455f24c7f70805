"""TensorFlow Datasets image sets: prepared data only, or a fast, clear error."""

from __future__ import annotations

import numpy as np

from keras_sngan.datasets.digits import BUILTIN_DATASETS
from keras_sngan.datasets.errors import DatasetNotAvailableError, how_to_provide

__all__ = ["TFDS_EXAMPLES", "DatasetNotAvailableError", "tfds_builder"]

TFDS_EXAMPLES = ("mnist", "fashion_mnist", "cifar10")
"""TFDS image datasets known to work; any other TFDS image dataset works too."""


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
                "manual_dir=...))`; or (3) pass `download=True` on a machine with network; "
                f"or (4) {how_to_provide(name)}."
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
