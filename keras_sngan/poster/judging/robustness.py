"""Robustness of every verdict: the same rules, decided again one factor at a time.

The rules of :mod:`keras_sngan.poster.judging.claims` stay fixed; only their
inputs vary. Around a profile's comparison runs (the *base*), each setting
changes one factor:

- a *variant* (config ``robustness.variants``): runs trained again with one
  change (penalty weight, width, ...) for the methods it names; the base runs
  of the other methods complete the comparison. A variant may run fewer
  iterations than the base (a costly factor, such as the reference width,
  judged at a shorter budget): the base runs are then truncated to the
  variant's last iteration before they are combined, so every method of the
  comparison is judged at the same iterations. Such a variant is a setting of
  every training claim only if it stops at one of the ``budgets`` (where the
  base runs alone are judged too, so the shortening is a setting of its own);
  stopping elsewhere, it is a setting of claim 1 only, whose rule reads
  iteration 0 and the window (:func:`judged_claims`);
- a shorter *budget* (``robustness.budgets``): the base runs judged as if
  they had stopped at that iteration (a run's first ``k`` iterations do not
  depend on its length: same seed, data order and optimizer, no schedule);
- *bootstrap*: ``B`` resamples of the seeds of every (dataset, method) cell
  (and of every overfitting cell) with replacement. The setting *holds* if at
  least ``BOOTSTRAP_HOLD`` of the resamples give the base verdict.

Where a profile scales a setting of the reference down to fit the machine (the
toy width, 256 against gan_toy.py's 512), the variant that restores the
reference's value is its *reference*: the long profile runs it for 600 of its
2000 iterations (one of its budgets: a setting of every training claim), the
default profile for 260 of its 600 (claim 1 only, the one claim that width
flips in the long profile's table). The scale-down is allowed
only for the claims it does not flip. A training claim whose verdict the
reference variant flips is *decided at the reference*: its verdict is the
reference's, and its settings are one factor away from the reference instead
(``scaled_down``: the profile's own runs, truncated to the reference's
iterations; the variants declared *around* the reference; the shorter budgets;
the bootstrap over the reference's runs). A variant around the reference may
stop early where the claims decided there read no further: claim 1 reads
iteration 0 and its window, so the long profile runs GP's penalty weights
around the 600-iteration reference for 260 iterations, and claim 1 sees
exactly what 600 would have given it; claims 2a and 3 read the whole run, and
a shorter variant around the reference is refused for them.

Per claim: the verdict in each setting, "holds in k of n" (n: the settings
that apply to the claim) and *fragile* with the factors that flip it if k < n.
Claim 2b reads the overfitting experiment, whose own factors are the penalty
weight (GP at gan_toy.py's 0.1, run on its toy cells) and the bootstrap over
its seeds. Claims 4 and 5 are decided by certified bounds and an exact
variance check: no factor of this table enters their inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from keras_sngan.poster.judging import claims as rules
from keras_sngan.poster.plumbing import io
from keras_sngan.poster.plumbing.runs import load, overfitting_final

BOOTSTRAP_HOLD = 0.9
TRAINING_CLAIMS = ("1", "2a", "3")
# The training claims whose rules read only iteration 0 and the "about iteration 200" window; the others read
# the whole run. A variant around the reference may stop after the window when only these are decided there.
WINDOW_CLAIMS = ("1",)
HISTORY_COLUMNS = ("dataset", "method", "seed", "iteration", "wasserstein", "probe_grad_norm")


def _training_verdicts(history, window, overfit):
    return {cid: result["verdict"] for cid, result in rules.training_claims(history, window, overfit).items()}


def combine(base: pd.DataFrame, variant: pd.DataFrame) -> pd.DataFrame:
    """The base history with every (dataset, method) cell that ``variant`` ran replaced by the variant's runs.

    If the variant's runs stop before the base runs, the base runs are truncated to the variant's last
    iteration (see :func:`truncate`); a variant may not run longer than the base.
    """
    last, base_last = int(variant["iteration"].max()), int(base["iteration"].max())
    if last > base_last:
        raise ValueError(f"robustness: a variant's runs ({last} iterations) may not be longer than the "
                         f"profile's runs ({base_last} iterations).")
    if last < base_last:
        base = truncate(base, last)
    cells = set(map(tuple, variant[["dataset", "method"]].drop_duplicates().to_numpy()))
    keep = [(d, m) not in cells for d, m in zip(base["dataset"], base["method"])]
    return pd.concat([base[keep], variant], ignore_index=True)


def truncate(history: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The runs as if they had stopped at iteration ``budget``."""
    budget = io.check_int("robustness", "budget", budget, 1)
    last = int(history["iteration"].max())
    if budget >= last:
        raise ValueError(f"robustness: a budget must be shorter than the runs ({last} iterations), received {budget}.")
    return history[history["iteration"] <= budget]


