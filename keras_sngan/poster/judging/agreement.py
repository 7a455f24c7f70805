"""Did a reproduction agree with the committed results? One comparison, one report.

:func:`compare` reads two results directories written by the pipeline (the
committed ``results/`` and, say, the ``reproduction/`` that ``make reproduce``
writes) and lists every difference; nothing that is missing is skipped. It
needs only json, numpy and pandas: no TensorFlow, no Keras.

What is compared, and the rule for each (constants are module constants):

- **Claims** (``claims.json``): every claim's verdict, by id. A verdict that
  differs, or a claim present on one side only, is a difference.
- **Final metrics** (``tables/summary.csv``), per ``(dataset, method)``, every
  ``<metric>_mean`` / ``<metric>_std`` pair except timing
  (:data:`EXCLUDED_METRICS`: seconds per iteration depend on the machine).
  The ``_std`` is the standard deviation over seeds (``ddof=1``) of the
  per-seed values. A reproduced mean *agrees* when
  ``|mean_r - mean_c| <= SPREAD_FACTOR * max(std_c, std_r)`` (or the two means
  are equal up to float rounding, ``rtol=EXACT_RTOL``). Why: the seeds are
  the only replicates we have, and on another machine (other BLAS, other
  thread scheduling) a GAN run with the same seed follows another trajectory,
  so a reproduction is a fresh draw of each seed. Two means of ``n``
  independent draws with standard deviation ``s`` differ by about
  ``s * sqrt(2 / n)`` (``0.82 s`` at the default 3 seeds), so ``2 s`` is about
  2.4 standard errors of the difference: a reproduction that is a fresh draw
  passes, one whose mean moved by more than the seeds scatter does not. The
  larger of the two spreads is used so that a metric without spread on one
  side (8 of 8 modes on every committed seed) does not fail a reproduction
  whose seeds scatter around it, and vice versa. The number of seeds must
  match (a row whose seeds differ is one difference; its means are not
  compared); a value present on one side only (empty on the other) is a
  difference; a value empty on both sides (modes of the swiss roll) is not
  a metric of that row.
- **Overfitting** (``tables/overfitting.csv``, claim 2b): the headline of each
  ``(dataset, train_size, method)`` cell is the standardized train/held-out
  gap ``std_gap`` (and the raw ``gap``) at the last recorded iteration, mean
  and standard deviation over its seeds; the same rule as the final metrics,
  and the same number of seeds.
- **Gradient flow** (``tables/gradient_flow.csv``, claim 1): per
  ``(config, iteration, layer)`` the geometric mean over seeds of the layer's
  gradient norm, with its seeds' min and max. Gradient norms span decades, so
  the rule works in log10, and it is a family-wise test over the table's
  rows: a fresh draw of every run differs *anywhere* in the table with
  probability about :data:`FAMILY_ALPHA` (5%). Two seeds cannot estimate a
  row's own spread (a per-row rule on the two seeds' range, the previous
  one, failed a fresh draw in 22% of rows: 7 of 195 on the AVX-512 machine),
  so the spread is pooled per ``config``: ``s^2 = mean(log10(max / min)^2) /
  E[R_n^2]`` over the config's rows on both sides, where ``E[R_n^2]`` is the
  expected squared range of ``n`` standard normal draws (2 for two seeds;
  :func:`expected_range_squared`): an unbiased estimate of the per-seed
  variance in log10 when the config's rows scatter alike. With one seed
  there is no spread, and a row agrees only when equal.
  A row agrees when ``|log10 g_r - log10 g_c| <= z * s * sqrt(2 / n)``, with
  ``z`` the two-sided normal quantile at ``FAMILY_ALPHA / m`` (Bonferroni
  over the ``m`` rows compared; 3.66 for the default 195), or when the two
  are equal up to float rounding. A zero norm agrees only when equal; the
  number of seeds must match. What the rule can see: at the default profile's
  spreads (``s`` about 0.2-0.3 decades for clipping at c = 0.01, GP and SN) a
  row must move by about a decade to be reported; a smaller systematic shift
  shows in the claims' verdicts, which are compared exactly.

A file present on one side only, a row (dataset/method, cell, layer) present
on one side only, and a column present on one side only are differences.

Example:
    >>> import tempfile, json, os
    >>> d = tempfile.mkdtemp()
    >>> _ = [os.makedirs(os.path.join(d, side)) for side in ("a", "b")]
    >>> for side in ("a", "b"):
    ...     with open(os.path.join(d, side, "claims.json"), "w") as f:
    ...         json.dump({"claims": [{"id": "1", "claim": "c", "verdict": "supported"}]}, f)
    >>> report = compare(os.path.join(d, "a"), os.path.join(d, "b"))
    >>> report["agrees"]   # the tables are missing on both sides: reported
    False
    >>> sorted({diff["kind"] for diff in report["differences"]})
    ['file']
"""

