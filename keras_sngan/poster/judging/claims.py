"""The poster's claims, the numbers that test them, and verdicts by explicit rules.

Every verdict is computed here from the pipeline's data; nothing is typed by
hand. Each rule is a plain function of tidy tables (tested on synthetic tables
built to make it answer *supported*, *partly supported* and *not supported*),
and it returns the numbers and tolerances it used. Rendering
(``claims.md``, ``claims.html``, ``claims.json``) lives in
:mod:`keras_sngan.poster.reporting.claims_report`.

Conventions shared by the rules:

- *Like with like.* Methods whose outputs live on different scales (a clipped
  critic's scores are ~1e-3 of a GP critic's) are compared through
  scale-free quantities: fractions of a run's own range, growth factors,
  standardized differences, ranks within a dataset.
- *Majorities, not "any".* A rule that aggregates datasets (or quantities)
  needs a strict majority; one dataset never decides a verdict alone.
- *Tolerances from numerical error.* Bounds computed in float32 are compared
  with 1 up to :func:`float32_bound_tolerance`, the a-priori float32 error
  of a product of ``depth + 1`` spectral norms of ``width``-wide matrices
  (``(depth + 1) * width * eps``, Higham's bound for each norm); the
  tolerance is printed with the verdict.

The rules (constants are module constants, fixed before any run and printed
with the verdicts in ``claims.md``):

1. *Clipping leaves small gradients by about iteration 200.* Quantity: the
   probe gradient norm ``probe_grad_norm`` (:mod:`keras_sngan.poster.running.gradient_probe`:
   the same inference-mode measurement for every method, after the generator
   update, no epsilon floor), mean over the window's iterations, mean over
   seeds. Clipping is *small* on a dataset if ``g_clip <= SMALL_REL * g_m``
   for every other method ``m``; *already small at initialization* if the
   same holds at iteration 0. **supported** if small on every dataset and
   not already small at iteration 0 on a majority of them (the effect
   develops in training); **partly** if small on a majority of datasets
   (whether or not from initialization); **not supported** otherwise.
2a. *GP drives the critic loss down fast.* On the Wasserstein part of the
   critic loss only (``-W``, the loss minus GP's penalty): per run, the
   *early progress* ``p = (mean W over iterations 1..cut - W(0)) /
   (max_k mean W over block k - W(0))`` with ``cut = ceil(EARLY_FRACTION *
   last iteration)`` and the run split into blocks of ``cut`` iterations:
   the fraction of its own largest rise a run reaches in the first block
   (scale-free; 0 if the run never rises). Per dataset the methods are
   ranked by mean ``p`` over seeds; tied methods share the better rank, and
   a tie for first place is not first (the ranking never depends on the
   order in which the methods are listed). **supported** if GP ranks first
   on a majority of datasets; **partly** if GP ranks in the top half (first
   or second of three) on a majority; **not supported** otherwise.
2b. *GP risks overfitting.* On the overfitting experiment
   (:mod:`keras_sngan.poster.running.overfitting`: fixed small training sets,
   many seeds), per run the standardized train/held-out gap
   ``d = (mean f(x_train) - mean f(x_heldout)) / s`` (``s``: pooled
   standard deviation of the critic's scores on both sets; the same fakes
   enter both Wasserstein terms and cancel). In a cell (dataset,
   training-set size) GP's gap is *positive* if its ``d`` > 0 by a
   one-sided one-sample t-test, and GP *overfits more* if in addition its
   ``d`` exceeds clipping's and SN's by one-sided Welch t-tests, each at
   ``ALPHA / cells`` (Bonferroni over the cells). GP is the paper's
   lambda = 10 (label ``gp``). **supported** if GP overfits more in at
   least one cell; **partly** if its gap is only positive in some cell;
   **not supported** otherwise.
3. *SN is the middle ground.* Scale-free quantities, each per dataset (or
   overfitting cell): the early progress ``p`` of rule 2a, the growth of
   the probe gradient norm from iteration 0 to the window
   (``log10(g_window / g_0)``; undefined if either is 0), and the
   standardized gap ``d`` of rule 2b. SN is *between* if its mean lies in
   ``[min, max]`` of clipping's and GP's (undefined counts as not between).
   **supported** if SN is between on a majority of datasets for every
   quantity; **partly** if between on a majority of all (dataset, quantity)
   pairs pooled; **not supported** otherwise.
4. *SN makes ReLU / LeakyReLU networks 1-Lipschitz; not GELU / Swish.*
   Every row of the Lipschitz table (all states: initialized, trained and the
   hand-built worst-case chains) is treated alike, with its own tolerance
   ``tol = float32_bound_tolerance(depth, width)``. (A) every ReLU /
   LeakyReLU row has certified upper bound <= 1 + tol; (A') no ReLU /
   LeakyReLU row has a lower bound (a measured slope, a true lower bound
   of the constant) > 1 + tol; (B) for every GELU / Swish activation some
   row has a lower bound > 1 + tol (measured: the network is not
   1-Lipschitz, so no certificate of 1 can exist); (C) such a row exists
   among the initialized or trained networks, not only the worst-case
   chains. **supported** if A, A', B and C; **partly** if A' and B hold
   (no ReLU violation measured, GELU/Swish violations measured) but A or C
   fails; **not supported** if A' or B fails.
5. *Var((Wx)_i) = n s^2, so s^2 ~ 1/n (LeCun/Xavier) keeps activations
   stable; SN bounds ||W||_2 without assuming a distribution for x.*
   (a) every cell of the variance check has ``|z| <= Z_MAX``; (b) the LeCun
   choice ``c = 1`` keeps the per-layer activation factor within
   ``1 +- STABLE_TOL`` for every activation at the largest depth (b') or at
   least some ``c`` does for every activation; (c) SN keeps every layer's
   spectral norm and gain <= 1 + tol (tol: float32 bound tolerance of one
   layer of the table's width) for every input family. **supported** if a,
   b and c; **partly** if a and c with only b'; **not supported** if a or c
   fails, or neither b nor b'.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from keras_sngan.poster.plumbing.runs import METHOD_ORDER

SMALL_REL = 0.1
EARLY_FRACTION = 0.1
ALPHA = 0.05
Z_MAX = 4.0
STABLE_TOL = 0.05
FLOAT32_EPS = float(np.finfo(np.float32).eps)
SUPPORTED, PARTLY, NOT_SUPPORTED = "supported", "partly supported", "not supported"
THRESHOLDS = {"SMALL_REL": SMALL_REL, "EARLY_FRACTION": EARLY_FRACTION, "ALPHA": ALPHA, "Z_MAX": Z_MAX,
              "STABLE_TOL": STABLE_TOL, "FLOAT32_EPS": FLOAT32_EPS}
GP_REFERENCE = "gp"  # the method label rule 2b tests: GP at the paper's lambda = 10


def float32_bound_tolerance(depth, width) -> float:
    """A-priori float32 error of a Lipschitz bound: ``(depth + 1) * width * eps``.

    A bound of a depth-``depth`` MLP is a product of ``depth + 1`` spectral
    norms; each norm of a ``width``-wide float32 matrix carries a relative
    error of at most about ``width * eps`` (Higham, *Accuracy and Stability
    of Numerical Algorithms*, backward error of the products it is computed
    from), and relative errors of a product add up.
    """
    return (int(depth) + 1) * max(int(width), 1) * FLOAT32_EPS


def _majority(count, total):
    return total > 0 and count > total / 2


def _by_method(series):
    """{dataset: {method: (mean, std, n)}} from a (dataset, method, seed)-indexed series."""
    out = {}
    for (dataset, method), g in series.groupby(level=[0, 1], sort=False):
        values = g.to_numpy(float)
        out.setdefault(dataset, {})[method] = (
            float(np.mean(values)),
            float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            int(len(values)),
        )
    return out


def _fmt(stat):
    mean, std, n = stat
    return f"{mean:.4g} ± {std:.2g} (n={n})"


def _methods(stats):
    return [m for m in METHOD_ORDER if m in stats] + [m for m in stats if m not in METHOD_ORDER]


def _require(frame, columns, rule):
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"claims.{rule}: the table lacks column(s) {missing}; it has {list(frame.columns)}.")


# --------------------------------------------------------------------------- shared quantities
def window_mean(history, column, window):
    """Mean of ``column`` over iterations ``window[0]..window[1]``, per (dataset, method, seed)."""
    lo, hi = window
    sel = history[(history["iteration"] >= lo) & (history["iteration"] <= hi)]
    return sel.groupby(["dataset", "method", "seed"], sort=False)[column].mean()


def at_iteration(history, column, iteration=0):
    """``column`` at one iteration, per (dataset, method, seed)."""
    sel = history[history["iteration"] == iteration]
    return sel.groupby(["dataset", "method", "seed"], sort=False)[column].mean()


def _runs(history, column):
    """``(key, last iteration, iterations, values)`` of every (dataset, method, seed) run, in order of
    appearance, sorted by iteration (numpy arrays: the bootstrap calls the rules thousands of times)."""
    iterations = history["iteration"].to_numpy()
    values = history[column].to_numpy(float)
    for key, index in history.groupby(["dataset", "method", "seed"], sort=False).indices.items():
        it, val = iterations[index], values[index]
        order = np.argsort(it, kind="stable")
        yield key, int(it.max()), it[order], val[order]


def _mean(values):
    """pandas' mean: NaN skipped; NaN if nothing is left."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _early_cut(last):
    return max(1, int(math.ceil(EARLY_FRACTION * last)))


