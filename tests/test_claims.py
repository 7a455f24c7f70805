"""The verdict rules of keras_sngan.poster.judging.claims on synthetic tables built to make each rule answer
*supported*, *partly supported* and *not supported*, plus the properties the rules promise (like with like,
scale-free, majorities, tolerances from float32 error)."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from keras_sngan.poster.judging import claims

WINDOW = (150, 250)


def _history(grad, grad0=None, tau=None, scale=None, datasets=("a", "b", "c"), seeds=(0, 1, 2), iterations=300,
             penalty=None):
    """Per-iteration table: probe gradient norm ``grad[m]`` (``grad0[m]`` at iteration 0) and a Wasserstein
    estimate rising as ``scale[m] * (1 - exp(-t / tau[m]))``; ``penalty[m]`` adds a GP-style penalty term
    ``10 * penalty * exp(-t / 2)`` to the critic loss (never to W)."""
    grad0 = grad0 or {}
    tau = tau or {"clip": 50.0, "gp": 50.0, "sn": 50.0}
    scale = scale or {"clip": 1.0, "gp": 1.0, "sn": 1.0}
    penalty = penalty or {}
    rows = []
    t = np.arange(iterations + 1)
    for d_index, dataset in enumerate(datasets):
        for method in ("clip", "gp", "sn"):
            g = grad[method][d_index] if isinstance(grad[method], (list, tuple)) else grad[method]
            g0 = grad0.get(method, g)
            g0 = g0[d_index] if isinstance(g0, (list, tuple)) else g0
            ta = tau[method][d_index] if isinstance(tau[method], (list, tuple)) else tau[method]
            for seed in seeds:
                w = scale[method] * (1 - np.exp(-t / ta)) * (1 + 0.01 * seed)
                pen = penalty.get(method, 0.0) * np.exp(-t / 2.0)
                probe = np.where(t == 0, g0, g) * (1 + 0.01 * seed)
                rows.append(pd.DataFrame({"dataset": dataset, "method": method, "seed": seed, "iteration": t,
                                          "wasserstein": w, "gradient_penalty": pen, "critic_loss": -w + 10 * pen,
                                          "probe_grad_norm": probe}))
    return pd.concat(rows, ignore_index=True)


# ----------------------------------------------------------------------------- rule 1
def test_rule1_supported_when_clip_gradients_shrink_during_training():
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 0.5}, grad0={"clip": 0.5})
    assert claims.claim_clipping(h, WINDOW)["verdict"] == claims.SUPPORTED


def test_rule1_partly_when_small_from_initialization():
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 0.5})
    result = claims.claim_clipping(h, WINDOW)
    assert result["verdict"] == claims.PARTLY
    assert "initialization" in result["note"]


def test_rule1_partly_when_small_on_a_majority_only():
    h = _history({"clip": [0.001, 0.001, 0.9], "gp": 1.0, "sn": 0.5}, grad0={"clip": 0.5})
    assert claims.claim_clipping(h, WINDOW)["verdict"] == claims.PARTLY


def test_rule1_not_supported_when_small_on_one_dataset_only():
    h = _history({"clip": [0.001, 0.9, 0.9], "gp": 1.0, "sn": 0.5}, grad0={"clip": 0.5})
    assert claims.claim_clipping(h, WINDOW)["verdict"] == claims.NOT_SUPPORTED


def test_rule1_not_supported_when_clip_gradients_are_large():
    h = _history({"clip": 0.8, "gp": 1.0, "sn": 0.5})
    assert claims.claim_clipping(h, WINDOW)["verdict"] == claims.NOT_SUPPORTED


def test_rule1_exact_zero_gradient_is_small_and_printed_as_zero():
    h = _history({"clip": 0.0, "gp": 1.0, "sn": 0.5}, grad0={"clip": 0.5})
    result = claims.claim_clipping(h, WINDOW)
    assert result["verdict"] == claims.SUPPORTED
    assert "clip 0 ± 0" in result["numbers"][0]


def test_rule1_compares_with_every_other_method():
    # clip is tiny next to GP but not next to SN: not small.
    h = _history({"clip": 0.01, "gp": 1.0, "sn": 0.02}, grad0={"clip": 0.5})
    assert claims.claim_clipping(h, WINDOW)["verdict"] == claims.NOT_SUPPORTED


def test_rule1_needs_the_probe_column():
    h = _history({"clip": 0.01, "gp": 1.0, "sn": 0.5}).drop(columns="probe_grad_norm")
    with pytest.raises(ValueError, match="probe_grad_norm"):
        claims.claim_clipping(h, WINDOW)


# ----------------------------------------------------------------------------- rule 2a
G = {"clip": 0.01, "gp": 1.0, "sn": 0.5}


def test_rule2a_supported_when_gp_rises_first():
    h = _history(G, tau={"clip": 100.0, "gp": 3.0, "sn": 30.0})
    assert claims.claim_gp_speed(h)["verdict"] == claims.SUPPORTED


@pytest.mark.parametrize("tied_with", ["clip", "sn"])
def test_rule2a_a_tie_for_first_is_not_first_whatever_the_method_order(tied_with):
    # GP's curve equals one other method's (identical p); the third is slower. clip is listed before GP, sn after.
    tau = {"clip": 100.0, "gp": 3.0, "sn": 100.0}
    tau[tied_with] = 3.0
    result = claims.claim_gp_speed(_history(G, tau=tau))
    assert result["verdict"] == claims.PARTLY
    assert result["used"]["gp_first_datasets"] == 0 and result["used"]["gp_top_half_datasets"] == 3
    assert f"rank 1 of 3 (tied with {tied_with})" in result["numbers"][0]


def test_rule2a_partly_when_gp_is_second():
    h = _history(G, tau={"clip": 100.0, "gp": 30.0, "sn": 3.0})
    assert claims.claim_gp_speed(h)["verdict"] == claims.PARTLY


def test_rule2a_not_supported_when_gp_is_slowest():
    h = _history(G, tau={"clip": 10.0, "gp": 100.0, "sn": 3.0})
    assert claims.claim_gp_speed(h)["verdict"] == claims.NOT_SUPPORTED


def test_rule2a_ignores_the_vanishing_penalty():
    # GP's critic loss drops by ~10 because its penalty vanishes, but its Wasserstein estimate is the slowest.
    h = _history(G, tau={"clip": 10.0, "gp": 100.0, "sn": 3.0}, penalty={"gp": 1.0})
    assert claims.claim_gp_speed(h)["verdict"] == claims.NOT_SUPPORTED


def test_rule2a_is_scale_free():
    # Clipping's W lives at 1e-3 of GP's scale but rises fastest: clipping ranks first, GP second.
    h = _history(G, tau={"clip": 3.0, "gp": 10.0, "sn": 100.0}, scale={"clip": 1e-3, "gp": 5.0, "sn": 1.0})
    result = claims.claim_gp_speed(h)
    assert result["verdict"] == claims.PARTLY
    assert result["used"]["gp_first_datasets"] == 0


def test_early_progress_matches_hand_computation():
    t = np.arange(0, 101)
    w = np.where(t <= 10, 1.0, 2.0)
    w[0] = 0.0
    h = pd.DataFrame({"dataset": "a", "method": "gp", "seed": 0, "iteration": t, "wasserstein": w})
    # cut = 10: first block mean 1, largest block mean 2, start 0 -> p = 1 / 2
    assert claims.early_progress(h).iloc[0] == pytest.approx(0.5)


def _early_oracle(history, column="wasserstein"):
    """Rule 2a's quantities by plain pandas group means, one run at a time (the definition, slowly)."""
    progress, drop = {}, {}
    for key, g in history.groupby(["dataset", "method", "seed"], sort=False):
        last = int(g["iteration"].max())
        cut = max(1, int(np.ceil(claims.EARLY_FRACTION * last)))
        start = float(g.loc[g["iteration"] == 0, column].mean())
        later = g[g["iteration"] >= 1]
        blocks = later.groupby((later["iteration"] - 1) // cut)[column].mean()
        rise = float(blocks.max()) - start if len(blocks) else 0.0
        early = float(blocks.iloc[0]) - start if len(blocks) else 0.0
        progress[key] = early / rise if rise > 0 else 0.0
        drop[key] = float(g[(g["iteration"] >= 1) & (g["iteration"] <= cut)][column].mean()) - start
    return pd.Series(progress, dtype=float), pd.Series(drop, dtype=float)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_early_progress_and_drop_equal_plain_group_means(data):
    """Shuffled rows, runs of different lengths, NaN values and whole NaN blocks, as pandas' means treat them."""
    rows = []
    for dataset, method, seed in data.draw(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["clip", "gp"]),
                                                              st.integers(0, 2)), min_size=1, max_size=4, unique=True)):
        last = data.draw(st.integers(0, 60))
        values = data.draw(st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan"))), min_size=last + 1, max_size=last + 1))
        rows += [{"dataset": dataset, "method": method, "seed": seed, "iteration": t, "wasserstein": v}
                 for t, v in enumerate(values)]
    history = pd.DataFrame(rows).sample(frac=1.0, random_state=data.draw(st.integers(0, 9)))
    progress, drop = _early_oracle(history)
    pd.testing.assert_series_equal(claims.early_progress(history), progress, rtol=1e-12)
    pd.testing.assert_series_equal(claims.early_drop(history), drop, rtol=1e-12)


# ----------------------------------------------------------------------------- rule 2b
def _overfit(means, cells=(("digits", 256), ("8gaussians", 512)), seeds=10, noise=0.1):
    spread = np.linspace(-1.5, 1.5, seeds)  # deterministic: each method's sample mean is exactly its mean
    rows = []
    for dataset, size in cells:
        for method, mean in means.items():
            m = mean(dataset) if callable(mean) else mean
            for seed in range(seeds):
                d = m + noise * spread[seed]
                rows.append({"dataset": dataset, "train_size": size, "method": method, "seed": seed,
                             "std_gap": d, "gap": 0.01 * d, "w_train": 1.0, "w_heldout": 1.0 - 0.01 * d})
    return pd.DataFrame(rows)


def test_rule2b_supported_when_gp_overfits_more():
    result = claims.claim_gp_overfit(_overfit({"clip": 0.0, "gp": 1.0, "sn": 0.0, "gp0.1": 0.5}))
    assert result["verdict"] == claims.SUPPORTED
    assert "Hedges g" in result["numbers"][0] and "95% CI" in result["numbers"][0]


def test_rule2b_partly_when_every_critic_overfits_alike():
    result = claims.claim_gp_overfit(_overfit({"clip": 1.0, "gp": 1.0, "sn": 1.0}))
    assert result["verdict"] == claims.PARTLY


def test_rule2b_not_supported_without_a_gap():
    assert claims.claim_gp_overfit(_overfit({"clip": 0.0, "gp": 0.0, "sn": 0.0}))["verdict"] == claims.NOT_SUPPORTED
    assert claims.claim_gp_overfit(None)["verdict"] == claims.NOT_SUPPORTED


def test_rule2b_bonferroni_over_cells():
    # One cell with a marginal effect: p ~ 0.03 one-sided passes 0.05 alone, not 0.05 / 2.
    table = _overfit({"clip": 0.0, "gp": 0.0, "sn": 0.0}, noise=1.0)
    cells = claims.standardized_gap_tests(table)
    assert all(c["level"] == pytest.approx(claims.ALPHA / 2) for c in cells)


def test_rule2b_welch_matches_scipy_oracle():
    table = _overfit({"clip": 0.0, "gp": 0.3, "sn": 0.1}, noise=0.5)
    cell = claims.standardized_gap_tests(table)[0]
    sel = table[table["dataset"] == "digits"]
    gp, sn = sel[sel.method == "gp"].std_gap, sel[sel.method == "sn"].std_gap
    expected = stats.ttest_ind(gp, sn, equal_var=False, alternative="greater").pvalue
    assert cell["comparisons"]["sn"]["p"] == pytest.approx(expected)
    low, high = cell["comparisons"]["sn"]["ci95"]
    assert low < gp.mean() - sn.mean() < high


# ----------------------------------------------------------------------------- rule 3
def test_rule3_supported_when_sn_between_on_every_quantity():
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 0.2}, grad0={"clip": 0.01, "gp": 0.01, "sn": 0.01},
                 tau={"clip": 100.0, "gp": 3.0, "sn": 20.0})
    over = _overfit({"clip": 0.0, "gp": 1.0, "sn": 0.5})
    assert claims.claim_middle(h, WINDOW, over)["verdict"] == claims.SUPPORTED


