"""Atomic file output and small shared helpers for the experiments.

Every result file is first written to a temporary file in the same
directory and then moved into place with `os.replace`, which is atomic on
POSIX: a reader (or Snakemake after a crash) sees either the previous file or
the complete new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file keeps the suffix of ``path`` (some writers, such as
    matplotlib and Keras, choose the format from it). On error it is removed
    and ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON (NaN/inf become ``null``), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(_jsonable(data), handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path):
    """Read a JSON file."""
    with open(path) as handle:
        return json.load(handle)


def write_csv(path, frame) -> None:
    """Write a pandas DataFrame to CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)


def save_figure(fig, path, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def check_choice(function: str, name: str, value, allowed) -> None:
    """Raise ``ValueError`` naming the parameter unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{function}: `{name}` must be one of {list(allowed)}, received {value!r}.")


def check_int(function: str, name: str, value, minimum: int = 1) -> int:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{function}: `{name}` must be an integer >= {minimum}, received {value!r}.")
    return int(value)


def check_positive(function: str, name: str, value) -> float:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (0 < number < float("inf")):
        raise ValueError(f"{function}: `{name}` must be a finite number > 0, received {value!r}.")
    return number
