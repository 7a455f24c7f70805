"""Gradient flow through a deep critic (Gulrajani et al. 2017, Fig. 1b).

The runs themselves are ordinary :func:`keras_sngan.poster.running.training.train`
runs (a 12-layer ReLU MLP critic on swiss roll, clipping at several ``c``,
GP and SN); this module turns their ``layers.csv`` files into one table of
per-layer weight-gradient norms at chosen iterations, including iteration 0
(initialization), so an initialization effect is not mistaken for a training
effect.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from keras_sngan.poster.plumbing import io


def collect(run_dirs, labels) -> pd.DataFrame:
    """Concatenate the ``layers.csv`` of several runs with a ``config`` and ``seed`` column."""
    frames = []
    for run_dir, label in zip(run_dirs, labels):
        frame = pd.read_csv(os.path.join(run_dir, "layers.csv"))
        info = io.read_json(os.path.join(run_dir, "run.json"))
        frame.insert(0, "seed", int(info["seed"]))
        frame.insert(0, "config", label)
        frames.append(frame)
    if not frames:
        raise ValueError("gradient_flow.collect: `run_dirs` is empty.")
    return pd.concat(frames, ignore_index=True)


def profile(layers: pd.DataFrame, iterations) -> pd.DataFrame:
    """Per-layer gradient norms (geometric mean and min/max over seeds) at given iterations.

    For each requested iteration the nearest recorded one is used.
    """
    rows = []
    recorded = np.sort(layers["iteration"].unique())
    for target in iterations:
        it = int(recorded[np.argmin(np.abs(recorded - int(target)))])
        at = layers[layers["iteration"] == it]
        for (config, depth), group in at.groupby(["config", "depth"], sort=False):
            values = group["grad_norm"].to_numpy(float)
            positive = values[values > 0]
            rows.append(
                {
                    "iteration": it,
                    "config": config,
                    "depth": int(depth),
                    "layer": group["layer"].iloc[0],
                    "grad_norm_geomean": float(np.exp(np.mean(np.log(positive)))) if len(positive) else 0.0,
                    "grad_norm_min": float(values.min()),
                    "grad_norm_max": float(values.max()),
                    "seeds": int(len(values)),
                }
            )
    return pd.DataFrame(rows)


def run(run_dirs, labels, out_csv, iterations) -> pd.DataFrame:
    """Write the per-layer profile table for ``iterations`` (e.g. 0, 200, last)."""
    if len(run_dirs) != len(labels):
        raise ValueError(
            f"gradient_flow.run: got {len(run_dirs)} run directories but {len(labels)} labels."
        )
    table = profile(collect(run_dirs, labels), iterations)
    io.write_csv(out_csv, table)
    return table
