"""The robustness table: the fixed rules decided again per setting, on histories built to flip (or not)."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_sngan.poster.judging import claims as rules
from keras_sngan.poster.reporting import claims_report
from keras_sngan.poster.judging import robustness

N = 400
WINDOW = (150, 250)


def _history(curves, seeds=(0, 1, 2), dataset="8gaussians"):
    """``curves[method](t, seed) -> (wasserstein, probe_grad_norm)`` for t = 0..N."""
    rows = []
    for method, curve in curves.items():
        for seed in seeds:
            for t in range(N + 1):
                w, g = curve(t, seed)
                rows.append({"dataset": dataset, "method": method, "seed": seed, "iteration": t,
                             "wasserstein": w, "probe_grad_norm": g})
    return pd.DataFrame(rows)


def linear(t, seed):
    return t / N, 1.0


def step_at_35(t, seed):
    """GP's estimate jumps at iteration 35: inside the first 10% of a 400-iteration run, outside that of 300."""
    return (1.0 if t >= 35 else 0.0), 1.0


def clip_small(t, seed):
    return t / N, (1.0 if t == 0 else 0.01)


def squared(t, seed):
    return (t / N) ** 2, 1.0


BASE = {"clip": clip_small, "gp": step_at_35, "sn": linear}


def test_base_verdicts_are_the_rules_own():
    history = _history(BASE)
    result = robustness.decide(history, {}, [], WINDOW, bootstrap=0)
    assert result["claims"]["1"]["base"] == rules.claim_clipping(history, WINDOW)["verdict"] == rules.SUPPORTED
    assert result["claims"]["2a"]["base"] == rules.claim_gp_speed(history)["verdict"] == rules.SUPPORTED
    assert result["claims"]["2a"]["n"] == 0 and not result["claims"]["2a"]["fragile"]


def test_a_variant_that_slows_gp_flips_claim_2a_and_is_named():
    history = _history(BASE)
    slow_gp = _history({"gp": squared})
    result = robustness.decide(history, {"gp_weight_10": slow_gp}, [], WINDOW, bootstrap=0)
    c = result["claims"]["2a"]
    assert c["settings"][0]["verdict"] == rules.NOT_SUPPORTED
    assert c["fragile"] and c["flipped_by"] == ["gp_weight_10"] and (c["k"], c["n"]) == (0, 1)
    assert not result["claims"]["1"]["fragile"]  # clipping's gradients did not change


def test_a_variant_replaces_only_its_own_cells():
    history = _history(BASE)
    combined = robustness.combine(history, _history({"gp": squared}, seeds=(0,)))
    assert sorted(combined[combined["method"] == "gp"]["seed"].unique()) == [0]
    pd.testing.assert_frame_equal(combined[combined["method"] == "sn"].reset_index(drop=True),
                                  history[history["method"] == "sn"].reset_index(drop=True))


def test_a_shorter_budget_is_the_truncated_run_and_can_flip_a_verdict():
    history = _history(BASE)
    result = robustness.decide(history, {}, [300], WINDOW, bootstrap=0)
    row = result["claims"]["2a"]["settings"][0]
    assert row["factor"] == "budget" and row["verdict"] != rules.SUPPORTED and not row["holds"]
    assert rules.claim_gp_speed(history[history["iteration"] <= 300])["verdict"] == row["verdict"]
    assert result["claims"]["1"]["settings"][0]["holds"]  # the window 150-250 lies inside both budgets
    with pytest.raises(ValueError, match="budget"):
        robustness.truncate(history, N)


def test_a_shorter_variant_is_judged_with_the_base_runs_truncated_to_its_length():
    # The variant reruns GP with the same curve for 300 iterations: the comparison is then the 300-iteration
    # one for every method (the budget setting at 300), not GP's 300 against the others' 400.
    history = _history(BASE)
    short_gp = _history({"gp": step_at_35})
    short_gp = short_gp[short_gp["iteration"] <= 300]
    combined = robustness.combine(history, short_gp)
    assert combined.groupby("method")["iteration"].max().to_dict() == {"clip": 300, "gp": 300, "sn": 300}
    result = robustness.decide(history, {"width_512": short_gp}, [300], WINDOW, bootstrap=0)
    variant, budget = result["claims"]["2a"]["settings"]
    assert variant["verdict"] == budget["verdict"] == rules.claim_gp_speed(history[history["iteration"] <= 300])["verdict"]
    assert not variant["holds"] and result["claims"]["2a"]["flipped_by"] == ["budget", "width_512"]
    longer = _history({"gp": step_at_35}).assign(iteration=lambda f: f["iteration"] * 2)
    with pytest.raises(ValueError, match="may not be longer"):
        robustness.combine(history, longer)