class Resampler:
    """Draws of ``frame`` with the seeds of every ``keys`` cell resampled with replacement (as many as it has),
    relabelled 0..n-1; the frame is split by cell and seed once for many draws."""

    def __init__(self, frame: pd.DataFrame, keys):
        self.cells = [
            [run for _, run in g.groupby("seed", sort=True)] for _, g in frame.groupby(list(keys), sort=False)
        ]

    def __call__(self, rng) -> pd.DataFrame:
        parts = []
        for runs in self.cells:
            for new, i in enumerate(rng.integers(0, len(runs), size=len(runs))):
                parts.append(runs[i].assign(seed=new))
        return pd.concat(parts, ignore_index=True)


def gp_at_toy_weight(overfit: pd.DataFrame, label="gp0.1") -> pd.DataFrame | None:
    """The overfitting table with GP at gan_toy.py's weight (``label``) in place of ``gp`` where it was run."""
    if label not in set(overfit["method"]):
        return None
    cells = set(map(tuple, overfit[overfit["method"] == label][["dataset", "train_size"]].drop_duplicates().to_numpy()))
    in_cells = np.array([(d, s) in cells for d, s in zip(overfit["dataset"], overfit["train_size"])])
    out = overfit[~(in_cells & (overfit["method"] == "gp").to_numpy())].copy()
    out.loc[out["method"] == label, "method"] = "gp"
    return out


def _settings_row(factor, setting, verdict, base):
    return {"factor": factor, "setting": setting, "verdict": verdict, "holds": verdict == base}


def _settings_around(centre, verdicts, factors, budgets, window, overfit, cids):
    """``{claim: [row per setting]}`` around one comparison (``centre``, whose verdicts are ``verdicts``):
    each ``(factor, setting, history, judges)`` of ``factors`` judged by the rules for the claims of ``cids``
    it ``judges``, then ``centre`` truncated to each of ``budgets``."""
    factors = list(factors) + [("budget", f"{b} iterations", truncate(centre, b), TRAINING_CLAIMS) for b in budgets]
    rows = {cid: [] for cid in cids}
    for factor, setting, history, judges in factors:
        judged = _training_verdicts(history, window, overfit)
        for cid in cids:
            if cid in judges:
                rows[cid].append(_settings_row(factor, setting, judged[cid], verdicts[cid]))
    return rows


