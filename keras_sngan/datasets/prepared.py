"""TFDS image sets as prepared array files, readable on every backend without TensorFlow.

TFDS needs TensorFlow to read a dataset. On a machine that has it, one
command writes an image set's ``train`` and ``test`` splits into one ``.npz``
file::

    keras-sngan prepare-images --dataset cifar10 --out arrays/cifar10.npz

(:func:`~keras_sngan.datasets.save_arrays`). On any machine, with any Keras backend,
:func:`~keras_sngan.datasets.load_arrays` and
:func:`~keras_sngan.datasets.load_dataset` then read the set from that file:
pass ``arrays="arrays/cifar10.npz"``, or set the environment variable
``KERAS_SNGAN_IMAGE_ARRAYS`` to the directory that holds ``<name>.npz`` (the
pipeline's ``image_arrays`` setting does that for every job).

The file stores the images as ``uint8`` (a quarter of the size of float32)
and the labels as ``int64``; reading converts the images exactly as the TFDS
path does (``float32(u) / 127.5 - 1``), so both paths give the same arrays bit
for bit. :func:`~keras_sngan.datasets.save_arrays` checks that before it writes.
"""

from __future__ import annotations

import os

import numpy as np

from keras_sngan.datasets.errors import ARRAYS_ENV, DatasetNotAvailableError, how_to_provide, prepare_command

SPLITS = ("train", "test")


def arrays_path(name: str, arrays=None) -> str | None:
    """The array file to read ``name`` from: ``arrays`` if given, else ``$KERAS_SNGAN_IMAGE_ARRAYS/<name>.npz``.

    Returns ``None`` when neither applies (read through TFDS instead).

    Raises:
        DatasetNotAvailableError: ``arrays`` is given and is not a file.
    """
    if arrays is not None:
        path = os.fspath(arrays)
        if not os.path.isfile(path):
            raise DatasetNotAvailableError(
                f"the array file of dataset {name!r}, `arrays`={path!r}, does not exist; {how_to_provide(name)}."
            )
        return path
    folder = os.environ.get(ARRAYS_ENV)
    if folder:
        path = os.path.join(folder, f"{name}.npz")
        if os.path.isfile(path):
            return path
    return None


def check_available(name: str) -> None:
    """Raise unless ``name`` can be read here: built in, a prepared array file, or TFDS data prepared.

    Standard library only (no TensorFlow, no Keras), so a command can say
    in one line, before its backend starts, that a dataset is missing. TFDS
    data counts as present when ``$TFDS_DATA_DIR`` (else
    ``~/tensorflow_datasets``) holds a ``<name>/<version>/dataset_info.json``;
    TFDS checks the rest when it reads it.

    Raises:
        DatasetNotAvailableError: none of the three is there; the message
            names the dataset and how to provide it.
    """
    import glob

    from keras_sngan.datasets.digits import BUILTIN_DATASETS

    if name in BUILTIN_DATASETS or arrays_path(name) is not None:
        return
    data_dir = os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    if glob.glob(os.path.join(glob.escape(data_dir), name, "*", "dataset_info.json")):
        return
    raise DatasetNotAvailableError(
        f"dataset {name!r} is not here: it is not built in ({', '.join(BUILTIN_DATASETS)}), and TFDS has not "
        f"prepared it in {data_dir!r} ($TFDS_DATA_DIR). To use it, {how_to_provide(name)}; or prepare it with "
        f"TFDS on a machine with network (`tfds.builder({name!r}, data_dir=DIR).download_and_prepare()`, then "
        f"TFDS_DATA_DIR=DIR here)."
    )


def to_float(images: np.ndarray) -> np.ndarray:
    """``uint8`` images to ``float32`` in ``[-1, 1]``, exactly as the TFDS path (``float32(u) / 127.5 - 1``)."""
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def read_arrays(path, name: str, split: str, n: int | None = None, owner: str = "load_arrays"
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Split ``split`` (``"train"`` or ``"test"``) of ``name`` from its array file: ``(x, y)``, the first ``n``.

    Raises:
        ValueError: ``split`` is not one of :data:`SPLITS`, or the file is not
            ``name``'s array file (another set, or not written by
            :func:`~keras_sngan.datasets.save_arrays`).
    """
    if split not in SPLITS:
        raise ValueError(
            f"{owner}: a split of a prepared array file must be one of {list(SPLITS)}, received {split!r} "
            f"(dataset {name!r}, file {os.fspath(path)!r})."
        )
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        wanted = {"name", "x_train", "y_train", "x_test", "y_test"}
        if not wanted <= keys or str(data["name"]) != name:
            found = str(data["name"]) if "name" in keys else "no name"
            raise ValueError(
                f"{owner}: {os.fspath(path)!r} is not the array file of dataset {name!r} (it holds {found!r}, "
                f"arrays {sorted(keys)}); write it with `{prepare_command(name)}`."
            )
        x, y = data[f"x_{split}"], data[f"y_{split}"]
    if n is not None:
        x, y = x[:n], y[:n]
    return to_float(x), (y if (y >= 0).all() else None)