from __future__ import annotations

import functools
import math
import os
from statistics import NormalDist

import numpy as np
import pandas as pd

from keras_sngan.poster.plumbing import io

SPREAD_FACTOR = 2.0
FAMILY_ALPHA = 0.05
EXACT_RTOL = 1e-9
EXCLUDED_METRICS = ("seconds_per_iteration",)
OVERFIT_METRICS = ("std_gap", "gap")

CLAIMS = "claims.json"
SUMMARY = os.path.join("tables", "summary.csv")
OVERFITTING = os.path.join("tables", "overfitting.csv")
GRADIENT_FLOW = os.path.join("tables", "gradient_flow.csv")
FILES = (CLAIMS, SUMMARY, OVERFITTING, GRADIENT_FLOW)

RULES = {
    "claims": "verdicts equal, claim by claim",
    "summary": (f"|mean_r - mean_c| <= {SPREAD_FACTOR:g} * max(std_c, std_r) over seeds, per (dataset, method); "
                f"seeds equal; excluded: {', '.join(EXCLUDED_METRICS)}"),
    "overfitting": (f"{', '.join(OVERFIT_METRICS)} at the last recorded iteration, mean over seeds per "
                    f"(dataset, train_size, method): |mean_r - mean_c| <= {SPREAD_FACTOR:g} * max(std_c, std_r)"),
    "gradient_flow": (f"per (config, iteration, layer): |log10 g_r - log10 g_c| <= z * s * sqrt(2 / n), g the geometric "
                      "mean over n seeds, s the per-seed standard deviation in log10 pooled over the config's rows "
                      f"(both sides, from the seeds' ranges), z the normal quantile at {FAMILY_ALPHA:g} / rows "
                      f"(two-sided, Bonferroni: a fresh draw differs anywhere with probability about {FAMILY_ALPHA:g}); "
                      "seeds equal"),
}


# --------------------------------------------------------------------------- rules
def _equal(a, b) -> bool:
    return bool(np.isclose(a, b, rtol=EXACT_RTOL, atol=0.0))


def spread_agrees(mean_c, std_c, mean_r, std_r, factor=SPREAD_FACTOR) -> bool:
    """``|mean_r - mean_c| <= factor * max(std_c, std_r)``, or equal up to float rounding."""
    if _equal(mean_c, mean_r):
        return True
    return abs(mean_r - mean_c) <= factor * max(std_c, std_r)


def family_z(rows: int, alpha: float = FAMILY_ALPHA) -> float:
    """Two-sided normal quantile at ``alpha / rows``: each of ``rows`` tests at that level (Bonferroni)."""
    if rows < 1:
        raise ValueError(f"agreement.family_z: `rows` must be >= 1, received {rows}.")
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * rows))


@functools.lru_cache(maxsize=None)
def expected_range_squared(seeds: int) -> float:
    """``E[(max - min)^2]`` of ``seeds`` independent standard normal draws (2 for two; 0 for one).

    ``(M - m)^2 = 2 * integral over x < y of 1{m <= x} 1{y <= M}``, so
    ``E[R^2] = 2 * integral over x < y of 1 - (1 - F(x))^n - F(y)^n + (F(y) - F(x))^n``,
    integrated numerically (trapezoid on the triangle; a 0.02 grid over
    [-8, 8]: 2.00007 for two draws, whose exact value is 2).
    """
    if seeds < 1:
        raise ValueError(f"agreement.expected_range_squared: `seeds` must be >= 1, received {seeds}.")
    step = 0.02
    x = np.arange(-8.0, 8.0 + step / 2, step)
    cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))
    lower, upper = cdf[:, None], cdf[None, :]  # F(x) down the rows, F(y) along the columns
    joint = 1.0 - (1.0 - lower) ** seeds - upper ** seeds + np.clip(upper - lower, 0.0, None) ** seeds
    triangle = np.triu(joint, k=1).sum() + 0.5 * np.trace(joint)  # x < y, half of the diagonal
    return float(2.0 * triangle * step * step)