def judged_claims(variant_last: int, base_last: int, budgets, window) -> tuple:
    """The training claims a variant whose runs end at ``variant_last`` can be a setting of.

    A variant as long as the profile's runs, or stopping at one of its ``budgets`` (where the profile's own runs
    are judged too, so that the shortening alone is a setting of its own), judges every training claim. One that
    stops elsewhere before the end judges only the claims whose rules read iteration 0 and the window (claim 1),
    and must reach the window's end: claims 2a and 3 read the whole run, and a comparison cut at a length the
    table does not judge would mix the variant's factor with an unexamined budget (the default profile's
    reference: gan_toy.py's width for 260 of its 600 iterations, for claim 1 only).
    """
    if variant_last >= base_last or variant_last in {int(b) for b in budgets}:
        return TRAINING_CLAIMS
    if variant_last < int(window[1]):
        raise ValueError(f"robustness: a variant's runs stop at iteration {variant_last}, before the profile's runs "
                         f"({base_last} iterations) and before the window's end ({int(window[1])}): no claim can be "
                         f"judged on them; run it for at least {int(window[1])} iterations, or to one of the "
                         f"budgets {sorted(int(b) for b in budgets)}.")
    return WINDOW_CLAIMS


def _bootstrap_shares(history, overfit, centre_verdicts, cids, window, bootstrap, seed):
    """Share of ``bootstrap`` seed resamples of ``history`` (and of ``overfit``, for 2b) giving each centre verdict."""
    rng = np.random.default_rng(seed)
    agree = {cid: 0 for cid in cids}
    draw_runs = Resampler(history, ("dataset", "method"))
    draw_overfit = Resampler(overfit, ("dataset", "train_size", "method")) if overfit is not None else None
    for _ in range(int(bootstrap)):
        runs = draw_runs(rng)
        over = draw_overfit(rng) if overfit is not None else None
        verdicts = _training_verdicts(runs, window, over)
        if over is not None:
            verdicts["2b"] = rules.claim_gp_overfit(over)["verdict"]
        for cid in cids:
            agree[cid] += verdicts.get(cid) == centre_verdicts[cid]
    return {cid: agree[cid] / int(bootstrap) for cid in cids}


def _bootstrap_row(share, bootstrap, verdict):
    row = _settings_row("bootstrap", f"{int(bootstrap)} seed resamples: {share:.0%} give the base verdict",
                        verdict if share >= BOOTSTRAP_HOLD else "varies", verdict)
    row["share"] = share
    return row