def test_the_bootstrap_share_matches_the_probability_of_dropping_the_one_fast_seed():
    # GP is fast on seed 0 only: a resample without seed 0 (probability (2/3)^3) ranks GP last.
    def gp(t, seed):
        return step_at_35(t, seed) if seed == 0 else (0.0, 1.0)

    history = _history({"clip": clip_small, "gp": gp, "sn": linear})
    result = robustness.decide(history, {}, [], WINDOW, bootstrap=400, seed=1)
    row = result["claims"]["2a"]["settings"][-1]
    expected = 1 - (2 / 3) ** 3
    assert abs(row["share"] - expected) < 4 * np.sqrt(expected * (1 - expected) / 400)
    assert row["verdict"] == "varies" and result["claims"]["2a"]["flipped_by"] == ["bootstrap"]
    assert result["claims"]["1"]["settings"][-1]["share"] == 1.0  # identical seeds: every resample agrees


def test_claim_2b_is_decided_again_with_gp_at_gan_toys_weight():
    rng = np.random.default_rng(0)
    rows = []
    for method, mean in (("clip", 0.0), ("sn", 0.0), ("gp", 0.0), ("gp0.1", 2.0)):
        for seed in range(8):
            d = mean + rng.normal(0, 0.1)
            rows.append({"dataset": "8gaussians", "train_size": 512, "method": method, "seed": seed, "std_gap": d, "gap": d})
    overfit = pd.DataFrame(rows)
    swapped = robustness.gp_at_toy_weight(overfit)
    assert set(swapped["method"]) == {"clip", "sn", "gp"}
    assert swapped[swapped["method"] == "gp"]["std_gap"].mean() > 1.5
    result = robustness.decide(_history(BASE), {}, [], WINDOW, overfit=overfit, bootstrap=0)
    c = result["claims"]["2b"]
    assert c["base"] == rules.NOT_SUPPORTED and c["settings"][0]["verdict"] == rules.SUPPORTED
    assert c["fragile"] and c["flipped_by"] == ["gp_weight"]


def test_the_claims_report_refuses_a_robustness_file_of_other_runs(tmp_path):
    path = tmp_path / "robustness.json"
    path.write_text(json.dumps({"claims": {"2a": {"base": rules.NOT_SUPPORTED, "k": 1, "n": 1, "fragile": False,
                                                  "flipped_by": [], "settings": []}}}))
    claims = [{"id": "2a", "verdict": rules.SUPPORTED}]
    with pytest.raises(ValueError, match="other runs"):
        claims_report._attach(claims, {}, path, None, None)
    path.write_text(json.dumps({"claims": {"2a": {"base": rules.SUPPORTED, "k": 0, "n": 1, "fragile": True,
                                                  "flipped_by": ["width_512"], "settings": []}}}))
    claims_report._attach(claims, {}, path, None, None)
    assert claims_report._robust_text(claims[0]) == "0 of 1, *fragile* (width_512)"


# A reference variant (the long profile's width_512): every method rerun for 300 of the base's 400 iterations.
def clip_larger(t, seed):
    """Clipping's gradients at the reference: 0.3x the others', not <= 0.1x (claim 1 flips there)."""
    return t / N, (1.0 if t == 0 else 0.3)


def step_at_25(t, seed):
    """GP's estimate jumps inside the first 10% of a 300-iteration run (claim 2a agrees with the base)."""
    return (1.0 if t >= 25 else 0.0), 1.0


def steep_gp(t, seed):
    return step_at_25(t, seed)[0], 10.0


def _reference(curves=None, seeds=(0, 1, 2)):
    history = _history(curves or {"clip": clip_larger, "gp": step_at_25, "sn": linear}, seeds=seeds)
    return history[history["iteration"] <= 300]