def pooled_log_sd(ranges, seeds: int) -> float:
    """Per-seed standard deviation in log10 from rows' seed ranges ``[(min, max), ...]`` of ``seeds`` draws each.

    ``sqrt(mean(log10(max / min)^2) / E[R^2])`` (:func:`expected_range_squared`):
    unbiased in the variance when every row's draws scatter alike.

    Raises:
        ValueError: ``seeds`` < 2 (one draw has no spread), no ranges, or a
            range that is not ``0 < min <= max``.
    """
    if seeds < 2:
        raise ValueError(f"agreement.pooled_log_sd: a spread needs >= 2 seeds per row, received {seeds}.")
    squares = []
    for lo, hi in ranges:
        if not (lo > 0 and hi >= lo):
            raise ValueError(f"agreement.pooled_log_sd: a range must satisfy 0 < min <= max, received ({lo}, {hi}).")
        squares.append(math.log10(hi / lo) ** 2)
    if not squares:
        raise ValueError("agreement.pooled_log_sd: no ranges given.")
    return math.sqrt(float(np.mean(squares)) / expected_range_squared(seeds))


def log_tolerance(sd, seeds: int, z: float) -> float:
    """Decades two ``seeds``-seed geometric means may differ by: ``z * sd * sqrt(2 / seeds)``."""
    return z * sd * math.sqrt(2.0 / seeds)


def log_agrees(g_c, g_r, sd, seeds: int, z: float) -> bool:
    """Gradient-flow rule for one row: ``|log10 g_r - log10 g_c| <=`` :func:`log_tolerance`, or equal.

    ``sd`` is the per-seed standard deviation in log10 (:func:`pooled_log_sd`);
    a zero or negative norm agrees only when equal.
    """
    if _equal(g_c, g_r):
        return True
    if not (g_c > 0 and g_r > 0):
        return False
    return abs(math.log10(g_r) - math.log10(g_c)) <= log_tolerance(sd, seeds, z)


# --------------------------------------------------------------------------- readers
def _check_dir(name, path):
    if not os.path.isdir(path):
        raise ValueError(f"agreement.compare: `{name}`={os.fspath(path)!r} is not a directory.")


def _present(committed, reproduced, name, differences):
    """True if ``name`` exists on both sides; else record a file difference."""
    here = {side: os.path.isfile(os.path.join(root, name)) for side, root in
            (("committed", committed), ("reproduced", reproduced))}
    if all(here.values()):
        return True
    differences.append(dict(kind="file", table=name.replace(os.sep, "/"), item=name.replace(os.sep, "/"),
                            committed="present" if here["committed"] else "missing",
                            reproduced="present" if here["reproduced"] else "missing"))
    return False


def _read_csv(root, name, columns):
    path = os.path.join(root, name)
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"agreement.compare: {path!r} lacks the column(s) {missing}.")
    return frame


def _key_label(key):
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _compare_rows(table, committed, reproduced, differences):
    """Rows present on one side only are differences; return the keys present on both."""
    for key in committed.keys() - reproduced.keys():
        differences.append(dict(kind="row", table=table, item=_key_label(key), committed="present", reproduced="missing"))
    for key in reproduced.keys() - committed.keys():
        differences.append(dict(kind="row", table=table, item=_key_label(key), committed="missing", reproduced="present"))
    return [key for key in committed if key in reproduced]


def _metric_difference(table, key, metric, c, r, tolerance):
    return dict(kind="metric", table=table, item=f"{_key_label(key)} {metric}", key=_key_label(key), metric=metric,
                committed=c, reproduced=r, tolerance=tolerance)


def _stat(mean, std, n=None):
    stat = {"mean": None if pd.isna(mean) else float(mean), "std": None if pd.isna(std) else float(std)}
    if n is not None:
        stat["n"] = int(n)
    return stat