def decide(base_history, variants: dict, budgets, window, overfit=None, bootstrap: int = 200, seed: int = 0,
           around: dict | None = None, reference: str | None = None) -> dict:
    """Every claim's verdict in every setting.

    Args:
        base_history: the profile's comparison runs (``history.csv`` rows with dataset, method, seed).
        variants: ``{name: history of the variant's own runs}``.
        budgets: shorter iteration budgets to judge the base runs at.
        window: "about iteration 200".
        overfit: the overfitting experiment's final rows (claims 2b and 3), or None.
        bootstrap: resamples (0: no bootstrap setting).
        around: ``{variant: the variant it is around}``: that variant's comparison (not the profile's) is
            completed with its runs, and it is a setting of the claims decided at that variant only.
        reference: the variant that restores the reference's value of a setting the profile scales down
            (the long profile: gan_toy.py's width). A training claim whose verdict it flips is *decided
            there*: the scale-down is not allowed for that claim. Its settings are then the profile's own
            runs (the scaled-down factor, truncated to the reference's iterations), the variants around
            the reference, the budgets shorter than the reference's runs and the bootstrap over its runs.

    Returns:
        ``{"claims": {id: {base, decided_at, settings: [...], k, n, fragile, flipped_by}}, "bootstrap": B, ...}``;
        ``base`` is the verdict where the claim is decided (``decided_at``: None for the profile's runs, else
        the reference's name; then ``profile_verdict`` is the profile's own).
    """
    window = tuple(int(w) for w in window)
    around = dict(around or {})
    for name, centre in around.items():
        if name not in variants or centre not in variants or centre in around or centre == name:
            raise ValueError(f"robustness: variant {name!r} is around {centre!r}, which must be another variant "
                             f"that is not itself around one; variants: {sorted(variants)}.")
    if reference is not None and (reference not in variants or reference in around):
        raise ValueError(f"robustness: the reference {reference!r} must be a variant that is not around another; "
                         f"variants: {sorted(variants)}.")
    base_history = base_history[[c for c in HISTORY_COLUMNS if c in base_history]]
    variants = {name: h[[c for c in HISTORY_COLUMNS if c in h]] for name, h in variants.items()}
    combined = {name: combine(base_history, h) for name, h in variants.items() if name not in around}
    combined.update({name: combine(combined[centre], variants[name]) for name, centre in around.items()})
    base = _training_verdicts(base_history, window, overfit)
    base_last = int(base_history["iteration"].max())
    lasts = {name: int(h["iteration"].max()) for name, h in variants.items()}
    judges = {name: judged_claims(lasts[name], base_last, budgets, window) for name in variants if name not in around}
    moved = ()
    if reference is not None:
        at_reference = _training_verdicts(combined[reference], window, overfit)
        moved = tuple(cid for cid in judges[reference] if at_reference[cid] != base[cid])
    kept = tuple(cid for cid in TRAINING_CLAIMS if cid not in moved)

    settings = _settings_around(base_history, base, [(name, _describe(variants[name]), combined[name], judges[name])
                                                     for name in variants if name not in around],
                                budgets, window, overfit, kept)
    settings["2b"] = []
    base["2b"] = rules.claim_gp_overfit(overfit)["verdict"] if overfit is not None else None
    if overfit is not None:
        toy_weight = gp_at_toy_weight(overfit)
        if toy_weight is not None:
            settings["2b"].append(_settings_row("gp_weight", "GP at gan_toy.py's 0.1 on its toy cells",
                                                rules.claim_gp_overfit(toy_weight)["verdict"], base["2b"]))
    cids = [cid for cid in (*kept, "2b") if base[cid] is not None]
    if bootstrap and cids:
        shares = _bootstrap_shares(base_history, overfit, base, cids, window, bootstrap, seed)
        for cid in cids:
            settings[cid].append(_bootstrap_row(shares[cid], bootstrap, base[cid]))

    if moved:
        centre = combined[reference]
        last = int(centre["iteration"].max())
        _check_around_lengths(variants, around, reference, last, moved, window)
        scaled = base_history if last >= base_last else truncate(base_history, last)
        factors = [("scaled_down", f"the profile's own runs, judged at iteration {last}", scaled, TRAINING_CLAIMS)]
        factors += [(name, _describe(variants[name]), combined[name], TRAINING_CLAIMS)
                    for name, c in around.items() if c == reference]
        settings.update(_settings_around(centre, at_reference, factors, [b for b in budgets if b < last],
                                         window, overfit, moved))
        shares = _bootstrap_shares(centre, overfit, at_reference, moved, window, bootstrap, seed) if bootstrap else {}
        for cid in moved:
            if cid in shares:
                settings[cid].append(_bootstrap_row(shares[cid], bootstrap, at_reference[cid]))

    out = {}
    for cid in (*TRAINING_CLAIMS, "2b"):
        if base[cid] is None:
            continue
        rows = settings[cid]
        k = sum(r["holds"] for r in rows)
        flipped = sorted({r["factor"] for r in rows if not r["holds"]})
        out[cid] = {"base": at_reference[cid] if cid in moved else base[cid],
                    "decided_at": reference if cid in moved else None,
                    "settings": rows, "k": k, "n": len(rows), "fragile": bool(flipped), "flipped_by": flipped}
        if cid in moved:
            out[cid]["profile_verdict"] = base[cid]
    for cid in ("4", "5"):
        out[cid] = {"base": None, "decided_at": None, "settings": [], "k": 0, "n": 0, "fragile": False,
                    "flipped_by": [],
                    "note": "decided by certified bounds and an exact variance check: no factor of this table enters its inputs"}
    partial = {name: {"last": lasts[name], "claims": list(cids)}
               for name, cids in judges.items() if cids != TRAINING_CLAIMS}
    return {"claims": out, "bootstrap": int(bootstrap), "BOOTSTRAP_HOLD": BOOTSTRAP_HOLD, "window": list(window),
            "budgets": [int(b) for b in budgets], "variants": list(variants), "around": around,
            "reference": reference, "runs_last": base_last, "partial": partial}