def test_a_claim_the_reference_flips_is_decided_there_with_its_settings_around_it():
    base = _history(BASE)
    reference = _reference()
    steep = _reference({"gp": steep_gp})
    result = robustness.decide(base, {"width_512": reference, "width_512_gp": steep}, [200, 300], WINDOW,
                               bootstrap=0, around={"width_512_gp": "width_512"}, reference="width_512")
    c1 = result["claims"]["1"]
    at_reference = robustness.combine(base, reference)
    assert c1["decided_at"] == "width_512" and c1["profile_verdict"] == rules.SUPPORTED
    assert c1["base"] == rules.claim_clipping(at_reference, WINDOW)["verdict"] == rules.NOT_SUPPORTED
    assert [r["factor"] for r in c1["settings"]] == ["scaled_down", "width_512_gp", "budget"]
    scaled, steep_row, budget = c1["settings"]
    # the scale-down: the profile's runs truncated to the reference's 300 iterations flip it back
    assert scaled["verdict"] == rules.claim_clipping(base[base["iteration"] <= 300], WINDOW)["verdict"] == rules.SUPPORTED
    assert not scaled["holds"] and c1["fragile"] and c1["flipped_by"] == ["scaled_down"]
    # the variant around the reference replaces GP in the reference's comparison, not in the profile's
    assert steep_row["verdict"] == rules.claim_clipping(robustness.combine(at_reference, steep), WINDOW)["verdict"]
    assert steep_row["holds"] and budget["holds"] and (c1["k"], c1["n"]) == (2, 3)
    # a claim the reference does not flip stays decided on the profile's runs, with the reference as a setting
    c2a = result["claims"]["2a"]
    assert c2a["decided_at"] is None and c2a["base"] == rules.SUPPORTED and "profile_verdict" not in c2a
    assert [r["factor"] for r in c2a["settings"]] == ["width_512", "budget", "budget"]
    assert c2a["settings"][0]["holds"]
    assert "Decided at the reference `width_512`: claim 1 (the profile's own runs give *supported*)" in \
        robustness.markdown(result)


def test_a_reference_that_flips_nothing_leaves_every_claim_on_the_profiles_runs():
    base = _history(BASE)
    agreeing = _reference({"clip": clip_small, "gp": step_at_25, "sn": linear})
    steep = _reference({"gp": steep_gp})
    result = robustness.decide(base, {"width_512": agreeing, "width_512_gp": steep}, [300], WINDOW, bootstrap=0,
                               around={"width_512_gp": "width_512"}, reference="width_512")
    for cid in ("1", "2a", "3"):
        c = result["claims"][cid]
        assert c["decided_at"] is None and [r["factor"] for r in c["settings"]] == ["width_512", "budget"]
    assert result["claims"]["1"]["base"] == rules.claim_clipping(base, WINDOW)["verdict"]


def test_the_bootstrap_of_a_claim_decided_at_the_reference_resamples_the_reference():
    # Clipping is large at the reference on seed 0 only: resamples without seed 0 ((2/3)^3) give "supported".
    def clip(t, seed):
        return clip_larger(t, seed) if seed == 0 else clip_small(t, seed)

    base = _history(BASE)
    reference = _reference({"clip": clip, "gp": step_at_25, "sn": linear})
    result = robustness.decide(base, {"width_512": reference}, [], WINDOW, bootstrap=300, seed=3,
                               reference="width_512")
    c1 = result["claims"]["1"]
    assert c1["decided_at"] == "width_512"
    row = c1["settings"][-1]
    assert row["factor"] == "bootstrap"
    expected = 1 - (2 / 3) ** 3
    assert abs(row["share"] - expected) < 4 * np.sqrt(expected * (1 - expected) / 300)


@pytest.mark.parametrize("around, reference, match", [
    ({"a": "missing"}, None, "around 'missing'"),
    ({"a": "a"}, None, "around 'a'"),
    ({}, "missing", "reference 'missing'"),
    ({"b": "a"}, "b", "reference 'b'"),
])
def test_a_bad_around_or_reference_is_refused_by_name(around, reference, match):
    base = _history(BASE)
    variants = {"a": _reference(), "b": _reference({"gp": steep_gp})}
    with pytest.raises(ValueError, match=match):
        robustness.decide(base, variants, [], WINDOW, bootstrap=0, around=around, reference=reference)


def test_a_variant_around_the_reference_that_stops_after_claim_1s_window_gives_claim_1_what_its_full_run_gives():
    # GP's penalty weight around the reference (the long profile: 260 of the reference's 600 iterations)
    base, reference = _history(BASE), _reference()
    full = _reference({"gp": steep_gp})
    short = full[full["iteration"] <= WINDOW[1] + 10]
    rows = {}
    for name, variant in (("full", full), ("short", short)):
        result = robustness.decide(base, {"width_512": reference, "width_512_gp": variant}, [], WINDOW, bootstrap=0,
                                   around={"width_512_gp": "width_512"}, reference="width_512")
        assert result["claims"]["1"]["decided_at"] == "width_512"
        rows[name] = {r["factor"]: r["verdict"] for r in result["claims"]["1"]["settings"]}
    oracle = rules.claim_clipping(robustness.combine(robustness.combine(base, reference), full), WINDOW)["verdict"]
    assert rows["short"] == rows["full"] and rows["short"]["width_512_gp"] == oracle