def test_rule3_partly_when_between_on_most_pairs_only():
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 0.2}, grad0={"clip": 0.01, "gp": 0.01, "sn": 0.01},
                 tau={"clip": 100.0, "gp": 3.0, "sn": 20.0})
    over = _overfit({"clip": 0.0, "gp": 1.0, "sn": 3.0})  # SN overfits most: not between on d
    assert claims.claim_middle(h, WINDOW, over)["verdict"] == claims.PARTLY


def test_rule3_one_quantity_on_one_dataset_is_not_enough():
    # SN between only for early progress on dataset "a".
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 3.0}, grad0={"clip": 0.01, "gp": 0.01, "sn": 0.01},
                 tau={"clip": 100.0, "gp": 3.0, "sn": [20.0, 1.0, 1.0]})
    result = claims.claim_middle(h, WINDOW)
    assert result["used"]["early progress p"] == {"between": 1, "of": 3}
    assert result["verdict"] == claims.NOT_SUPPORTED


def test_rule3_raw_gradient_order_does_not_decide():
    # Raw window magnitudes clip < SN < GP (GP ~1 by construction, SN <= 1) in both tables, yet SN is
    # not between on speed (first table) nor on gradient growth (second: SN's grows 200x, GP's 25x).
    h = _history({"clip": 0.001, "gp": 1.0, "sn": 0.2}, grad0={"clip": 0.01, "gp": 0.04, "sn": 0.2},
                 tau={"clip": 10.0, "gp": 3.0, "sn": 100.0})
    between = claims.claim_middle(h, WINDOW)["used"]
    assert between["early progress p"]["between"] == 0
    h2 = _history({"clip": 0.001, "gp": 1.0, "sn": 0.2}, grad0={"clip": 0.0001, "gp": 0.04, "sn": 0.001},
                  tau={"clip": 10.0, "gp": 3.0, "sn": 100.0})
    assert claims.claim_middle(h2, WINDOW)["used"]["log10 gradient growth"]["between"] == 0