def _check_around_lengths(variants, around, reference, last, moved, window):
    """A variant around the reference may stop before the reference's ``last`` iteration only where every claim
    decided at the reference reads no further: claim 1 (iteration 0 and the window, or up to ``last`` if the
    window ends later), not 2a or 3 (the whole run). Its first iterations are those of a longer run (same seed,
    data order and optimizer, no schedule), so claim 1 then sees what the full-length run would have given it."""
    for name, centre in around.items():
        if centre != reference:
            continue
        stop = int(variants[name]["iteration"].max())
        for cid in moved:
            need = min(window[1], last) if cid in WINDOW_CLAIMS else last  # as long as the reference: always
            if stop < need:
                reads = f"up to the window's end, iteration {need}" if cid in WINDOW_CLAIMS else \
                    f"over the whole run, to the reference's iteration {need}"
                raise ValueError(f"robustness: variant {name!r} (around the reference {reference!r}) stops at "
                                 f"iteration {stop}, but claim {cid}, decided at the reference, reads its runs "
                                 f"{reads}: run {name!r} for at least {need} iterations.")


def _describe(history):
    cells = history[["method"]].drop_duplicates()["method"].tolist()
    return f"methods {', '.join(cells)}; seeds {sorted(history['seed'].unique().tolist())}"