def early_progress(history, column="wasserstein"):
    """Rule 2a's scale-free early progress ``p`` of ``column`` per (dataset, method, seed).

    ``p = (mean over 1..cut - value at 0) / (largest block mean - value at 0)``,
    blocks of ``cut = ceil(EARLY_FRACTION * last iteration)`` iterations
    starting at iteration 1; 0 when the run never rises above its start.
    """
    rows = {}
    for key, last, it, val in _runs(history, column):
        start = _mean(val[it == 0])
        later = it >= 1
        block, val = (it[later] - 1) // _early_cut(last), val[later]
        if not len(block):
            rows[key] = 0.0
            continue
        finite = ~np.isnan(val)
        size = int(block.max()) + 1
        counts = np.bincount(block[finite], minlength=size)
        sums = np.bincount(block[finite], weights=val[finite], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (sums / counts)[np.bincount(block, minlength=size) > 0]  # a block of NaN only: NaN
        highest = means[~np.isnan(means)].max() if (~np.isnan(means)).any() else float("nan")
        rise, early = float(highest) - start, float(means[0]) - start
        rows[key] = early / rise if rise > 0 else 0.0
    return pd.Series(rows, dtype=float)


def early_drop(history, column="wasserstein"):
    """``W(0) - mean W(1..cut)`` sign-flipped to a loss drop: the early drop of ``-W`` per run (raw scale)."""
    rows = {}
    for key, last, it, val in _runs(history, column):
        rows[key] = _mean(val[(it >= 1) & (it <= _early_cut(last))]) - _mean(val[it == 0])
    return pd.Series(rows, dtype=float)


def gradient_growth(history, window, column="probe_grad_norm"):
    """``log10(g_window / g_0)`` per (dataset, method): mean over seeds first; NaN if either is 0."""
    win = _by_method(window_mean(history, column, window))
    init = _by_method(at_iteration(history, column))
    out = {}
    for dataset, stats_ in win.items():
        for method, (mean, _, _) in stats_.items():
            g0 = init[dataset][method][0]
            out.setdefault(dataset, {})[method] = math.log10(mean / g0) if mean > 0 and g0 > 0 else float("nan")
    return out


# --------------------------------------------------------------------------- rule 1
def claim_clipping(history, window):
    """Rule 1 (see module docstring)."""
    _require(history, ["probe_grad_norm"], "claim_clipping")
    g_win = _by_method(window_mean(history, "probe_grad_norm", window))
    g_init = _by_method(at_iteration(history, "probe_grad_norm"))
    small, small_init, lines = [], [], []
    for dataset, stats_ in g_win.items():
        others = [m for m in stats_ if m != "clip"]
        if "clip" not in stats_ or not others:
            continue
        clip = stats_["clip"][0]
        is_small = all(clip <= SMALL_REL * stats_[m][0] for m in others)
        init = g_init[dataset]
        was_small = all(init["clip"][0] <= SMALL_REL * init[m][0] for m in others)
        small.append(is_small)
        small_init.append(was_small)
        lines.append(
            f"{dataset}: probe ||grad_x f|| in iterations {window[0]}-{window[1]}: "
            + ", ".join(f"{m} {_fmt(stats_[m])}" for m in _methods(stats_))
            + "; at iteration 0: " + ", ".join(f"{m} {init[m][0]:.3g}" for m in _methods(init))
            + f" -> clip <= {SMALL_REL} x every other method: in window {is_small}, at iteration 0 {was_small}"
        )
    n = len(small)
    if n and all(small) and _majority(n - sum(small_init), n):
        verdict = SUPPORTED
    elif _majority(sum(small), n):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    note = ""
    if n and _majority(sum(small), n) and _majority(sum(small_init), n):
        note = ("Clipping's gradients are already small at iteration 0 on most datasets (the initial weights are "
                "clipped to [-c, c]): the effect is present from initialization, not something that develops "
                "by iteration 200.")
    return {"numbers": lines, "verdict": verdict, "note": note,
            "used": {"quantity": "probe_grad_norm", "window": list(window), "SMALL_REL": SMALL_REL,
                     "small_datasets": int(sum(small)), "small_at_init_datasets": int(sum(small_init)),
                     "datasets": n}}


# --------------------------------------------------------------------------- rule 2
def standardized_gap_tests(overfit, reference=GP_REFERENCE, alpha=ALPHA):
    """Rule 2b's tests per cell (dataset, train_size): GP's standardized gap vs 0 and vs each other method.

    Returns one dict per cell with the one-sample and Welch p-values
    (one-sided), Hedges' g, the mean difference and its 95% Welch confidence
    interval per other method, and whether GP overfits at ``alpha / cells``.
    """
    _require(overfit, ["dataset", "train_size", "method", "seed", "std_gap", "gap"], "standardized_gap_tests")
    cells = list(overfit.groupby(["dataset", "train_size"], sort=False))
    level = alpha / max(len(cells), 1)
    out = []
    for (dataset, size), g in cells:
        values = {m: g[g["method"] == m]["std_gap"].to_numpy(float) for m in g["method"].unique()}
        raw = {m: g[g["method"] == m]["gap"].to_numpy(float) for m in g["method"].unique()}
        cell = {"dataset": dataset, "train_size": int(size), "level": level, "overfits": False, "positive": False,
                "summary": {m: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) for m, v in values.items()},
                "raw_gap": {m: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) for m, v in raw.items()},
                "comparisons": {}}
        gp = values.get(reference)
        if gp is None or len(gp) < 2:
            out.append(cell)
            continue
        p0 = float(stats.ttest_1samp(gp, 0.0, alternative="greater").pvalue) if np.std(gp) > 0 else (0.0 if gp.mean() > 0 else 1.0)
        cell["p_positive"] = p0
        ok = p0 < level
        for m, other in values.items():
            if m not in ("clip", "sn") or len(other) < 2:
                continue
            test = stats.ttest_ind(gp, other, equal_var=False, alternative="greater")
            p = float(test.pvalue) if np.isfinite(test.pvalue) else (0.0 if gp.mean() > other.mean() else 1.0)
            ci = stats.ttest_ind(gp, other, equal_var=False).confidence_interval(0.95) if np.isfinite(test.pvalue) else None
            pooled = math.sqrt(((len(gp) - 1) * gp.var(ddof=1) + (len(other) - 1) * other.var(ddof=1)) / (len(gp) + len(other) - 2))
            hedges = (gp.mean() - other.mean()) / pooled * (1 - 3 / (4 * (len(gp) + len(other)) - 9)) if pooled > 0 else float("nan")
            cell["comparisons"][m] = {"difference": float(gp.mean() - other.mean()), "p": p,
                                      "ci95": [float(ci.low), float(ci.high)] if ci is not None else [float("nan")] * 2,
                                      "hedges_g": float(hedges)}
            ok = ok and p < level
        cell["positive"] = bool(p0 < level)
        cell["overfits"] = bool(ok and cell["comparisons"])
        out.append(cell)
    return out