def test_a_variant_around_the_reference_as_long_as_the_reference_is_accepted_when_the_window_ends_later():
    # the CI twin of the long profile: 10-iteration runs, a window that ends at 15
    base, reference = _history(BASE), _reference()
    steep = _reference({"gp": steep_gp})
    window = (150, 350)
    result = robustness.decide(base, {"width_512": reference, "width_512_gp": steep}, [300], window, bootstrap=0,
                               around={"width_512_gp": "width_512"}, reference="width_512")
    assert result["claims"]["1"]["decided_at"] == "width_512"
    assert [r["factor"] for r in result["claims"]["1"]["settings"]] == ["scaled_down", "width_512_gp"]


@pytest.mark.parametrize("reference_curves, stop, claim", [
    (None, WINDOW[1] - 10, "claim 1"),  # claim 1 decided at the reference: the variant misses the window's end
    ({"clip": clip_small, "gp": squared, "sn": linear}, WINDOW[1] + 10, "claim 2a"),  # 2a reads the whole run
])
def test_a_variant_around_the_reference_too_short_for_a_claim_decided_there_is_refused_by_name(
        reference_curves, stop, claim):
    base, reference = _history(BASE), _reference(reference_curves)
    at_reference = robustness.decide(base, {"width_512": reference}, [300], WINDOW, bootstrap=0,
                                     reference="width_512")
    assert at_reference["claims"][claim.split()[1]]["decided_at"] == "width_512"  # the case the row is built for
    short = _reference({"gp": steep_gp})
    short = short[short["iteration"] <= stop]
    with pytest.raises(ValueError, match=f"'width_512_gp'.*stops at iteration {stop}, but {claim}, decided at"):
        robustness.decide(base, {"width_512": reference, "width_512_gp": short}, [300], WINDOW, bootstrap=0,
                          around={"width_512_gp": "width_512"}, reference="width_512")


def _write_runs(tmp_path, history, name):
    dirs = []
    for (dataset, method, seed), run in history.groupby(["dataset", "method", "seed"]):
        path = tmp_path / name / dataset / method / f"seed{seed}"
        path.mkdir(parents=True)
        run.drop(columns=["dataset", "method", "seed"]).to_csv(path / "history.csv", index=False)
        (path / "run.json").write_text(json.dumps({"dataset": dataset, "method": method, "seed": int(seed)}))
        dirs.append(str(path))
    return dirs


def test_the_claims_report_computes_a_claim_decided_at_the_reference_on_the_reference_runs(tmp_path):
    base, reference = _history(BASE), _reference()
    result = robustness.decide(base, {"width_512": reference}, [], WINDOW, bootstrap=0, reference="width_512")
    path = tmp_path / "robustness.json"
    path.write_text(json.dumps(result))
    claims = [{"id": cid, "verdict": rules.claim_clipping(base, WINDOW)["verdict"] if cid == "1"
               else result["claims"][cid]["base"], "numbers": [], "note": "", "used": {}} for cid in ("1", "2a")]
    with pytest.raises(ValueError, match="--reference-runs"):
        claims_report._decide_at_reference(claims, result, base, None, WINDOW, None)
    claims_report._decide_at_reference(claims, result, base, _write_runs(tmp_path, reference, "ref"), WINDOW, None)
    expected = rules.claim_clipping(robustness.combine(base, reference), WINDOW)
    assert claims[0]["verdict"] == expected["verdict"] == rules.NOT_SUPPORTED
    assert claims[0]["numbers"] == expected["numbers"] and claims[0]["profile_verdict"] == rules.SUPPORTED
    assert "Decided at the reference setting `width_512`" in claims[0]["note"]
    assert "profile_verdict" not in claims[1]
    claims_report._attach(claims, {}, path, None, None)  # the robustness file now agrees with these verdicts
    assert claims_report._at_text(claims[0]) == " (at width_512; this profile's runs: supported)"