def _compare_stats(table, key, metric, c, r, differences):
    """One metric of one row by the spread rule; return 1 if it was compared."""
    c_missing, r_missing = c["mean"] is None, r["mean"] is None
    if c_missing and r_missing:
        return 0
    if c_missing or r_missing:
        differences.append(_metric_difference(table, key, metric, c, r, None))
        return 1
    c_std, r_std = c["std"] or 0.0, r["std"] or 0.0
    if c.get("n") != r.get("n"):  # another number of seeds: another experiment
        differences.append(_metric_difference(table, key, metric, c, r, None))
    elif not spread_agrees(c["mean"], c_std, r["mean"], r_std):
        differences.append(_metric_difference(table, key, metric, c, r, SPREAD_FACTOR * max(c_std, r_std)))
    return 1


# --------------------------------------------------------------------------- the four files
def compare_claims(committed, reproduced, differences) -> int:
    """Verdict by claim id; return the number of claims compared."""
    sides = []
    for root in (committed, reproduced):
        data = io.read_json(os.path.join(root, CLAIMS))
        if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
            raise ValueError(f"agreement.compare: {os.path.join(root, CLAIMS)!r} has no `claims` list.")
        if not all(isinstance(c, dict) and "id" in c and "verdict" in c for c in data["claims"]):
            raise ValueError(f"agreement.compare: a claim of {os.path.join(root, CLAIMS)!r} lacks `id` or `verdict`.")
        sides.append({str(c["id"]): c["verdict"] for c in data["claims"]})
    c_verdicts, r_verdicts = sides
    for claim in list(c_verdicts) + [k for k in r_verdicts if k not in c_verdicts]:
        c, r = c_verdicts.get(claim, "missing"), r_verdicts.get(claim, "missing")
        if c != r:
            differences.append(dict(kind="claim", table=CLAIMS, item=f"claim {claim}", committed=c, reproduced=r))
    return len(set(c_verdicts) | set(r_verdicts))


def _summary_stats(frame):
    metrics = [c[: -len("_mean")] for c in frame.columns
               if c.endswith("_mean") and f"{c[:-len('_mean')]}_std" in frame.columns]
    metrics = [m for m in metrics if m not in EXCLUDED_METRICS]
    rows = {}
    for _, row in frame.iterrows():
        rows[(row["dataset"], row["method"])] = {
            "seeds": int(row["seeds"]),
            **{m: _stat(row[f"{m}_mean"], row[f"{m}_std"], row["seeds"]) for m in metrics},
        }
    return metrics, rows


def compare_summary(committed, reproduced, differences) -> int:
    """Final metrics per (dataset, method) by the spread rule; return the number of values compared."""
    table = SUMMARY.replace(os.sep, "/")
    (c_metrics, c_rows), (r_metrics, r_rows) = (
        _summary_stats(_read_csv(root, SUMMARY, ["dataset", "method", "seeds"])) for root in (committed, reproduced))
    metrics = c_metrics + [m for m in r_metrics if m not in c_metrics]
    compared = 0
    for key in _compare_rows(table, c_rows, r_rows, differences):
        c, r = c_rows[key], r_rows[key]
        if c["seeds"] != r["seeds"]:
            differences.append(dict(kind="metric", table=table, item=f"{_key_label(key)} seeds", key=_key_label(key),
                                    metric="seeds", committed=c["seeds"], reproduced=r["seeds"], tolerance=None))
            continue  # another number of seeds: another experiment; its means are not compared
        for metric in metrics:
            empty = _stat(float("nan"), float("nan"))
            compared += _compare_stats(table, key, metric, c.get(metric, empty), r.get(metric, empty), differences)
    return compared


def _overfit_stats(frame):
    last = frame[frame["iteration"] == frame.groupby(["dataset", "train_size", "method"])["iteration"].transform("max")]
    rows = {}
    for key, g in last.groupby(["dataset", "train_size", "method"], sort=False):
        key = (key[0], str(key[1]), key[2])
        rows[key] = {m: _stat(g[m].mean(), g[m].std(ddof=1) if len(g) > 1 else 0.0, len(g))
                     for m in OVERFIT_METRICS}
    return rows