def test_gradient_growth_of_zero_is_undefined_and_not_between():
    h = _history({"clip": 0.0, "gp": 1.0, "sn": 0.2}, grad0={"clip": 0.0, "gp": 0.04, "sn": 0.01})
    growth = claims.gradient_growth(h, WINDOW)
    assert math.isnan(growth["a"]["clip"])
    assert growth["a"]["gp"] == pytest.approx(math.log10(1.0 / 0.04))


# ----------------------------------------------------------------------------- rule 4
def _mlp(relu=None, gelu=None):
    """relu/gelu: {(depth, state): (upper, lower)} overrides; defaults: ReLU exactly 1-Lipschitz, GELU violating."""
    rows = []
    for act, defaults in (("relu", {"init": (1.0, 0.2), "trained": (1.0, 0.95), "worst_case": (1.0, 1.0)}),
                          ("gelu", {"init": (1.27, 0.2), "trained": (1.27, 1.3), "worst_case": (1.27, 1.27)})):
        over = relu if act == "relu" else gelu
        for depth in (2, 8):
            for state, (upper, lower) in defaults.items():
                upper, lower = (over or {}).get((depth, state), (upper, lower))
                rows.append({"activation": act, "depth": depth, "width": 1 if state == "worst_case" else 64,
                             "state": state, "upper_bound": upper, "lower_bound": lower})
    return pd.DataFrame(rows)