# The default profile's reference: gan_toy.py's width for 260 of the profile's 600 iterations, at no budget.
def test_a_reference_stopping_at_no_budget_decides_only_claim_1_and_the_same_reference_at_a_budget_decides_2a_too():
    base = _history(BASE)
    # at the reference, clipping's gradients are large (claim 1 flips) and GP's estimate rises like SN's (2a flips)
    reference = _reference({"clip": clip_larger, "gp": squared, "sn": linear})
    at_reference = robustness.combine(base, reference)
    assert rules.claim_clipping(at_reference, WINDOW)["verdict"] != rules.claim_clipping(base, WINDOW)["verdict"]
    assert rules.claim_gp_speed(at_reference)["verdict"] != rules.claim_gp_speed(base)["verdict"]

    short = robustness.decide(base, {"width_512": reference}, [], WINDOW, bootstrap=0, reference="width_512")
    assert short["claims"]["1"]["decided_at"] == "width_512"
    assert short["claims"]["1"]["base"] == rules.claim_clipping(at_reference, WINDOW)["verdict"]
    for cid in ("2a", "3"):  # read the whole run: not judged on a comparison cut at 300 of 400
        c = short["claims"][cid]
        assert c["decided_at"] is None and c["settings"] == [] and c["base"] == robustness.decide(
            base, {}, [], WINDOW, bootstrap=0)["claims"][cid]["base"]
    assert short["partial"] == {"width_512": {"last": 300, "claims": ["1"]}}
    assert "`width_512` stops at iteration 300, before this profile's runs end (400)" in robustness.markdown(short)
    assert "claims 2a and 3 read the whole run" in robustness.markdown(short)

    at_budget = robustness.decide(base, {"width_512": reference}, [300], WINDOW, bootstrap=0, reference="width_512")
    assert at_budget["claims"]["2a"]["decided_at"] == "width_512" and at_budget["partial"] == {}
    assert at_budget["claims"]["2a"]["base"] == rules.claim_gp_speed(at_reference)["verdict"]


@pytest.mark.parametrize("stop, budgets, refused", [
    (WINDOW[1] - 10, [], True),                # before the window's end, at no budget: nothing to judge
    (WINDOW[1] - 10, [WINDOW[1] - 10], False),  # at a budget: every claim, as the CI twin of the long profile
    (WINDOW[1], [], False),                   # exactly at the window's end: claim 1
])
def test_a_variant_too_short_for_every_claim_is_refused_with_its_length(stop, budgets, refused):
    base, variant = _history(BASE), _reference({"gp": steep_gp})
    variant = variant[variant["iteration"] <= stop]
    if refused:
        with pytest.raises(ValueError, match=f"stop at iteration {stop}, before the profile's runs \\(400 "
                                             f"iterations\\) and before the window's end \\({WINDOW[1]}\\)"):
            robustness.decide(base, {"gp_weight_10": variant}, budgets, WINDOW, bootstrap=0)
    else:
        result = robustness.decide(base, {"gp_weight_10": variant}, budgets, WINDOW, bootstrap=0)
        assert any(r["factor"] == "gp_weight_10" for r in result["claims"]["1"]["settings"])


def _write_run_json(root, dataset, method, seed, **params):
    path = root / dataset / method / f"seed{seed}"
    path.mkdir(parents=True)
    info = {"dataset": dataset, "method": method, "seed": seed, "iterations": params.pop("iterations"),
            "model": {"width": params.pop("width", None)}, **params}
    (path / "run.json").write_text(json.dumps(info))
    return str(path)


def test_a_setting_is_described_by_what_its_runs_changed_on_the_cells_both_sides_ran(tmp_path):
    # The default profile: toy runs (GP at 0.1, 256 wide) and digits (GP at 10, a CNN); the reference reruns
    # the toys only, 512 wide for 260 iterations. Digits, which the reference has no run of, changes nothing.
    base = [_write_run_json(tmp_path / "base", d, m, 0, iterations=600 if d != "digits" else 500,
                            width=256 if d != "digits" else None, gp_weight=(0.1 if d != "digits" else 10.0)
                            if m == "gp" else None)
            for d in ("8gaussians", "digits") for m in ("clip", "gp")]
    reference = [_write_run_json(tmp_path / "ref", "8gaussians", m, 0, iterations=260, width=512,
                                 gp_weight=0.1 if m == "gp" else None) for m in ("clip", "gp")]
    assert robustness.describe_variant(base, reference) == "iterations 600 -> 260; width 256 -> 512 (clip, gp; seeds [0])"
    changes, methods, _ = robustness._changes(reference, base)  # the scale-down, seen from the reference
    assert changes == {"iterations": {(260, 600)}, "width": {(512, 256)}} and methods == {"clip", "gp"}
    weight = [_write_run_json(tmp_path / "w", "8gaussians", "gp", 1, iterations=600, width=256, gp_weight=10.0)]
    assert robustness.describe_variant(base, weight) == "gp_weight 0.1 -> 10 (gp; seeds [1])"
