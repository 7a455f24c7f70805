"""The poster's claims, the numbers that test them, and verdicts by explicit rules.

Every verdict is computed here from the pipeline's data; nothing is typed by
hand. The rules (thresholds are module constants, fixed before looking at
results and documented in ``claims.md``):

1. *Clipping leaves small gradients by about iteration 200.* Per dataset,
   ``g`` = mean over the window's iterations (default 150-250) of the
   input-gradient norm ``||grad_x f||`` at interpolates, averaged over seeds.
   Clipping is *small* on a dataset if ``g_clip < SMALL_ABS`` and
   ``g_clip < SMALL_REL * g_gp``. Verdict: **supported** if small on every
   dataset and not already small at iteration 0 on every dataset (the effect
   develops in training); **partly** if small on some datasets, or small
   everywhere but already at iteration 0 (an initialization effect);
   **not supported** if small on none.
2. *GP drives the critic loss down fast and risks overfitting.* (a) Speed:
   the drop of the critic loss (the loss each method minimizes; GP's
   includes the penalty, as in the poster's plot) from iteration 0 to its
   mean over the first ``EARLY_FRACTION`` of iterations, averaged over
   seeds, is largest for GP. (b) Overfitting: the critic's
   final train minus held-out Wasserstein estimate for GP is positive beyond
   two standard errors over seeds and larger than SN's and clipping's.
   **supported** if (a) holds on a majority of datasets and (b) on at least
   one; **partly** if only one of the two; **not supported** if neither.
3. *SN is the middle ground.* On a dataset SN is "between" for a quantity if
   it lies within [min, max] of clipping's and GP's values. Quantities: the
   early critic-loss drop of rule 2a and the window gradient norm of rule 1.
   **supported** if SN is between for both quantities on a majority of
   datasets; **partly** if for at least one quantity on a majority, or for
   any quantity on some dataset; **not supported** otherwise.
4. *SN makes ReLU / LeakyReLU networks 1-Lipschitz; not GELU / Swish.*
   (A) every ReLU / LeakyReLU SN MLP (initialized and trained) has certified
   upper bound <= 1 + CERTIFY_TOL and searched lower bound <= 1 +
   VIOLATION_TOL; (B) every GELU / Swish SN MLP has an upper bound > 1 (the
   certificate fails) and (C) some GELU / Swish SN MLP has a searched lower
   bound > 1 + VIOLATION_TOL (the constraint is violated in fact).
   **supported** if A, B and C; **partly** if A and B only; **not
   supported** if A or B fails. The conv critic with reshape SN is reported
   as a scope note (the poster states the result for dense layers).
5. *Var((Wx)_i) = n s^2, so s^2 ~ 1/n (LeCun/Xavier) keeps activations
   stable; SN bounds ||W||_2 without assuming a distribution for x.*
   (a) every cell of the variance check has ``|z| <= Z_MAX``; (b) the LeCun
   choice ``c = 1`` keeps the per-layer activation factor within
   ``1 +- STABLE_TOL`` for every activation at the largest depth (b') or at
   least some ``c`` does for every activation; (c) SN keeps every layer's
   spectral norm and gain <= 1 + 1e-6 for every input family. **supported**
   if a, b and c; **partly** if a and c with only b'; **not supported** if a
   or c fails, or neither b nor b'.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from keras_sngan.experiments import io
from keras_sngan.experiments.lipschitz_activations import CERTIFY_TOL, VIOLATION_TOL
from keras_sngan.experiments.runs import METHOD_ORDER, load, load_metrics

SMALL_ABS = 0.1
SMALL_REL = 0.1
EARLY_FRACTION = 0.1
GAP_SIGMAS = 2.0
Z_MAX = 4.0
STABLE_TOL = 0.05
SUPPORTED, PARTLY, NOT_SUPPORTED = "supported", "partly supported", "not supported"


def _majority(count, total):
    return total > 0 and count > total / 2


def _window_mean(history, column, window):
    lo, hi = window
    sel = history[(history["iteration"] >= lo) & (history["iteration"] <= hi)]
    return sel.groupby(["dataset", "method", "seed"])[column].mean()


def _early_drop(history, column):
    """``L(0) - mean L(1..cut)``, ``cut = ceil(EARLY_FRACTION * last iteration)``, per run."""
    rows = {}
    for (dataset, method, seed), g in history.groupby(["dataset", "method", "seed"]):
        last = int(g["iteration"].max())
        cut = max(1, int(math.ceil(EARLY_FRACTION * last)))
        start = g[g["iteration"] == 0][column].mean()
        rows[(dataset, method, seed)] = start - g[(g["iteration"] >= 1) & (g["iteration"] <= cut)][column].mean()
    return pd.Series(rows)


def _by_method(series):
    """{dataset: {method: (mean, std, n)}} from a (dataset, method, seed) series."""
    out = {}
    for (dataset, method), g in series.groupby(level=[0, 1]):
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


def claim_clipping(history, window):
    """Rule 1 (see module docstring)."""
    g_win = _by_method(_window_mean(history, "grad_norm", window))
    g_init = _by_method(history[history["iteration"] == 0].set_index(["dataset", "method", "seed"])["grad_norm"])
    small, small_init, lines = [], [], []
    for dataset, stats in g_win.items():
        if not {"clip", "gp"} <= stats.keys():
            continue
        clip, gp = stats["clip"][0], stats["gp"][0]
        is_small = clip < SMALL_ABS and clip < SMALL_REL * gp
        clip0 = g_init[dataset]["clip"][0]
        gp0 = g_init[dataset]["gp"][0]
        was_small = clip0 < SMALL_ABS and clip0 < SMALL_REL * gp0
        small.append(is_small)
        small_init.append(was_small)
        lines.append(
            f"{dataset}: ||grad_x f|| in iterations {window[0]}-{window[1]}: clip {_fmt(stats['clip'])}, "
            f"GP {_fmt(stats['gp'])}" + (f", SN {_fmt(stats['sn'])}" if "sn" in stats else "")
            + f"; at iteration 0: clip {clip0:.3g}, GP {gp0:.3g} -> small at ~200: {is_small}, already at 0: {was_small}"
        )
    if small and all(small) and not all(small_init):
        verdict = SUPPORTED
    elif any(small):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    note = ""
    if small and all(small) and all(small_init):
        note = ("Clipping's gradients are already small at iteration 0 (clipping the initial weights to "
                "[-c, c] shrinks the critic): the effect is present from initialization, not something "
                "that develops by iteration 200.")
    return {"numbers": lines, "verdict": verdict, "note": note,
            "data": {"window": g_win, "iteration0": g_init}}


def claim_gp(history, gaps):
    """Rule 2 (see module docstring)."""
    early = _by_method(_early_drop(history, "critic_loss"))
    last = gaps.loc[gaps.groupby(["dataset", "method", "seed"])["iteration"].idxmax()]
    final_gap = _by_method(last.set_index(["dataset", "method", "seed"])["gap"])
    fast, overfit, lines = [], [], []
    for dataset, stats in early.items():
        if "gp" not in stats:
            continue
        others = [m for m in stats if m != "gp"]
        is_fast = all(stats["gp"][0] > stats[m][0] for m in others)
        g = final_gap[dataset]
        mean, std, n = g["gp"]
        sem = std / math.sqrt(n) if n > 1 else float("inf")
        is_over = mean - GAP_SIGMAS * sem > 0 and all(mean > g[m][0] for m in g if m != "gp")
        fast.append(is_fast)
        overfit.append(is_over)
        lines.append(
            f"{dataset}: critic-loss drop from iteration 0 to the first {EARLY_FRACTION:.0%} of iterations "
            + ", ".join(f"{m} {_fmt(stats[m])}" for m in METHOD_ORDER if m in stats)
            + f" -> GP drops most: {is_fast}; final critic gap (train - held-out) "
            + ", ".join(f"{m} {_fmt(g[m])}" for m in METHOD_ORDER if m in g)
            + f" -> GP overfits: {is_over}"
        )
    a, b = _majority(sum(fast), len(fast)), any(overfit)
    verdict = SUPPORTED if a and b else PARTLY if a or b else NOT_SUPPORTED
    return {"numbers": lines, "verdict": verdict, "note": "", "data": {"early": early, "final_gap": final_gap},
            "fast_datasets": int(sum(fast)), "overfit_datasets": int(sum(overfit)), "datasets": len(fast)}


def claim_middle(history, window):
    """Rule 3 (see module docstring)."""
    early = _by_method(_early_drop(history, "critic_loss"))
    grad = _by_method(_window_mean(history, "grad_norm", window))
    counts = {"early critic-loss drop": 0, "window gradient norm": 0}
    lines, total = [], 0
    for dataset in early:
        if not {"clip", "gp", "sn"} <= early[dataset].keys():
            continue
        total += 1
        flags = {}
        for name, stats in (("early critic-loss drop", early[dataset]), ("window gradient norm", grad[dataset])):
            lo, hi = sorted([stats["clip"][0], stats["gp"][0]])
            flags[name] = lo <= stats["sn"][0] <= hi
            counts[name] += flags[name]
        lines.append(
            f"{dataset}: early critic-loss drop clip {early[dataset]['clip'][0]:.4g}, SN {early[dataset]['sn'][0]:.4g}, "
            f"GP {early[dataset]['gp'][0]:.4g} (between: {flags['early critic-loss drop']}); "
            f"gradient norm clip {grad[dataset]['clip'][0]:.3g}, SN {grad[dataset]['sn'][0]:.3g}, "
            f"GP {grad[dataset]['gp'][0]:.3g} (between: {flags['window gradient norm']})"
        )
    both = all(_majority(c, total) for c in counts.values())
    one = any(_majority(c, total) for c in counts.values()) or any(c > 0 for c in counts.values())
    verdict = SUPPORTED if both else PARTLY if one else NOT_SUPPORTED
    return {"numbers": lines, "verdict": verdict, "note": "", "data": counts, "datasets": total}


def claim_lipschitz(mlp, conv_networks):
    """Rule 4 (see module docstring)."""
    piecewise = mlp[mlp["activation"].isin(["relu", "leaky_relu"]) & mlp["state"].isin(["init", "trained"])]
    smooth = mlp[mlp["activation"].isin(["gelu", "swish"])]
    a = bool((piecewise["upper_bound"] <= 1 + CERTIFY_TOL).all() and (piecewise["lower_bound"] <= 1 + VIOLATION_TOL).all())
    b = bool((smooth[smooth["state"] != "worst_case"]["upper_bound"] > 1).all())
    violators = smooth[smooth["lower_bound"] > 1 + VIOLATION_TOL]
    c = len(violators) > 0
    lines = [
        f"ReLU/LeakyReLU SN MLPs (init + trained, depths {sorted(piecewise['depth'].unique().tolist())}): "
        f"max certified upper bound {piecewise['upper_bound'].max():.4f} (excess over 1 from power-iteration lag), "
        f"max searched lower bound {piecewise['lower_bound'].max():.4f}.",
    ]
    for act, g in smooth.groupby("activation", sort=False):
        lines.append(
            f"{act}: activation Lipschitz constant {g['activation_lipschitz'].iloc[0]:.4f}; certified upper bound "
            f"{g[g.state != 'worst_case']['upper_bound'].min():.3f}..{g[g.state != 'worst_case']['upper_bound'].max():.3f}; "
            f"searched lower bound max {g['lower_bound'].max():.3f} "
            f"(init {g[g.state == 'init']['lower_bound'].max():.3f}, trained {g[g.state == 'trained']['lower_bound'].max():.3f}, "
            f"worst-case chain {g[g.state == 'worst_case']['lower_bound'].max():.3f})."
        )
    verdict = SUPPORTED if a and b and c else PARTLY if a and b else NOT_SUPPORTED
    note_parts = []
    for row in conv_networks.itertuples():
        note_parts.append(f"{row.method}: whole-network bound {row.upper_bound:.3f}, largest layer operator norm {row.max_layer_norm:.3f}")
    note = ("Scope note (convolutions): a standard CNN critic with SN is not 1-Lipschitz with Miyato's reshape "
            "normalization: " + "; ".join(note_parts) + ".") if note_parts else ""
    return {"numbers": lines, "verdict": verdict, "note": note, "data": {"A": a, "B": b, "C": c}}


def claim_variance(check, stability, bound):
    """Rule 5 (see module docstring)."""
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
    sn_rows = deepest[deepest["scheme"] == "sn"]
    c = bool(sn_rows["max_spectral_norm"].max() <= 1 + 1e-6 and bound["max_layer_gain"].max() <= 1 + 1e-6)
    lines = [
        f"Var((Wx)_i)/(n s^2) in [{check['ratio'].min():.4f}, {check['ratio'].max():.4f}], max |z| = "
        f"{check['z'].abs().max():.2f} over {len(check)} cells (n in {sorted(check['n'].unique().tolist())}, "
        f"s^2 in {sorted(check['s2'].unique().tolist())}, {int(check['samples'].iloc[0])} samples each).",
    ]
    for row in deepest.itertuples():
        lines.append(
            f"depth {row.depth}, {row.activation}, {row.scheme}: activation factor per layer "
            f"{row.activation_factor_per_layer:.3f}, gradient factor {row.gradient_factor_per_layer:.3f}, "
            f"max spectral norm {row.max_spectral_norm:.3f}"
        )
    lines.append(
        f"SN layer gain over inputs {sorted(bound['input'].unique().tolist())}: max {bound['max_layer_gain'].max():.4f}; "
        f"stable c per activation: {per_act}."
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
    return {"numbers": lines, "verdict": verdict, "note": note, "data": {"a": a, "b": b, "b_prime": b_prime, "c": c}}


CLAIMS = [
    ("1", "Weight clipping leaves the critic with small gradients by about iteration 200."),
    ("2", "Gradient penalty drives the critic loss down fast and risks overfitting (train vs held-out gap)."),
    ("3", "Spectral normalization is the middle ground between clipping and GP."),
    ("4", "SN makes ReLU / LeakyReLU networks 1-Lipschitz; GELU and Swish are not 1-Lipschitz, so the guarantee fails."),
    ("5", "Var((Wx)_i) = n s^2, so s^2 ~ 1/n keeps activations stable, and SN bounds ||W||_2 without distributional assumptions."),
]


def run(variance_dir, lipschitz_dir, run_dirs, flow_runs: dict, out_md, out_json, window=(150, 250)) -> dict:
    """Compute every claim's numbers and verdict; write ``claims.md`` and ``claims.json``.

    Args:
        variance_dir, lipschitz_dir: outputs of the variance / Lipschitz experiments.
        run_dirs: comparison run directories (with ``history.csv``, ``gap.csv``, ``eval/``).
        flow_runs: ``{label: run_dir}`` of the gradient-flow runs (reported with claim 1).
        window: iterations of "about iteration 200".
    """
    window = tuple(int(w) for w in window)
    if len(window) != 2 or window[0] > window[1]:
        raise ValueError(f"claims.run: `window` must be (start, end) with start <= end, received {window!r}.")
    history = load(run_dirs, "history.csv")
    gaps = load(run_dirs, "gap.csv")
    seeds = sorted(history["seed"].unique().tolist())
    results = [
        claim_clipping(history, window),
        claim_gp(history, gaps),
        claim_middle(history, window),
        claim_lipschitz(pd.read_csv(os.path.join(lipschitz_dir, "mlp_bounds.csv")),
                        pd.read_csv(os.path.join(lipschitz_dir, "conv_networks.csv"))),
        claim_variance(pd.read_csv(os.path.join(variance_dir, "variance_check.csv")),
                       pd.read_csv(os.path.join(variance_dir, "stability.csv")),
                       pd.read_csv(os.path.join(variance_dir, "sn_bound.csv"))),
    ]
    results[0]["numbers"].extend(_flow_lines(flow_runs, window))
    claims = []
    for (cid, text), result in zip(CLAIMS, results):
        claims.append({"id": cid, "claim": text, "verdict": result["verdict"], "numbers": result["numbers"], "note": result["note"]})
    md = _markdown(claims, seeds, window, len(run_dirs))
    io.write_text(out_md, md)
    payload = {"seeds": seeds, "window": list(window), "claims": claims,
               "thresholds": {"SMALL_ABS": SMALL_ABS, "SMALL_REL": SMALL_REL, "EARLY_FRACTION": EARLY_FRACTION,
                              "GAP_SIGMAS": GAP_SIGMAS, "Z_MAX": Z_MAX, "STABLE_TOL": STABLE_TOL,
                              "CERTIFY_TOL": CERTIFY_TOL, "VIOLATION_TOL": VIOLATION_TOL}}
    io.write_json(out_json, payload)
    return payload


def _flow_lines(flow_runs, window):
    """Deep-critic (12-layer) per-layer weight-gradient norms at iteration 0 and in the window."""
    from keras_sngan.experiments import gradient_flow as gf

    if not flow_runs:
        return []
    labels, paths = [], []
    for label, run in flow_runs.items():
        for path in run if isinstance(run, (list, tuple)) else [run]:
            labels.append(label)
            paths.append(path)
    table = gf.collect(paths, labels)
    lines = []
    for label in dict.fromkeys(labels):
        t = table[table["config"] == label]
        at0 = t[t["iteration"] == 0]["grad_norm"]
        win = t[(t["iteration"] >= window[0]) & (t["iteration"] <= window[1])].groupby("depth")["grad_norm"].mean()
        lines.append(
            f"deep critic ({label}): weight-gradient norms over layers at iteration 0 "
            f"{at0.min():.2e}..{at0.max():.2e}; mean in window {win.min():.2e}..{win.max():.2e} "
            f"(input-side layer {win.iloc[0]:.2e}, output-side {win.iloc[-1]:.2e})"
        )
    return lines


def _markdown(claims, seeds, window, n_runs):
    out = [
        "# Claims of the poster and what the data say",
        "",
        "Generated by `keras-sngan claims` from this run's data; verdicts follow the rules below "
        "(see `keras_sngan/experiments/claims.py`), nothing is written by hand.",
        "",
        f"Seeds: {seeds} ({n_runs} comparison runs). \"About iteration 200\" = iterations {window[0]}-{window[1]}. "
        "Numbers are mean ± standard deviation over seeds.",
        "",
        "| # | claim | verdict |",
        "|---|---|---|",
    ]
    out += [f"| {c['id']} | {c['claim']} | **{c['verdict']}** |" for c in claims]
    for c in claims:
        out += ["", f"## {c['id']}. {c['claim']}", "", f"**Verdict: {c['verdict']}.**", ""]
        out += [f"- {line}" for line in c["numbers"]]
        if c["note"]:
            out += ["", c["note"]]
    out += ["", "## Rules", "", _rules_text()]
    return "\n".join(out) + "\n"


def _rules_text():
    text = __doc__.split("documented in ``claims.md``):", 1)[1]
    return (text.strip() + f"\n\nThresholds: SMALL_ABS={SMALL_ABS}, SMALL_REL={SMALL_REL}, "
            f"EARLY_FRACTION={EARLY_FRACTION}, GAP_SIGMAS={GAP_SIGMAS}, Z_MAX={Z_MAX}, STABLE_TOL={STABLE_TOL}, "
            f"CERTIFY_TOL={CERTIFY_TOL}, VIOLATION_TOL={VIOLATION_TOL}.")


# --------------------------------------------------------------------------- training curves
CURVE_METRICS = ("critic_loss", "wasserstein", "generator_loss", "grad_norm")


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