def markdown(result: dict) -> str:
    """One table per claim: the verdict in each setting, then "holds in k of n"."""
    lines = ["# Robustness of the verdicts", "",
             "Generated by `keras-sngan robustness` (`keras_sngan/poster/judging/robustness.py`): the fixed rules, "
             "decided again one factor at a time around this profile's runs. The bootstrap setting holds if at "
             f"least {result['BOOTSTRAP_HOLD']:.0%} of its seed resamples give the base verdict.", "",
             "| claim | base verdict | holds in | fragile (flipped by) |", "|---|---|---|---|"]
    for cid, c in result["claims"].items():
        if c["base"] is None:
            lines.append(f"| {cid} | (default profile's) | n/a | n/a: {c['note']} |")
            continue
        at = f" (decided at {c['decided_at']})" if c.get("decided_at") else ""
        lines.append(f"| {cid} | {c['base']}{at} | {c['k']} of {c['n']} | "
                     + (f"**fragile** ({', '.join(c['flipped_by'])})" if c["fragile"] else "no") + " |")
    moved = {cid: c for cid, c in result["claims"].items() if c.get("decided_at")}
    if moved:
        lines += ["", f"Decided at the reference `{result['reference']}`: "
                  + ", ".join(f"claim {cid} (the profile's own runs give *{c['profile_verdict']}*)" for cid, c in moved.items())
                  + ". The profile scales that setting down to fit the machine, and the scale-down flips these "
                  "claims, so it is not allowed for them: their verdict is the reference's, and their settings "
                  "vary one factor around it (`scaled_down`: the profile's own runs)."]
    for name, p in result.get("partial", {}).items():
        lines += ["", f"`{name}` stops at iteration {p['last']}, before this profile's runs end "
                  f"({result['runs_last']}) and at no budget the table judges: it judges claim "
                  f"{', '.join(p['claims'])} only, whose rule reads iteration 0 and the window "
                  f"({result['window'][0]}-{result['window'][1]}); claims "
                  f"{' and '.join(c for c in TRAINING_CLAIMS if c not in p['claims'])} read the whole run."]
    for cid, c in result["claims"].items():
        if not c["settings"]:
            continue
        where = f"at the reference `{c['decided_at']}`" if c.get("decided_at") else "in the base setting"
        lines += ["", f"## Claim {cid}: {c['base']} {where}", "", "| factor | setting | verdict | holds |",
                  "|---|---|---|---|"]
        for r in c["settings"]:
            lines.append(f"| {r['factor']} | {r['setting']} | {r['verdict']} | {'yes' if r['holds'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _changes(base_runs, variant_runs):
    """What the variant's runs changed against ``base_runs`` (from their ``run.json``): ``({key: (base value,
    variant value)}, methods, seeds)``."""
    def params(run):
        info = io.read_json(os.path.join(run, "run.json"))
        model = info.get("model") or {}
        return info, {"gp_weight": info.get("gp_weight"), "width": model.get("width"),
                      "clip_value": info.get("clip_value"), "iterations": info.get("iterations"),
                      "initializer": model.get("initializer", "glorot") if "width" in model else None}

    base, datasets = {}, set()
    for run in base_runs:
        info, p = params(run)
        base.setdefault((info["dataset"], info["method"]), p)
        base.setdefault(info["method"], p)
        datasets.add(info["dataset"])
    changes, methods, seeds = {}, set(), set()
    for run in variant_runs:
        info, p = params(run)
        if info["dataset"] not in datasets:
            continue  # a cell the other side has no runs of (the default profile's digits against the toy reference)
        methods.add(info["method"])
        seeds.add(int(info["seed"]))
        reference = base.get((info["dataset"], info["method"])) or base.get(info["method"], {})
        for key, value in p.items():
            if None not in (value, reference.get(key)) and reference[key] != value:
                changes.setdefault(key, set()).add((reference[key], value))
    return changes, methods, seeds


def _changes_text(changes, skip=()):
    def text(value):
        return value if isinstance(value, str) else f"{value:g}"

    return "; ".join(sorted(f"{key} {text(a)} -> {text(b)}" for key, pairs in changes.items() if key not in skip
                            for a, b in pairs)) or "no parameter differs"


def describe_variant(base_runs, variant_runs) -> str:
    """What a variant changed, read from the runs' ``run.json``: e.g. ``gp_weight 0.1 -> 10 (gp; seeds [0, 1, 2])``."""
    changes, methods, seeds = _changes(base_runs, variant_runs)
    return f"{_changes_text(changes)} ({', '.join(m for m in ('clip', 'gp', 'sn') if m in methods)}; seeds {sorted(seeds)})"


def run(base_runs, variant_runs: dict, budgets, window, out_json, out_md, overfit_csv=None, bootstrap=200,
        around: dict | None = None, reference: str | None = None) -> dict:
    """Load the runs, decide every setting and write ``robustness.json`` and ``robustness.md``.

    ``variant_runs``: ``{name: [run directories of the variant's own runs]}``;
    each variant's setting is described by what its runs' ``run.json``
    changed against the runs it is around (the base runs, or the variant of
    ``around``). ``around`` and ``reference``: see :func:`decide`.
    """
    around = dict(around or {})
    base = load(base_runs, "history.csv")
    variants = {name: load(runs, "history.csv") for name, runs in variant_runs.items()}
    overfit = overfitting_final(pd.read_csv(overfit_csv)) if overfit_csv is not None else None
    result = decide(base, variants, budgets, window, overfit=overfit, bootstrap=bootstrap, around=around,
                    reference=reference)
    descriptions = {name: describe_variant(variant_runs[around[name]] if name in around else base_runs, runs)
                    for name, runs in variant_runs.items()}
    if reference is not None:
        scaled = _changes_text(_changes(variant_runs[reference], base_runs)[0], skip=("iterations",))
        descriptions["scaled_down"] = (f"{scaled}: the profile's own runs, judged at the reference's "
                                       f"{int(variants[reference]['iteration'].max())} iterations")
    for c in result["claims"].values():
        for r in c["settings"]:
            r["setting"] = descriptions.get(r["factor"], r["setting"])
    io.write_json(out_json, result)
    io.write_text(out_md, markdown(result))
    return result