CONV = pd.DataFrame([{"method": "reshape", "upper_bound": 8.0, "max_layer_norm": 2.0}])


def test_rule4_supported():
    result = claims.claim_lipschitz(_mlp(), CONV)
    assert result["verdict"] == claims.SUPPORTED
    assert "reshape" in result["note"]


def test_rule4_partly_when_the_relu_certificate_lags():
    # Power-iteration lag: certified 1.032 at depth 8 (tol ~7e-5) -- no longer called certified.
    result = claims.claim_lipschitz(_mlp(relu={(8, "trained"): (1.032, 0.99)}), CONV)
    assert result["verdict"] == claims.PARTLY
    assert result["used"]["A"] is False


def test_rule4_partly_when_only_worst_case_chains_violate():
    result = claims.claim_lipschitz(_mlp(gelu={(2, "trained"): (1.27, 0.9), (8, "trained"): (1.27, 0.9)}), CONV)
    assert result["verdict"] == claims.PARTLY
    assert result["used"]["C"] is False


def test_rule4_relu_worst_case_rows_count():
    # A measured ReLU slope above 1 (a worst-case chain) refutes the claim, as GELU's would support it.
    result = claims.claim_lipschitz(_mlp(relu={(2, "worst_case"): (1.0, 1.07)}), CONV)
    assert result["verdict"] == claims.NOT_SUPPORTED


