"""What a missing dataset raises, and the one sentence that says how to provide it (a leaf module)."""

from __future__ import annotations

import os

ARRAYS_ENV = "KERAS_SNGAN_IMAGE_ARRAYS"
"""Environment variable: the directory of prepared array files, ``<name>.npz`` per TFDS image set."""


class DatasetNotAvailableError(FileNotFoundError):
    """A dataset's data is not here: a TFDS set not prepared (and downloading off), or no TensorFlow to read it."""


def prepare_command(name: str) -> str:
    """The command that writes ``name``'s array file (quoted in error messages)."""
    return f"keras-sngan prepare-images --dataset {name} --out DIR/{name}.npz"


def how_to_provide(name: str) -> str:
    """One sentence: how to give TFDS image set ``name`` as a prepared array file (and where it was looked for)."""
    folder = os.environ.get(ARRAYS_ENV)
    looked = (f" ({ARRAYS_ENV}={folder}, but {os.path.join(folder, name + '.npz')} does not exist)"
              if folder else "")
    return (
        f"give it as a prepared array file: on a machine with TensorFlow run `{prepare_command(name)}`, then "
        f"pass `arrays=` or set {ARRAYS_ENV}=DIR (the pipeline: `image_arrays: DIR`){looked}"
    )
