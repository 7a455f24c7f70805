"""Compute every claim's verdict from the pipeline's files and render ``claims.md``, ``.html`` and ``.json``.

The rules live in :mod:`keras_sngan.poster.judging.claims`; this module only
loads their inputs, calls them and writes the results. Each verdict is
written with the numbers and tolerances its rule used (``used``), so a reader
can check it by hand.
"""

from __future__ import annotations

import html
import os

import pandas as pd

from keras_sngan.poster.judging import claims as rules
from keras_sngan.poster.plumbing import io
from keras_sngan.poster.plumbing.runs import load, overfitting_final


def _per_dataset(run_dirs, pick):
    """{dataset: sorted distinct ``pick(run.json)``} over the runs for which ``pick`` gives a value."""
    out = {}
    for run in run_dirs:
        info = io.read_json(os.path.join(run, "run.json"))
        value = pick(info)
        if value is not None:
            out.setdefault(info["dataset"], set()).add(value)
    return {d: sorted(v) for d, v in out.items()}


def _gp_weights(run_dirs):
    """{dataset: GP penalty weight} of the comparison's GP runs (from their run.json)."""
    return _per_dataset(run_dirs, lambda info: float(info.get("gp_weight", float("nan")))
                        if info.get("method") == "gp" else None)


def _toy_widths(run_dirs):
    """{dataset: toy MLP widths} of the comparison's runs on the 2-D toy sets (from their run.json)."""
    from keras_sngan.datasets.toy import TOY_DATASETS

    def width(info):
        value = (info.get("model") or {}).get("width")
        return int(value) if info.get("dataset") in TOY_DATASETS and value is not None else None

    return _per_dataset(run_dirs, width)


def run(variance_dir, lipschitz_dir, run_dirs, flow_runs: dict, out_md, out_json, window=(150, 250),
        overfit_csv=None, out_html=None, variance_width=None, robustness_json=None, convergence_json=None,
        compare_with=None, reference_runs=None) -> dict:
    """Compute every claim's numbers and verdict; write ``claims.md``, ``claims.json`` (and ``claims.html``).

    Args:
        variance_dir: output directory of the variance experiment.
        lipschitz_dir: output directory of the Lipschitz experiment.
        run_dirs: comparison run directories (with ``history.csv`` and ``run.json``).
        flow_runs: ``{label: run_dir or [run_dirs]}`` of the gradient-flow runs (reported with claim 1).
        window: iterations of "about iteration 200".
        overfit_csv: the overfitting experiment's table (rule 2b and rule 3); None: rule 2b has no data.
        out_html: also write the verdicts as a self-contained HTML page (for ``snakemake --report``).
        variance_width: layer width of the variance experiment (rule 5's float32 tolerance).
        robustness_json: ``robustness.json`` of these runs
            (:mod:`keras_sngan.poster.judging.robustness`): each claim's verdict
            per setting, "holds in k of n" and *fragile*. Its base verdicts
            must be the ones computed here.
        convergence_json: ``convergence.json`` of these runs: whether each
            dataset's best method converged.
        compare_with: another profile's ``claims.json`` (the default
            profile's), shown side by side.
        reference_runs: run directories of the robustness table's
            *reference* (the variant at the reference's value of a setting
            this profile scales down). A training claim that
            ``robustness_json`` says is decided there is computed on the
            comparison with these runs in place of the profile's
            (:func:`keras_sngan.poster.judging.robustness.combine`), and the
            profile's own verdict is kept as ``profile_verdict``.
    """
    window = tuple(int(w) for w in window)
    if len(window) != 2 or window[0] > window[1]:
        raise ValueError(f"claims.run: `window` must be (start, end) with start <= end, received {window!r}.")
    history = load(run_dirs, "history.csv")
    overfit = overfitting_final(pd.read_csv(overfit_csv)) if overfit_csv is not None else None
    seeds = sorted(history["seed"].unique().tolist())
    bound = pd.read_csv(os.path.join(variance_dir, "sn_bound.csv"))
    results = [
        rules.claim_clipping(history, window),
        rules.claim_gp_speed(history),
        rules.claim_gp_overfit(overfit),
        rules.claim_middle(history, window, overfit),
        rules.claim_lipschitz(pd.read_csv(os.path.join(lipschitz_dir, "mlp_bounds.csv")),
                              pd.read_csv(os.path.join(lipschitz_dir, "conv_networks.csv"))),
        rules.claim_variance(pd.read_csv(os.path.join(variance_dir, "variance_check.csv")),
                             pd.read_csv(os.path.join(variance_dir, "stability.csv")), bound,
                             width=variance_width),
    ]
    results[0]["numbers"].extend(_flow_lines(flow_runs, window))
    claims = [{"id": cid, "claim": text, "verdict": r["verdict"], "numbers": r["numbers"], "note": r["note"], "used": r["used"]}
              for (cid, text), r in zip(rules.CLAIMS, results)]
    context = {"seeds": seeds, "window": list(window), "runs": len(run_dirs), "gp_weights": _gp_weights(run_dirs),
               "toy_widths": _toy_widths(run_dirs), "overfit_runs": 0 if overfit is None else len(overfit)}
    if reference_runs:
        context["reference_widths"] = _toy_widths(reference_runs)
    if robustness_json is not None:
        _decide_at_reference(claims, io.read_json(robustness_json), history, reference_runs, window, overfit)
    _attach(claims, context, robustness_json, convergence_json, compare_with)
    io.write_text(out_md, markdown(claims, context))
    if out_html is not None:
        io.write_text(out_html, to_html(claims, context))
    payload = {**context, "claims": claims, "thresholds": rules.THRESHOLDS}
    io.write_json(out_json, payload)
    return payload