def claim_gp_speed(history):
    """Rule 2a (see module docstring)."""
    _require(history, ["wasserstein"], "claim_gp_speed")
    progress = _by_method(early_progress(history))
    drop = _by_method(early_drop(history))
    first, top_half, lines = [], [], []
    for dataset, stats_ in progress.items():
        if GP_REFERENCE not in stats_ or len(stats_) < 2:
            continue
        gp = stats_[GP_REFERENCE][0]
        others = [m for m in stats_ if m != GP_REFERENCE]
        tied = [m for m in others if stats_[m][0] == gp]
        rank = 1 + sum(stats_[m][0] > gp for m in others)  # a tie shares the better rank, whatever the method order
        first.append(rank == 1 and not tied)  # first: ahead of every other method; a tie for first is not first
        top_half.append(rank <= math.ceil(len(stats_) / 2))
        lines.append(
            f"{dataset}: early progress p of the Wasserstein estimate (fraction of the run's largest rise reached "
            f"in the first {EARLY_FRACTION:.0%}): " + ", ".join(f"{m} {_fmt(stats_[m])}" for m in _methods(stats_))
            + "; raw early rise of W (= drop of the critic loss minus GP's penalty): "
            + ", ".join(f"{m} {drop[dataset][m][0]:.4g}" for m in _methods(drop[dataset]))
            + f" -> GP's rank {rank} of {len(stats_)}" + (f" (tied with {', '.join(tied)})" if tied else "")
        )
    n = len(first)
    verdict = SUPPORTED if _majority(sum(first), n) else PARTLY if _majority(sum(top_half), n) else NOT_SUPPORTED
    return {"numbers": lines, "verdict": verdict, "note": "",
            "used": {"quantity": "early progress p of wasserstein", "EARLY_FRACTION": EARLY_FRACTION,
                     "gp_first_datasets": int(sum(first)), "gp_top_half_datasets": int(sum(top_half)), "datasets": n}}