def test_rule4_b_rests_on_measurement_not_on_the_activation_constant():
    # Upper bounds above 1 (a product with GELU's constant 1.129) but no measured slope above 1: B fails.
    flat = {(d, s): (1.27, 0.9) for d in (2, 8) for s in ("init", "trained", "worst_case")}
    result = claims.claim_lipschitz(_mlp(gelu=flat), CONV)
    assert result["used"]["B"] is False
    assert result["verdict"] == claims.NOT_SUPPORTED


def test_rule4_tolerance_is_float32_error():
    tol = claims.float32_bound_tolerance(8, 64)
    assert tol == pytest.approx(9 * 64 * np.finfo(np.float32).eps)
    inside = claims.claim_lipschitz(_mlp(relu={(8, "trained"): (1 + 0.5 * tol, 0.99)}), CONV)
    outside = claims.claim_lipschitz(_mlp(relu={(8, "trained"): (1 + 2 * tol, 0.99)}), CONV)
    assert inside["verdict"] == claims.SUPPORTED and outside["verdict"] == claims.PARTLY
    assert "tol" in inside["numbers"][0]


# ----------------------------------------------------------------------------- rule 5
def _stability(lecun_factor, sn_norm=1.0):
    return pd.DataFrame([
        {"depth": 50, "activation": "relu", "scheme": "c=1", "activation_factor_per_layer": lecun_factor,
         "gradient_factor_per_layer": lecun_factor, "max_spectral_norm": 2.0},
        {"depth": 50, "activation": "relu", "scheme": "c=2", "activation_factor_per_layer": 1.0,
         "gradient_factor_per_layer": 1.0, "max_spectral_norm": 2.8},
        {"depth": 50, "activation": "relu", "scheme": "sn", "activation_factor_per_layer": 0.35,
         "gradient_factor_per_layer": 0.35, "max_spectral_norm": sn_norm},
    ])


CHECK = pd.DataFrame({"n": [4, 8], "s2": [1.0, 1.0], "samples": [100, 100], "ratio": [1.0, 1.01], "z": [0.1, -1.0]})
BOUND = pd.DataFrame({"input": ["gaussian"], "max_layer_gain": [0.7]})