def _decide_at_reference(claims, robust, history, reference_runs, window, overfit):
    """The claims the robustness table decided at its reference, computed there (``claims`` in place)."""
    from keras_sngan.poster.judging import robustness

    moved = {cid: r for cid, r in robust["claims"].items() if r.get("decided_at")}
    if not moved:
        return
    if not reference_runs:
        raise ValueError(f"claims: the robustness table decided claims {sorted(moved)} at its reference "
                         f"{robust.get('reference')!r}; pass that variant's runs (--reference-runs).")
    at_reference = robustness.combine(history, load(reference_runs, "history.csv"))
    decided = rules.training_claims(at_reference, window, overfit)
    for c in claims:
        r = moved.get(c["id"])
        if r is None:
            continue
        result = decided[c["id"]]
        c["profile_verdict"] = c["verdict"]
        c.update(verdict=result["verdict"], numbers=result["numbers"], used=result["used"], decided_at=r["decided_at"])
        last = int(at_reference["iteration"].max())
        c["note"] = (f"Decided at the reference setting `{r['decided_at']}` (its runs, judged at iteration {last} and "
                     f"below): this profile's own runs, which scale that setting down to fit the machine, give "
                     f"*{c['profile_verdict']}*, so the scale-down is not allowed for this claim."
                     + (" " + result["note"] if result["note"] else ""))


def _attach(claims, context, robustness_json, convergence_json, compare_with):
    """Robustness, convergence and another profile's verdicts into ``claims`` / ``context`` (in place)."""
    if robustness_json is not None:
        robust = io.read_json(robustness_json)["claims"]
        for c in claims:
            r = robust.get(c["id"])
            if r is None or r["base"] is None:
                continue
            if r["base"] != c["verdict"]:
                raise ValueError(
                    f"claims: {robustness_json} decided claim {c['id']} {r['base']!r} in its base setting, but these "
                    f"runs give {c['verdict']!r}: the robustness file belongs to other runs; rerun `keras-sngan robustness`."
                )
            c["robustness"] = {k: r[k] for k in ("k", "n", "fragile", "flipped_by", "settings")}
    if convergence_json is not None:
        context["convergence"] = io.read_json(convergence_json)["datasets"]
    if compare_with is not None:
        other = {c["id"]: c["verdict"] for c in io.read_json(compare_with)["claims"]}
        context["compared_with"] = os.fspath(compare_with)
        for c in claims:
            c["other_profile"] = other.get(c["id"])


def _setting_text(r):
    """One robustness setting of a claim: factor, what it changed, the verdict there, and whether it flips."""
    return f"{r['factor']} ({r['setting']}): {r['verdict']}" + ("" if r["holds"] else " (flips)")