def claim_gp_overfit(overfit):
    """Rule 2b (see module docstring). ``overfit``: the overfitting experiment's table (or None)."""
    cells = standardized_gap_tests(overfit) if overfit is not None and len(overfit) else []
    lines = []
    for cell in cells:
        summ = cell["summary"]
        text = (f"{cell['dataset']}, {cell['train_size']} training samples: standardized gap d "
                + ", ".join(f"{m} {_fmt(summ[m])}" for m in _methods(summ))
                + "; raw gap " + ", ".join(f"{m} {cell['raw_gap'][m][0]:.3g}" for m in _methods(cell["raw_gap"])))
        if "p_positive" in cell:
            text += f"; GP d > 0: one-sided p = {cell['p_positive']:.3g}"
            for m, c in cell["comparisons"].items():
                text += (f"; GP - {m}: {c['difference']:.3g} [95% CI {c['ci95'][0]:.3g}, {c['ci95'][1]:.3g}], "
                         f"Hedges g {c['hedges_g']:.2f}, Welch one-sided p = {c['p']:.3g}")
        text += f" (level {cell['level']:.3g}) -> GP gap > 0: {cell['positive']}, GP overfits more than the others: {cell['overfits']}"
        lines.append(text)
    overfits = sum(c["overfits"] for c in cells)
    positive = sum(c["positive"] for c in cells)
    verdict = SUPPORTED if overfits else PARTLY if positive else NOT_SUPPORTED
    note = "" if cells else "No overfitting experiment was given: the rule had no data."
    if not overfits and positive:
        note = "GP's critic scores its training samples above held-out ones, but not more than the other methods' critics do."
    return {"numbers": lines, "verdict": verdict, "note": note,
            "used": {"quantity": "standardized gap d (same fakes)", "gp_label": GP_REFERENCE, "alpha": ALPHA,
                     "level_per_cell": ALPHA / max(len(cells), 1), "cells": len(cells),
                     "cells_gp_overfits": int(overfits), "cells_gp_gap_positive": int(positive)}}