def compare_overfitting(committed, reproduced, differences) -> int:
    """Claim 2b's headline per cell by the spread rule; return the number of values compared."""
    table = OVERFITTING.replace(os.sep, "/")
    columns = ["dataset", "train_size", "method", "iteration", *OVERFIT_METRICS]
    c_rows, r_rows = (_overfit_stats(_read_csv(root, OVERFITTING, columns)) for root in (committed, reproduced))
    compared = 0
    empty = _stat(float("nan"), float("nan"))
    for key in _compare_rows(table, c_rows, r_rows, differences):
        for metric in OVERFIT_METRICS:
            compared += _compare_stats(table, key, metric, c_rows[key].get(metric, empty),
                                       r_rows[key].get(metric, empty), differences)
    return compared


def _flow_rows(frame):
    return {
        (row["config"], int(row["iteration"]), row["layer"]): (
            float(row["grad_norm_geomean"]), float(row["grad_norm_min"]), float(row["grad_norm_max"]), int(row["seeds"]))
        for _, row in frame.iterrows()
    }


def gradient_flow_differences(c_rows, r_rows, keys, table=GRADIENT_FLOW.replace(os.sep, "/")) -> list[dict]:
    """The rows of ``keys`` that differ by the family-wise log rule (module docstring).

    ``c_rows`` / ``r_rows`` map ``(config, iteration, layer)`` to ``(geomean,
    min, max, seeds)``.
    """
    pooled = {}  # (config, seeds) -> the seeds' ranges of its rows on both sides (positive norms, same seeds)
    for key in keys:
        (_, lo_c, hi_c, n_c), (_, lo_r, hi_r, n_r) = c_rows[key], r_rows[key]
        if n_c == n_r and n_c >= 2 and min(lo_c, lo_r) > 0:
            pooled.setdefault((key[0], n_c), []).extend([(lo_c, hi_c), (lo_r, hi_r)])
    sd = {config_seeds: pooled_log_sd(ranges, config_seeds[1]) for config_seeds, ranges in pooled.items()}
    z = family_z(len(keys)) if keys else 0.0
    differences = []
    for key in keys:
        (g_c, lo_c, hi_c, n_c), (g_r, lo_r, hi_r, n_r) = c_rows[key], r_rows[key]
        spread = sd.get((key[0], n_c))
        if n_c == n_r and (_equal(g_c, g_r) or (spread is not None and log_agrees(g_c, g_r, spread, n_c, z))):
            continue
        tolerance = None if spread is None or n_c != n_r else f"{log_tolerance(spread, n_c, z):.3g} decades"
        differences.append(dict(
            kind="metric", table=table, item=f"{_key_label(key)} grad_norm", key=_key_label(key),
            metric="grad_norm_geomean",
            committed={"geomean": g_c, "min": lo_c, "max": hi_c, "n": n_c},
            reproduced={"geomean": g_r, "min": lo_r, "max": hi_r, "n": n_r},
            tolerance=tolerance,
        ))
    return differences


def compare_gradient_flow(committed, reproduced, differences) -> int:
    """Per-layer gradient norms by the family-wise log rule; return the number of values compared."""
    table = GRADIENT_FLOW.replace(os.sep, "/")
    columns = ["config", "iteration", "layer", "grad_norm_geomean", "grad_norm_min", "grad_norm_max", "seeds"]
    c_rows, r_rows = (_flow_rows(_read_csv(root, GRADIENT_FLOW, columns)) for root in (committed, reproduced))
    keys = _compare_rows(table, c_rows, r_rows, differences)
    differences.extend(gradient_flow_differences(c_rows, r_rows, keys, table))
    return len(keys)


COMPARERS = {
    CLAIMS: ("claims", compare_claims),
    SUMMARY: ("summary", compare_summary),
    OVERFITTING: ("overfitting", compare_overfitting),
    GRADIENT_FLOW: ("gradient_flow", compare_gradient_flow),
}