def _at_text(c):
    """Where a claim decided at the robustness table's reference was decided, and the profile's own verdict."""
    if not c.get("decided_at"):
        return ""
    return f" (at {c['decided_at']}; this profile's runs: {c['profile_verdict']})"


def _robust_text(c):
    r = c.get("robustness")
    if r is None:
        return "n/a"
    return f"{r['k']} of {r['n']}" + (f", *fragile* ({', '.join(r['flipped_by'])})" if r["fragile"] else "")


def _flow_lines(flow_runs, window):
    """Deep-critic (12-layer) per-layer weight-gradient norms at iteration 0 and in the window."""
    from keras_sngan.poster.reporting import gradient_flow as gf

    if not flow_runs:
        return []
    labels, paths = [], []
    for label, run_ in flow_runs.items():
        for path in run_ if isinstance(run_, (list, tuple)) else [run_]:
            labels.append(label)
            paths.append(path)
    table = gf.collect(paths, labels)
    lines = []
    for label in dict.fromkeys(labels):
        t = table[table["config"] == label]
        at0 = t[t["iteration"] == 0]["grad_norm"]
        win = t[(t["iteration"] >= window[0]) & (t["iteration"] <= window[1])].groupby("depth")["grad_norm"].mean()
        lines.append(
            f"deep critic ({label}, context only, not used by the rule): weight-gradient norms over layers at iteration 0 "
            f"{at0.min():.2e}..{at0.max():.2e}; mean in window {win.min():.2e}..{win.max():.2e} "
            f"(input-side layer {win.iloc[0]:.2e}, output-side {win.iloc[-1]:.2e})"
        )
    return lines


def _used_text(used):
    return "; ".join(f"{k} = {v}" for k, v in used.items())


def _context_lines(context):
    weights = ", ".join(f"{d}: {w}" for d, w in context["gp_weights"].items()) or "no GP runs"
    extra = []
    if "compared_with" in context:
        extra.append(f"Other profile: the verdicts of {context['compared_with']}. Claims 2b, 4 and 5 read that "
                     "profile's overfitting, Lipschitz and variance experiments here too (they do not depend on the "
                     "comparison's iterations, width or penalty weight), so their verdicts agree by construction.")
    if "convergence" in context:
        extra.append("Convergence (tables/convergence.md): " + "; ".join(
            f"{d}: best method {v['best']} " + (f"converged (settled from iteration {v['settled_from']})" if v["converged"]
                                                else f"did not converge before the cap of {v['iterations']} iterations")
            for d, v in context["convergence"].items()) + ".")
    return extra + [
        f"Seeds: {context['seeds']} ({context['runs']} comparison runs). \"About iteration 200\" = iterations "
        f"{context['window'][0]}-{context['window'][1]}. Numbers are mean ± standard deviation over seeds.",
        f"GP penalty weight lambda of the comparison runs (claims 1, 2a, 3), fixed before the runs as the value "
        f"of the code each experiment reproduces (toy sets: WGAN-GP's gan_toy.py, 0.1; images: Gulrajani et al., "
        f"10): {weights}. Claim 2b uses the overfitting experiment's GP at "
        f"lambda = 10 (label gp); its GP at gan_toy.py's lambda = 0.1 (label gp0.1) is reported alongside "
        f"({context['overfit_runs']} overfitting runs).",
    ] + ([_width_line(context["toy_widths"], context.get("reference_widths"))] if context.get("toy_widths") else [])


GAN_TOY_WIDTH = 512  # WGAN-GP's gan_toy.py: DIM = 512


def _width_line(widths, reference_widths=None):
    """The comparison's toy widths against gan_toy.py's, and where a narrower width's flips are decided."""
    listed = ", ".join(f"{d}: {w}" for d, w in widths.items())
    narrower = any(w < GAN_TOY_WIDTH for ws in widths.values() for w in ws)
    line = f"Toy MLP width of the comparison runs: {listed} (gan_toy.py: {GAN_TOY_WIDTH})."
    if not narrower:
        return line
    if reference_widths:
        at = sorted({w for ws in reference_widths.values() for w in ws})
        return (line + " A narrower width is a scale-down to fit the machine: this profile's robustness table "
                f"(robustness.md) reruns the comparison at width {', '.join(map(str, at))} (its reference) and "
                "decides there every claim whose verdict the scale-down flips.")
    return line + " A narrower width is a scale-down to fit the machine, and no reference runs restore it here."