# --------------------------------------------------------------------------- rule 3
def _between(values):
    if not {"clip", "gp", "sn"} <= values.keys():
        return None
    lo, hi = sorted([values["clip"], values["gp"]])
    sn = values["sn"]
    if any(not np.isfinite(v) for v in (lo, hi, sn)):
        return False
    return bool(lo <= sn <= hi)


def claim_middle(history, window, overfit=None):
    """Rule 3 (see module docstring)."""
    _require(history, ["wasserstein", "probe_grad_norm"], "claim_middle")
    quantities = {
        "early progress p": {d: {m: s[0] for m, s in v.items()} for d, v in _by_method(early_progress(history)).items()},
        "log10 gradient growth": gradient_growth(history, window),
    }
    if overfit is not None and len(overfit):
        std_gap = overfit.groupby(["dataset", "train_size", "method"], sort=False)["std_gap"].mean()
        cells = {}
        for (dataset, size, method), value in std_gap.items():
            cells.setdefault(f"{dataset}/{size}", {})[method] = float(value)
        quantities["standardized overfitting gap d"] = cells
    counts, lines = {}, []
    for name, per_dataset in quantities.items():
        flags = {d: _between(v) for d, v in per_dataset.items()}
        flags = {d: f for d, f in flags.items() if f is not None}
        counts[name] = (sum(flags.values()), len(flags))
        for dataset, flag in flags.items():
            v = per_dataset[dataset]
            lines.append(f"{dataset}, {name}: clip {v['clip']:.4g}, SN {v['sn']:.4g}, GP {v['gp']:.4g} -> SN between: {flag}")
    every = bool(counts) and all(_majority(c, n) for c, n in counts.values())
    pooled = _majority(sum(c for c, _ in counts.values()), sum(n for _, n in counts.values()))
    verdict = SUPPORTED if every else PARTLY if pooled else NOT_SUPPORTED
    lines.append("SN between (count / datasets): " + ", ".join(f"{k} {c}/{n}" for k, (c, n) in counts.items()))
    return {"numbers": lines, "verdict": verdict, "note": "",
            "used": {k: {"between": c, "of": n} for k, (c, n) in counts.items()}}


