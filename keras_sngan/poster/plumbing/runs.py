"""Load the files of many training runs into tidy tables."""

from __future__ import annotations

import os

import pandas as pd

from keras_sngan.poster.plumbing import io


def _with_keys(frame, info):
    for key in ("seed", "method", "dataset"):
        frame.insert(0, key, info[key])
    return frame


def load(run_dirs, name: str) -> pd.DataFrame:
    """Concatenate ``<run>/<name>`` (e.g. ``history.csv``) with dataset/method/seed columns."""
    frames = []
    for run in run_dirs:
        info = io.read_json(os.path.join(run, "run.json"))
        frames.append(_with_keys(pd.read_csv(os.path.join(run, name)), info))
    if not frames:
        raise ValueError(f"runs.load: no run directories given for {name!r}.")
    return pd.concat(frames, ignore_index=True)


def load_metrics(paths) -> pd.DataFrame:
    """One row per ``metrics.json`` file (accepts the files or their run directories)."""
    rows = []
    for path in paths:
        if os.path.isdir(path):
            path = os.path.join(path, "eval", "metrics.json")
        rows.append(io.read_json(path))
    if not rows:
        raise ValueError("runs.load_metrics: no metrics files given.")
    return pd.DataFrame(rows)


def order(values, preferred):
    """``values`` sorted with the ``preferred`` ones first, in that order."""
    values = list(dict.fromkeys(values))
    return [v for v in preferred if v in values] + [v for v in values if v not in preferred]


METHOD_ORDER = ("clip", "gp", "sn")
DATASET_ORDER = ("8gaussians", "25gaussians", "swissroll", "digits", "mnist", "fashion_mnist", "cifar10")
METHOD_LABEL = {"clip": "weight clipping", "gp": "gradient penalty", "sn": "spectral norm"}
METHOD_COLOR = {"clip": "tab:red", "gp": "tab:blue", "sn": "tab:green"}


def overfitting_final(table: pd.DataFrame) -> pd.DataFrame:
    """The last recorded iteration of every (dataset, train_size, method, seed) of an overfitting table."""
    keys = ["dataset", "train_size", "method", "seed"]
    last = table.groupby(keys, sort=False)["iteration"].transform("max")
    return table[table["iteration"] == last].reset_index(drop=True)