def _cell(text) -> str:
    """Text for a Markdown table cell: a ``|`` (as in ``||W||_2``) would end the cell."""
    return str(text).replace("|", "\\|")


def markdown(claims, context) -> str:
    out = ["# Claims of the poster and what the data say", "",
           "Generated by `keras-sngan claims` from this run's data; verdicts follow the rules below "
           "(see `keras_sngan/poster/judging/claims.py`), nothing is written by hand.", ""]
    out += _context_lines(context)
    other = "compared_with" in context
    robust = any("robustness" in c for c in claims)
    head = "| # | claim | verdict |" + (" other profile |" if other else "") + (" holds in (robustness) |" if robust else "")
    out += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for c in claims:
        row = f"| {_cell(c['id'])} | {_cell(c['claim'])} | **{_cell(c['verdict'])}**{_cell(_at_text(c))} |"
        row += f" {_cell(c.get('other_profile') or 'n/a')} |" if other else ""
        row += f" {_cell(_robust_text(c))} |" if robust else ""
        out.append(row)
    for c in claims:
        out += ["", f"## {c['id']}. {c['claim']}", "", f"**Verdict: {c['verdict']}.**{_at_text(c)}", ""]
        out += [f"- {line}" for line in c["numbers"]]
        out += ["", f"Used by the rule: {_used_text(c['used'])}."]
        if c["note"]:
            out += ["", c["note"]]
        if "robustness" in c:
            out += ["", f"Robustness: holds in {_robust_text(c)}:", ""]
            out += [f"- {_setting_text(r)}" for r in c["robustness"]["settings"]]
    out += ["", "## Rules", "", _rules_text()]
    return "\n".join(out) + "\n"


def to_html(claims, context) -> str:
    """The verdict table and each claim's numbers as one self-contained HTML page."""
    e = html.escape
    other = "compared_with" in context
    robust = any("robustness" in c for c in claims)
    rows = "".join(f"<tr><td>{e(c['id'])}</td><td>{e(c['claim'])}</td><td><b>{e(c['verdict'])}</b>{e(_at_text(c))}</td>"
                   + (f"<td>{e(c.get('other_profile') or 'n/a')}</td>" if other else "")
                   + (f"<td>{e(_robust_text(c).replace('*', ''))}</td>" if robust else "")
                   + f"<td>{e(_used_text(c['used']))}</td></tr>" for c in claims)
    sections = "".join(
        f"<h2>{e(c['id'])}. {e(c['claim'])}</h2><p><b>Verdict: {e(c['verdict'])}.</b></p><ul>"
        + "".join(f"<li>{e(line)}</li>" for line in c["numbers"]) + "</ul>"
        + (f"<p>{e(c['note'])}</p>" if c["note"] else "")
        + ("<p>Robustness:</p><ul>" + "".join(
            f"<li>{e(_setting_text(r))}</li>" for r in c["robustness"]["settings"]) + "</ul>" if "robustness" in c else "")
        for c in claims
    )
    extra_heads = ("<th>other profile</th>" if other else "") + ("<th>holds in (robustness)</th>" if robust else "")
    context_html = "".join(f"<p>{e(line)}</p>" for line in _context_lines(context))
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Claims and verdicts</title>"
        "<style>body{font-family:sans-serif;margin:1em}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}</style></head><body><h1>Claims of the poster and what the data say</h1>"
        f"{context_html}<table><tr><th>#</th><th>claim</th><th>verdict</th>{extra_heads}<th>numbers and tolerances used</th></tr>"
        f"{rows}</table>{sections}<h2>Rules</h2><pre>{e(_rules_text())}</pre></body></html>\n"
    )


def _rules_text():
    text = rules.__doc__.split("printed\nwith the verdicts in ``claims.md``):", 1)[1]
    return text.strip() + "\n\nConstants: " + ", ".join(f"{k}={v:g}" for k, v in rules.THRESHOLDS.items()) + "."