def training_claims(history, window, overfit=None) -> dict:
    """Rules 1, 2a and 3 on one comparison: ``{claim id: the rule's result}`` (the claims its runs decide)."""
    return {
        "1": claim_clipping(history, window),
        "2a": claim_gp_speed(history),
        "3": claim_middle(history, window, overfit),
    }


# --------------------------------------------------------------------------- rule 4
PIECEWISE = ("relu", "leaky_relu")
SMOOTH = ("gelu", "swish")


def claim_lipschitz(mlp, conv_networks):
    """Rule 4 (see module docstring)."""
    _require(mlp, ["activation", "depth", "width", "state", "upper_bound", "lower_bound"], "claim_lipschitz")
    mlp = mlp.assign(tol=[float32_bound_tolerance(d, w) for d, w in zip(mlp["depth"], mlp["width"])])
    piece = mlp[mlp["activation"].isin(PIECEWISE)]
    smooth = mlp[mlp["activation"].isin(SMOOTH)]
    a = bool(len(piece)) and bool((piece["upper_bound"] <= 1 + piece["tol"]).all())
    a_prime = bool(len(piece)) and bool((piece["lower_bound"] <= 1 + piece["tol"]).all())
    violating = smooth[smooth["lower_bound"] > 1 + smooth["tol"]]
    b = bool(len(smooth)) and set(violating["activation"]) == set(smooth["activation"])
    c = bool((violating["state"] != "worst_case").any())
    lines = []
    for act, g in piece.groupby("activation", sort=False):
        worst_upper = g.loc[(g["upper_bound"] - 1 - g["tol"]).idxmax()]
        worst_lower = g.loc[(g["lower_bound"] - 1 - g["tol"]).idxmax()]
        lines.append(
            f"{act} ({len(g)} rows, states {sorted(g['state'].unique())}): max upper bound {g['upper_bound'].max():.6f} "
            f"(excess over 1 + tol: {worst_upper['upper_bound'] - 1 - worst_upper['tol']:+.2e} at depth "
            f"{int(worst_upper['depth'])} {worst_upper['state']}, tol {worst_upper['tol']:.2e}); max lower bound "
            f"{g['lower_bound'].max():.6f} (excess {worst_lower['lower_bound'] - 1 - worst_lower['tol']:+.2e}, "
            f"tol {worst_lower['tol']:.2e})"
        )
    for act, g in smooth.groupby("activation", sort=False):
        v = violating[violating["activation"] == act]
        lines.append(
            f"{act} ({len(g)} rows): upper bound {g['upper_bound'].min():.3f}..{g['upper_bound'].max():.3f}; "
            f"lower bound max {g['lower_bound'].max():.4f}; rows with lower bound > 1 + tol: {len(v)} "
            f"(states {sorted(v['state'].unique().tolist())})"
        )
    lines.append(f"A (ReLU/LeakyReLU certified <= 1 + tol): {a}; A' (no ReLU/LeakyReLU lower bound > 1 + tol): {a_prime}; "
                 f"B (every GELU/Swish activation has a measured violation): {b}; C (a violation outside the worst-case chains): {c}")
    if a and a_prime and b and c:
        verdict = SUPPORTED
    elif a_prime and b:
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    note_parts = [f"{row.method}: whole-network bound {row.upper_bound:.3f}, largest layer operator norm {row.max_layer_norm:.3f}"
                  for row in conv_networks.itertuples()]
    note = ("Scope note (convolutions): a standard CNN critic with SN is not 1-Lipschitz with Miyato's reshape "
            "normalization: " + "; ".join(note_parts) + ".") if note_parts else ""
    return {"numbers": lines, "verdict": verdict, "note": note,
            "used": {"A": a, "A_prime": a_prime, "B": b, "C": c,
                     "tolerance": "float32_bound_tolerance(depth, width) = (depth + 1) * width * eps32",
                     "tol_range": [float(mlp["tol"].min()), float(mlp["tol"].max())] if len(mlp) else []}}