# --------------------------------------------------------------------------- entry point
def compare(committed, reproduced, out_md=None, out_json=None) -> dict:
    """Compare the ``reproduced`` results directory with the ``committed`` one.

    Args:
        committed: the results directory in git (``results``).
        reproduced: a directory the pipeline wrote with the same layout
            (``snakemake --config results=reproduction``).
        out_md: if given, write the Markdown report there; its first line is
            ``agrees`` or ``differs`` followed by what differs.
        out_json: if given, write the same content as JSON there (default:
            ``out_md`` with the suffix ``.json`` when ``out_md`` is given).

    Returns:
        ``{"agrees": bool, "headline": str, "differences": [...], "checked":
        {table: count}, "rules": {...}, "committed": ..., "reproduced": ...}``.
        Each difference has ``kind`` (``claim``, ``metric``, ``row`` or
        ``file``), ``table``, ``item``, ``committed`` and ``reproduced``
        (for a metric: mean, std and the number of seeds), and for a metric
        the ``tolerance`` it failed.

    Raises:
        ValueError: if either directory does not exist, or a file lacks the
            columns (keys) its comparison reads.
    """
    _check_dir("committed", committed)
    _check_dir("reproduced", reproduced)
    differences, checked = [], {}
    for name in FILES:
        label, comparer = COMPARERS[name]
        checked[label] = comparer(committed, reproduced, differences) if _present(
            committed, reproduced, name, differences) else 0
    report = {
        "agrees": not differences,
        "headline": headline(differences),
        "committed": os.fspath(committed),
        "reproduced": os.fspath(reproduced),
        "checked": checked,
        "rules": RULES,
        "differences": differences,
    }
    if out_md is not None:
        io.write_text(out_md, render_markdown(report))
        if out_json is None:
            out_json = os.path.splitext(os.fspath(out_md))[0] + ".json"
    if out_json is not None:
        io.write_json(out_json, report)
    return report


def headline(differences) -> str:
    """``agrees`` or ``differs: <item>; <item>; ...`` (what the report's first line says)."""
    if not differences:
        return "agrees"
    return "differs: " + "; ".join(f"{d['table']} {d['item']}" if d["kind"] != "file" else f"missing file {d['item']}"
                                   for d in differences)


def _fmt(value):
    if isinstance(value, dict):
        if "geomean" in value:
            return f"{value['geomean']:.4g} (seeds {value['min']:.3g}..{value['max']:.3g}, n={value['n']})"
        if value.get("mean") is None:
            return "–"
        n = f" (n={value['n']})" if "n" in value else ""
        return f"{value['mean']:.4g} ± {value['std']:.2g}{n}"
    return str(value)


def _fmt_tolerance(tolerance):
    if tolerance is None:
        return "–"
    return f"{tolerance:.3g}" if isinstance(tolerance, float) else str(tolerance)


def difference_lines(report) -> list[str]:
    """One plain-text line per difference (what the CLI prints)."""
    lines = []
    for d in report["differences"]:
        where = d["item"] if d["kind"] == "file" else f"{d['table']} {d['item']}"
        line = f"{d['kind']}: {where}: committed {_fmt(d['committed'])}, reproduced {_fmt(d['reproduced'])}"
        if d.get("tolerance") is not None:
            line += f" (tolerance {_fmt_tolerance(d['tolerance'])})"
        lines.append(line)
    return lines


def render_markdown(report) -> str:
    """The report as Markdown; the first line is the headline."""
    lines = [report["headline"], "",
             f"# Reproduction `{report['reproduced']}` vs committed `{report['committed']}`", "",
             "Values compared: " + ", ".join(f"{k} {v}" for k, v in report["checked"].items())
             + f"; differences: {len(report['differences'])}.", ""]
    if report["differences"]:
        lines += ["## Differences", "", "| kind | table | item | committed | reproduced | tolerance |",
                  "|---|---|---|---|---|---|"]
        for d in report["differences"]:
            lines.append(f"| {d['kind']} | {d['table']} | {d['item']} | {_fmt(d['committed'])} | "
                         f"{_fmt(d['reproduced'])} | {_fmt_tolerance(d.get('tolerance'))} |")
        lines.append("")
    lines += ["## Rules", ""] + [f"- {name}: {rule}" for name, rule in report["rules"].items()] + [
        "", "Mean ± std over seeds; the details: `keras_sngan.poster.judging.agreement`.", ""]
    return "\n".join(lines)