def test_rule5_three_answers():
    assert claims.claim_variance(CHECK, _stability(1.0), BOUND, width=256)["verdict"] == claims.SUPPORTED
    assert claims.claim_variance(CHECK, _stability(0.707), BOUND, width=256)["verdict"] == claims.PARTLY
    bad = CHECK.assign(z=[10.0, 0.0])
    assert claims.claim_variance(bad, _stability(1.0), BOUND, width=256)["verdict"] == claims.NOT_SUPPORTED


def test_rule5_sn_norm_tolerance_is_float32_error():
    tol = claims.float32_bound_tolerance(0, 256)
    ok = claims.claim_variance(CHECK, _stability(1.0, sn_norm=1 + 0.5 * tol), BOUND, width=256)
    bad = claims.claim_variance(CHECK, _stability(1.0, sn_norm=1 + 2 * tol), BOUND, width=256)
    assert ok["verdict"] == claims.SUPPORTED and bad["verdict"] == claims.NOT_SUPPORTED


# ----------------------------------------------------------------------------- rendering
def test_markdown_and_html_carry_each_verdict_with_its_numbers():
    from keras_sngan.poster.reporting import claims_report

    result = claims.claim_lipschitz(_mlp(), CONV)
    entry = {"id": "4", "claim": "SN <b>bounds</b>", "verdict": result["verdict"], "numbers": result["numbers"],
             "note": result["note"], "used": result["used"]}
    context = {"seeds": [0], "window": [150, 250], "runs": 3, "gp_weights": {"digits": [10.0]}, "overfit_runs": 0}
    md = claims_report.markdown([entry], context)
    page = claims_report.to_html([entry], context)
    assert "**Verdict: supported.**" in md and "Used by the rule: A = True" in md
    assert "lambda" in md and "digits: [10.0]" in md
    assert "Verdict: supported." in page and "SN &lt;b&gt;bounds&lt;/b&gt;" in page  # escaped
    assert "tol_range" in page and "Constants: SMALL_REL=0.1" in page
    for text in (md, page):
        assert "2b. *GP risks overfitting.*" in text  # the rules are printed with the verdicts


def test_markdown_table_escapes_pipes_in_a_claim():
    from keras_sngan.poster.reporting import claims_report

    entry = {"id": "5", "claim": "SN bounds ||W||_2", "verdict": claims.SUPPORTED, "numbers": [], "note": "",
             "used": {}}
    context = {"seeds": [0], "window": [150, 250], "runs": 3, "gp_weights": {}, "overfit_runs": 0}
    row = [line for line in claims_report.markdown([entry], context).splitlines() if line.startswith("| 5 |")]
    assert row == [r"| 5 | SN bounds \|\|W\|\|_2 | **supported** |"]


def test_the_report_names_the_toy_width_of_the_runs_and_flags_a_scale_down(tmp_path):
    """The width line comes from the runs' own run.json, and says when it is narrower than gan_toy.py's 512."""
    import json

    from keras_sngan.poster.reporting import claims_report

    runs = []
    for dataset, width in (("8gaussians", 256), ("swissroll", 256), ("digits", 256)):
        run = tmp_path / dataset
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"dataset": dataset, "method": "sn", "model": {"width": width}}))
        runs.append(str(run))
    widths = claims_report._toy_widths(runs)
    assert widths == {"8gaussians": [256], "swissroll": [256]}  # digits' CNN has no toy width
    context = {"seeds": [0], "window": [150, 250], "runs": 3, "gp_weights": {}, "overfit_runs": 0}
    narrow = claims_report.markdown([], {**context, "toy_widths": widths})
    assert "Toy MLP width of the comparison runs: 8gaussians: [256], swissroll: [256] (gan_toy.py: 512)." in narrow
    assert "scale-down" in narrow
    full = claims_report.markdown([], {**context, "toy_widths": {"8gaussians": [512]}})
    assert "8gaussians: [512] (gan_toy.py: 512)." in full and "scale-down" not in full
    assert "Toy MLP width" not in claims_report.markdown([], context)  # no toy runs: no line