# --------------------------------------------------------------------------- rule 5
def claim_variance(check, stability, bound, width=None):
    """Rule 5 (see module docstring).

    ``width``: the layer width of the variance experiment's SN layers, for the
    float32 tolerance of condition (c); None uses 1024 (the widest layer of
    the default variance check), a looser tolerance.
    """
    a = bool((check["z"].abs() <= Z_MAX).all())
    deepest = stability[stability["depth"] == stability["depth"].max()]
    acts = deepest["activation"].unique()

    def stable(scheme):
        rows = deepest[deepest["scheme"] == scheme]
        return len(rows) == len(acts) and bool((rows["activation_factor_per_layer"].sub(1).abs() <= STABLE_TOL).all())

    c_schemes = [s for s in deepest["scheme"].unique() if s.startswith("c=")]
    b = stable("c=1")
    per_act = {
        act: [s for s in c_schemes if abs(deepest[(deepest.scheme == s) & (deepest.activation == act)]["activation_factor_per_layer"].iloc[0] - 1) <= STABLE_TOL]
        for act in acts
    }
    b_prime = all(per_act.values())
    tol = float32_bound_tolerance(0, width if width is not None else 1024)
    sn_rows = deepest[deepest["scheme"] == "sn"]
    c = bool(sn_rows["max_spectral_norm"].max() <= 1 + tol and bound["max_layer_gain"].max() <= 1 + tol)
    lines = [
        f"Var((Wx)_i)/(n s^2) in [{check['ratio'].min():.4f}, {check['ratio'].max():.4f}], max |z| = "
        f"{check['z'].abs().max():.2f} over {len(check)} cells (n in {sorted(check['n'].unique().tolist())}, "
        f"s^2 in {sorted(check['s2'].unique().tolist())}, {int(check['samples'].iloc[0])} samples each).",
    ]
    for row in deepest.itertuples():
        lines.append(
            f"depth {row.depth}, {row.activation}, {row.scheme}: activation factor per layer "
            f"{row.activation_factor_per_layer:.3f}, gradient factor {row.gradient_factor_per_layer:.3f}, "
            f"max spectral norm {row.max_spectral_norm:.6f}"
        )
    lines.append(
        f"SN layer gain over inputs {sorted(bound['input'].unique().tolist())}: max {bound['max_layer_gain'].max():.6f} "
        f"(tol {tol:.2e}); stable c per activation: {per_act}."
    )
    if a and c and b:
        verdict = SUPPORTED
    elif a and c and b_prime:
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    note = ""
    if not b and b_prime:
        note = ("s^2 = 1/n (LeCun) does not keep ReLU-type activations stable: they shrink by about sqrt(2) "
                "per layer; s^2 ~ 1/n works with an activation-dependent constant (He: 2/n). SN bounds the "
                "norm but its typical gain is below 1, so SN activations shrink too.")
    return {"numbers": lines, "verdict": verdict, "note": note,
            "used": {"a": a, "b": b, "b_prime": b_prime, "c": c, "Z_MAX": Z_MAX, "STABLE_TOL": STABLE_TOL, "sn_tol": tol}}


CLAIMS = [
    ("1", "Weight clipping leaves the critic with small gradients by about iteration 200."),
    ("2a", "Gradient penalty drives the critic loss down fast."),
    ("2b", "Gradient penalty risks overfitting (train vs held-out gap of the critic's Wasserstein estimate)."),
    ("3", "Spectral normalization is the middle ground between clipping and GP."),
    ("4", "SN makes ReLU / LeakyReLU networks 1-Lipschitz; GELU and Swish are not 1-Lipschitz, so the guarantee fails."),
    ("5", "Var((Wx)_i) = n s^2, so s^2 ~ 1/n keeps activations stable, and SN bounds ||W||_2 without distributional assumptions."),
]
