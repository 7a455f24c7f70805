"""Compact tables of the comparison runs: per-iteration curves over seeds and final metrics."""

from __future__ import annotations

import pandas as pd

from keras_sngan.poster.plumbing import io
from keras_sngan.poster.plumbing.runs import load, load_metrics


# --------------------------------------------------------------------------- training curves
CURVE_METRICS = ("critic_loss", "wasserstein", "generator_loss", "grad_norm", "probe_grad_norm")


def training_curves(run_dirs, out_csv, every: int = 10) -> pd.DataFrame:
    """Mean / min / max over seeds of the per-iteration metrics and the critic gap.

    One row per ``(dataset, method, iteration)`` for every ``every``-th
    iteration (iteration 0 included): a compact, committed copy of the data
    behind the training-behaviour figure (the per-run CSVs hold every
    iteration).
    """
    every = io.check_int("training_curves", "every", every, 1)
    history = load(run_dirs, "history.csv")
    history = history[history["iteration"] % every == 0]
    gaps = load(run_dirs, "gap.csv")
    merged = history.merge(gaps[["dataset", "method", "seed", "iteration", "gap"]], how="left",
                           on=["dataset", "method", "seed", "iteration"])
    columns = [c for c in (*CURVE_METRICS, "gap") if c in merged]
    grouped = merged.groupby(["dataset", "method", "iteration"], sort=False)[columns]
    table = pd.concat({"mean": grouped.mean(), "min": grouped.min(), "max": grouped.max()}, axis=1)
    table.columns = [f"{metric}_{stat}" for stat, metric in table.columns]
    table = table.reset_index()
    table.insert(3, "seeds", grouped.size().to_numpy())
    io.write_csv(out_csv, table)
    return table


# --------------------------------------------------------------------------- summary table
SUMMARY_COLUMNS = [
    ("w1_excess", "W1 excess over real-vs-real floor"),
    ("w1_floor", "W1 floor"),
    ("high_quality_fraction", "high-quality fraction"),
    ("modes_covered", "modes covered"),
    ("frechet_distance", "classifier Frechet distance"),
    ("frechet_distance_floor", "Frechet floor"),
    ("classes_covered", "classes covered"),
    ("critic_gap", "critic gap (train - held-out)"),
    ("seconds_per_iteration", "s / generator iteration"),
]


def summary_table(metric_files, out_csv, out_md) -> pd.DataFrame:
    """Mean and standard deviation over seeds of the final metrics, per dataset and method."""
    frame = load_metrics(metric_files)
    rows = []
    for (dataset, method), g in frame.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": method, "seeds": int(len(g))}
        for column, _ in SUMMARY_COLUMNS:
            if column in g and g[column].notna().any():
                row[f"{column}_mean"] = float(g[column].mean())
                row[f"{column}_std"] = float(g[column].std(ddof=1)) if len(g) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows)
    io.write_csv(out_csv, table)
    lines = ["| dataset | method | seeds | " + " | ".join(label for _, label in SUMMARY_COLUMNS) + " |",
             "|---" * (3 + len(SUMMARY_COLUMNS)) + "|"]
    for row in rows:
        cells = []
        for column, _ in SUMMARY_COLUMNS:
            if f"{column}_mean" in row:
                cells.append(f"{row[f'{column}_mean']:.4g} ± {row[f'{column}_std']:.2g}")
            else:
                cells.append("–")
        lines.append(f"| {row['dataset']} | {row['method']} | {row['seeds']} | " + " | ".join(cells) + " |")
    io.write_text(out_md, "# Final metrics (mean ± std over seeds)\n\n" + "\n".join(lines) + "\n")
    return table
