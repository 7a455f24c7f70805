"""Did the long runs converge? A stated criterion on the runs' sample-quality record.

Each run of the long profile records, at iteration 0 and after every epoch,
the W1 distance of 1000 generated points to as many held-out points, the
real-vs-real floor at that sample size, and for Gaussian mixtures the modes
covered (``quality.csv``, :class:`keras_sngan.poster.running.training`'s
recorder). The criterion, fixed before the runs (module constants):

- per (dataset, method) cell, ``e(t)`` is the W1 *excess* over the floor at
  record ``t``, averaged over seeds, and ``w(T)`` the final W1 (mean over
  seeds) at the last record ``T``;
- the cell is *settled from* the earliest record ``t`` such that every record
  ``t' >= t`` has ``|e(t') - e(T)| <= SETTLE_REL * w(T)`` and, on a Gaussian
  mixture, every seed covers every mode. The tolerance is relative to the
  final W1 itself, not to the excess, so that a run at the floor is not judged
  on the sampling noise of a difference near zero;
- the cell *converged* if it is settled from an iteration no later than
  ``(1 - LAST_FRACTION) * T``: it stayed settled over at least the last
  ``LAST_FRACTION`` of the run. Otherwise the iteration cap ``T`` was hit
  first;
- a dataset *reached* the behaviour the claims speak of if its best method
  (lowest final excess) converged.

Every method runs the same number of iterations (the cap), so that the
claims compare them at the same iterations; the criterion says whether that
budget was long enough.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keras_sngan.poster.plumbing import io
from keras_sngan.poster.plumbing.runs import DATASET_ORDER, METHOD_ORDER, load, order

SETTLE_REL = 0.10
LAST_FRACTION = 0.20
CONSTANTS = {"SETTLE_REL": SETTLE_REL, "LAST_FRACTION": LAST_FRACTION}


def cell_convergence(quality: pd.DataFrame) -> pd.DataFrame:
    """The criterion per (dataset, method) cell of a tidy ``quality`` table (one row per run and record).

    Columns of the input: ``dataset, method, seed, iteration, w1, floor,
    excess`` and, for Gaussian mixtures, ``modes_covered, num_modes``.
    Returns one row per cell: seeds, last iteration, final W1 / floor /
    excess (means over seeds), fewest modes any seed covers at the end,
    ``settled_from`` (NaN if never), ``converged`` and ``best`` (lowest final
    excess of its dataset).
    """
    required = ["dataset", "method", "seed", "iteration", "w1", "floor", "excess"]
    missing = [c for c in required if c not in quality]
    if missing:
        raise ValueError(f"convergence: the quality table lacks column(s) {missing}; it has {list(quality.columns)}.")
    rows = []
    for (dataset, method), g in quality.groupby(["dataset", "method"], sort=False):
        per_record = g.groupby("iteration").agg(excess=("excess", "mean"), w1=("w1", "mean"), floor=("floor", "mean"))
        has_modes = "num_modes" in g and g["num_modes"].notna().any()
        if has_modes:
            all_modes = (g["modes_covered"] >= g["num_modes"]).groupby(g["iteration"]).all()
            per_record["all_modes"] = all_modes.reindex(per_record.index).to_numpy(bool)
        else:
            per_record["all_modes"] = True
        iterations = per_record.index.to_numpy(int)
        last = int(iterations.max())
        final = per_record.loc[last]
        ok = (np.abs(per_record["excess"] - final["excess"]) <= SETTLE_REL * final["w1"]) & per_record["all_modes"]
        # earliest record from which every later record is ok
        suffix_ok = ok.to_numpy(bool)[::-1].cumprod()[::-1].astype(bool)
        settled_from = float(iterations[suffix_ok][0]) if suffix_ok.any() else float("nan")
        final_runs = g[g["iteration"] == last]
        rows.append({
            "dataset": dataset, "method": method, "seeds": int(g["seed"].nunique()), "iterations": last,
            "final_w1": float(final["w1"]), "final_floor": float(final["floor"]), "final_excess": float(final["excess"]),
            "final_excess_std": float(final_runs["excess"].std(ddof=1)) if len(final_runs) > 1 else 0.0,
            "min_modes_covered": float(final_runs["modes_covered"].min()) if has_modes else float("nan"),
            "num_modes": float(final_runs["num_modes"].max()) if has_modes else float("nan"),
            "settled_from": settled_from,
            "converged": bool(np.isfinite(settled_from) and settled_from <= (1 - LAST_FRACTION) * last),
        })
    table = pd.DataFrame(rows)
    if len(table):
        best = table.loc[table.groupby("dataset", sort=False)["final_excess"].idxmin(), ["dataset", "method"]]
        table["best"] = [(d, m) in set(map(tuple, best.to_numpy())) for d, m in zip(table["dataset"], table["method"])]
        rank = {d: i for i, d in enumerate(order(table["dataset"], DATASET_ORDER))}
        mrank = {m: i for i, m in enumerate(order(table["method"], METHOD_ORDER))}
        table = table.sort_values(["dataset", "method"], key=lambda s: s.map(rank if s.name == "dataset" else mrank))
    return table.reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """The criterion, the per-cell table and one line per dataset."""
    lines = [
        "# Convergence of the long runs",
        "",
        "Generated by `keras-sngan convergence` from the runs' `quality.csv` records "
        "(`keras_sngan/poster/judging/convergence.py`). Criterion, fixed before the runs: a cell (dataset, method) "
        f"is *settled from* the first record after which its W1 excess over the real-vs-real floor (mean over seeds) "
        f"stays within {SETTLE_REL:.0%} of the final W1 of its final value and, on a Gaussian mixture, every seed "
        f"covers every mode; it *converged* if it stayed settled over at least the last {LAST_FRACTION:.0%} of the run. "
        "Otherwise the iteration cap was hit first.",
        "",
        "| dataset | method | seeds | final W1 | floor | excess (± sd) | modes (fewest over seeds) | settled from | converged | best |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        modes = f"{r.min_modes_covered:.0f} / {r.num_modes:.0f}" if np.isfinite(r.num_modes) else "n/a"
        settled = f"{r.settled_from:.0f}" if np.isfinite(r.settled_from) else "never"
        lines.append(
            f"| {r.dataset} | {r.method} | {r.seeds} | {r.final_w1:.4f} | {r.final_floor:.4f} | "
            f"{r.final_excess:.4f} ± {r.final_excess_std:.4f} | {modes} | {settled} | "
            f"{'yes' if r.converged else f'no (cap {r.iterations})'} | {'yes' if r.best else ''} |"
        )
    lines.append("")
    for dataset, summary in reached(table).items():
        lines.append(f"- {dataset}: best method {summary['best']}: "
                     + ("converged" if summary["converged"] else f"did not converge before the cap of {summary['iterations']} iterations")
                     + f" (settled from {summary['settled_from'] if summary['settled_from'] is not None else 'never'}).")
    return "\n".join(lines) + "\n"


def reached(table: pd.DataFrame) -> dict:
    """``{dataset: {best, converged, settled_from, iterations}}``: did each dataset's best method converge?"""
    out = {}
    for r in table[table["best"]].itertuples():
        out[r.dataset] = {"best": r.method, "converged": bool(r.converged), "iterations": int(r.iterations),
                          "settled_from": None if not np.isfinite(r.settled_from) else int(r.settled_from)}
    return out


def run(run_dirs, out_csv, out_md, out_json=None) -> pd.DataFrame:
    """Load every run's ``quality.csv``, apply the criterion and write the table (CSV, Markdown, JSON)."""
    table = cell_convergence(load(run_dirs, "quality.csv"))
    io.write_csv(out_csv, table)
    io.write_text(out_md, markdown(table))
    if out_json is not None:
        io.write_json(out_json, {"constants": CONSTANTS, "cells": table.to_dict("records"), "datasets": reached(table)})
    return table
