"""keras_sngan.poster.judging.agreement on small results directories built in the pipeline's formats
(claims.json, tables/summary.csv, tables/overfitting.csv, tables/gradient_flow.csv), each built to make
the comparison answer one way: identical agrees, a flipped verdict / a metric moved outside the seeds'
spread / a missing file or row differs, a metric moved inside the spread agrees; and the CLI's exit status."""

import json
import math
import os
import shutil
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from keras_sngan.poster import cli
from keras_sngan.poster.judging import agreement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUMMARY_COLUMNS = [
    "dataset", "method", "seeds", "w1_excess_mean", "w1_excess_std", "w1_floor_mean", "w1_floor_std",
    "high_quality_fraction_mean", "high_quality_fraction_std", "modes_covered_mean", "modes_covered_std",
    "critic_gap_mean", "critic_gap_std", "seconds_per_iteration_mean", "seconds_per_iteration_std",
    "frechet_distance_mean", "frechet_distance_std", "frechet_distance_floor_mean", "frechet_distance_floor_std",
    "classes_covered_mean", "classes_covered_std",
]


def _claims():
    verdicts = {"1": "partly supported", "2a": "supported", "2b": "partly supported", "3": "not supported"}
    return {
        "seeds": [0, 1, 2], "window": [150, 250], "runs": 6,
        "claims": [{"id": cid, "claim": f"claim {cid}", "verdict": v, "numbers": ["n"], "note": "", "used": {"x": 1}}
                   for cid, v in verdicts.items()],
        "thresholds": {"SMALL_REL": 0.1},
    }


def _summary():
    nan = float("nan")
    rows = [
        # dataset, method, seeds, w1_excess, w1_floor, hq, modes, gap, s/it, frechet, floor, classes (mean, std)
        ["8gaussians", "gp", 3, 0.12, 0.01, 0.08, 0.01, 0.22, 0.05, 8.0, 0.0, 0.005, 0.01, 0.10, 0.002,
         nan, nan, nan, nan, nan, nan],
        ["8gaussians", "sn", 3, 0.12, 0.04, 0.08, 0.01, 0.19, 0.08, 8.0, 0.0, -0.0003, 0.0006, 0.09, 0.005,
         nan, nan, nan, nan, nan, nan],
        ["digits", "gp", 3, nan, nan, nan, nan, nan, nan, nan, nan, 0.07, 0.025, 0.28, 0.008,
         5.7, 0.45, 0.93, 0.24, 10.0, 0.0],
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _overfitting():
    rng = np.random.default_rng(0)
    rows = []
    for dataset, size in (("digits", 256), ("8gaussians", 512)):
        for method in ("clip", "gp", "sn"):
            for seed in range(4):
                for iteration in (0, 30, 60):
                    gap = rng.normal(0.01, 0.002)
                    rows.append(dict(dataset=dataset, train_size=size, method=method,
                                     gp_weight=10.0 if method == "gp" else np.nan, seed=seed, iteration=iteration,
                                     w_train=0.5 + gap, w_heldout=0.5, gap=gap, std_gap=rng.normal(0.2, 0.05), n=size,
                                     seconds=rng.uniform(1, 3)))
    return pd.DataFrame(rows)


def _gradient_flow():
    rows = []
    for config, scale in (("clip0.01", 1e-3), ("gp", 1.0)):
        for iteration in (0, 200):
            for depth in range(3):
                g = scale * 10.0 ** depth
                rows.append(dict(iteration=iteration, config=config, depth=depth, layer=f"dense_{depth}",
                                 grad_norm_geomean=g, grad_norm_min=g / 1.5, grad_norm_max=g * 1.5, seeds=2))
    return pd.DataFrame(rows)


def _write(root, claims=None, summary=None, overfitting=None, flow=None):
    os.makedirs(os.path.join(root, "tables"), exist_ok=True)
    with open(os.path.join(root, "claims.json"), "w") as handle:
        json.dump(claims if claims is not None else _claims(), handle, indent=2)
    (summary if summary is not None else _summary()).to_csv(os.path.join(root, "tables", "summary.csv"), index=False)
    (overfitting if overfitting is not None else _overfitting()).to_csv(
        os.path.join(root, "tables", "overfitting.csv"), index=False)
    (flow if flow is not None else _gradient_flow()).to_csv(os.path.join(root, "tables", "gradient_flow.csv"),
                                                             index=False)
    return str(root)


@pytest.fixture
def committed(tmp_path):
    return _write(tmp_path / "results")


def _reproduced(tmp_path, committed, **tables):
    """A copy of ``committed`` with some tables replaced."""
    target = tmp_path / "reproduction"
    shutil.copytree(committed, target)
    return _write(target, **{k: v for k, v in tables.items()}) if tables else str(target)


def _kinds(report):
    return [(d["kind"], d["item"]) for d in report["differences"]]


def test_identical_directories_agree_and_the_report_says_so_first(tmp_path, committed):
    reproduced = _reproduced(tmp_path, committed)
    out = tmp_path / "reports" / "agreement.md"
    report = agreement.compare(committed, reproduced, out_md=str(out))
    assert report["agrees"] and report["differences"] == []
    assert report["checked"]["claims"] == 4 and report["checked"]["gradient_flow"] == 12
    assert report["checked"]["summary"] > 0 and report["checked"]["overfitting"] == 12  # 6 cells x 2 metrics
    assert out.read_text().splitlines()[0] == "agrees"
    twin = json.loads((tmp_path / "reports" / "agreement.json").read_text())
    assert twin["agrees"] is True and twin["rules"] == agreement.RULES


def test_the_committed_results_agree_with_themselves():
    results = os.path.join(ROOT, "results")
    report = agreement.compare(results, results)
    assert report["agrees"], report["headline"]
    assert all(count > 0 for count in report["checked"].values())


def test_a_flipped_verdict_is_reported(tmp_path, committed):
    claims = _claims()
    claims["claims"][1]["verdict"] = "partly supported"
    report = agreement.compare(committed, _reproduced(tmp_path, committed, claims=claims), out_md=str(tmp_path / "a.md"))
    assert not report["agrees"]
    assert report["differences"] == [dict(kind="claim", table="claims.json", item="claim 2a",
                                          committed="supported", reproduced="partly supported")]
    first = (tmp_path / "a.md").read_text().splitlines()[0]
    assert first.startswith("differs:") and "claim 2a" in first


def test_a_missing_or_extra_claim_is_reported(tmp_path, committed):
    claims = _claims()
    claims["claims"] = claims["claims"][:-1] + [dict(claims["claims"][-1], id="9")]
    report = agreement.compare(committed, _reproduced(tmp_path, committed, claims=claims))
    assert sorted((d["item"], d["committed"], d["reproduced"]) for d in report["differences"]) == [
        ("claim 3", "not supported", "missing"), ("claim 9", "missing", "not supported")]


def test_a_metric_moved_outside_the_seed_spread_is_reported(tmp_path, committed):
    summary = _summary()
    summary.loc[0, "w1_excess_mean"] = 0.12 + 2.5 * 0.01  # beyond 2 x max(std 0.01, 0.01)
    report = agreement.compare(committed, _reproduced(tmp_path, committed, summary=summary))
    assert _kinds(report) == [("metric", "8gaussians/gp w1_excess")]
    diff = report["differences"][0]
    assert diff["committed"] == {"mean": 0.12, "std": 0.01, "n": 3}
    assert diff["reproduced"]["mean"] == pytest.approx(0.145)
    assert diff["tolerance"] == pytest.approx(0.02)


def test_a_metric_moved_inside_the_seed_spread_agrees(tmp_path, committed):
    summary = _summary()
    summary.loc[0, "w1_excess_mean"] = 0.12 + 1.9 * 0.01
    summary.loc[1, "modes_covered_mean"], summary.loc[1, "modes_covered_std"] = 7.67, 0.58  # 8 ± 0 committed
    summary["seconds_per_iteration_mean"] *= 10  # timing: another machine, not a difference
    report = agreement.compare(committed, _reproduced(tmp_path, committed, summary=summary))
    assert report["agrees"], report["headline"]


def test_a_wider_reproduced_spread_counts_and_zero_spread_needs_equality(tmp_path, committed):
    summary = _summary()
    summary.loc[2, "classes_covered_mean"] = 9.0  # 10 ± 0 committed, 9 ± 0 reproduced: differs
    summary.loc[2, "frechet_distance_mean"], summary.loc[2, "frechet_distance_std"] = 7.0, 1.0  # within 2 x 1.0
    report = agreement.compare(committed, _reproduced(tmp_path, committed, summary=summary))
    assert _kinds(report) == [("metric", "digits/gp classes_covered")]


def test_missing_values_rows_and_seed_counts_are_differences(tmp_path, committed):
    summary = _summary()
    summary.loc[0, "modes_covered_mean"] = float("nan")       # present committed, empty reproduced
    summary.loc[1, "seeds"] = 2
    summary = summary.drop(index=2)                             # digits/gp row missing
    report = agreement.compare(committed, _reproduced(tmp_path, committed, summary=summary))
    assert sorted(_kinds(report)) == [("metric", "8gaussians/gp modes_covered"), ("metric", "8gaussians/sn seeds"),
                                      ("row", "digits/gp")]


def test_a_missing_file_is_reported_not_skipped(tmp_path, committed):
    reproduced = _reproduced(tmp_path, committed)
    os.remove(os.path.join(reproduced, "tables", "overfitting.csv"))
    report = agreement.compare(committed, reproduced)
    assert report["differences"] == [dict(kind="file", table="tables/overfitting.csv", item="tables/overfitting.csv",
                                          committed="present", reproduced="missing")]
    assert report["checked"]["overfitting"] == 0 and report["checked"]["claims"] == 4
    assert "missing file tables/overfitting.csv" in report["headline"]


def test_overfitting_headline_is_the_last_iteration_over_seeds(tmp_path, committed):
    table = _overfitting()
    cell = (table["dataset"] == "digits") & (table["method"] == "gp")
    table.loc[cell & (table["iteration"] == 0), "std_gap"] += 10  # not the last iteration: not compared
    moved = table.copy()
    moved.loc[cell & (moved["iteration"] == 60), "std_gap"] += 1.0  # the seeds' std is about 0.05
    assert agreement.compare(committed, _reproduced(tmp_path, committed, overfitting=table))["agrees"]
    shutil.rmtree(tmp_path / "reproduction")
    report = agreement.compare(committed, _reproduced(tmp_path, committed, overfitting=moved))
    assert _kinds(report) == [("metric", "digits/256/gp std_gap")]


def test_gradient_flow_compares_in_decades_within_the_pooled_seed_spread(tmp_path, committed):
    flow = _gradient_flow()
    flow.loc[0, ["grad_norm_geomean", "grad_norm_min", "grad_norm_max"]] *= 1.4  # 0.15 decades: inside
    flow.loc[5, ["grad_norm_geomean", "grad_norm_min", "grad_norm_max"]] *= 10.0  # a decade: outside
    report = agreement.compare(committed, _reproduced(tmp_path, committed, flow=flow))
    assert _kinds(report) == [("metric", "clip0.01/200/dense_2 grad_norm")]
    # every row's two seeds span log10(2.25) decades: s = log10(2.25) / sqrt(2) per seed, the difference of two
    # 2-seed geometric means s * sqrt(2 / 2), 12 rows: z = the normal quantile at 1 - 0.05 / 24
    z = NormalDist().inv_cdf(1 - 0.05 / 24)
    assert report["differences"][0]["tolerance"] == f"{z * math.log10(2.25) / math.sqrt(2):.3g} decades"


def test_rules_at_their_boundaries():
    assert agreement.spread_agrees(1.0, 0.1, 1.2, 0.0)
    assert not agreement.spread_agrees(1.0, 0.1, 1.21, 0.0)
    assert agreement.spread_agrees(1.0, 0.0, 1.21, 0.11)  # the reproduced spread counts too
    assert agreement.spread_agrees(3.0, 0.0, 3.0 * (1 + 1e-12), 0.0)  # equal up to rounding
    assert not agreement.spread_agrees(3.0, 0.0, 3.0001, 0.0)
    # log rule: z * sd * sqrt(2 / seeds) decades; here 2 * 0.25 * 1 = 0.5 decades
    assert agreement.log_agrees(1.0, 10 ** 0.499, 0.25, 2, 2.0)
    assert not agreement.log_agrees(1.0, 10 ** 0.501, 0.25, 2, 2.0)
    assert agreement.log_agrees(1.0, 10 ** -0.499, 0.25, 2, 2.0)
    assert not agreement.log_agrees(0.0, 1e-9, 0.25, 2, 2.0)  # a zero norm agrees only when equal
    assert agreement.log_agrees(0.0, 0.0, 0.25, 2, 2.0)
    assert agreement.family_z(1) == pytest.approx(1.959964, abs=1e-6)  # one row: the usual 5% two-sided quantile
    assert agreement.family_z(195) == pytest.approx(NormalDist().inv_cdf(1 - 0.05 / 390))


@pytest.mark.parametrize("seeds", [2, 3, 5, 8])
def test_expected_range_squared_matches_a_simulation(seeds):
    draws = np.random.default_rng(seeds).standard_normal((400_000, seeds))
    simulated = float(np.mean(np.ptp(draws, axis=1) ** 2))  # standard error about 0.3%
    assert agreement.expected_range_squared(seeds) == pytest.approx(simulated, rel=0.015)
    assert agreement.expected_range_squared(1) == pytest.approx(0.0, abs=1e-12)  # one draw has no range


def test_pooled_log_sd_recovers_the_per_seed_spread_and_names_bad_input():
    rng = np.random.default_rng(4)
    for seeds, sd in ((2, 0.3), (4, 0.05)):
        logs = rng.normal(-2.0, sd, size=(5000, seeds))  # 5000 rows, each `seeds` draws in log10
        ranges = list(zip(10.0 ** logs.min(axis=1), 10.0 ** logs.max(axis=1)))
        assert agreement.pooled_log_sd(ranges, seeds) == pytest.approx(sd, rel=0.03)
    with pytest.raises(ValueError, match="needs >= 2 seeds per row, received 1"):
        agreement.pooled_log_sd([(1.0, 1.0)], 1)
    with pytest.raises(ValueError, match=r"0 < min <= max, received \(0.0, 1.0\)"):
        agreement.pooled_log_sd([(0.0, 1.0)], 2)


def _flow_draw(rng, configs, sd, seeds=2, shift=None):
    """A gradient-flow table of fresh draws: per row ``seeds`` log10-normal norms around the row's fixed centre."""
    rows = {}
    for config, centre in configs.items():
        for iteration in (0, 200, 400):
            for layer in range(13):
                logs = rng.normal(centre - 0.2 * layer + (shift or {}).get((config, iteration, layer), 0.0),
                                  sd[config], size=seeds)
                g = 10.0 ** logs
                rows[(config, iteration, f"dense_{layer}")] = (float(np.exp(np.mean(np.log(g)))), float(g.min()),
                                                               float(g.max()), seeds)
    return rows


def test_gradient_flow_fresh_draws_agree_as_often_as_the_family_rate_promises():
    """The rule's calibration: a reproduction that is a fresh draw of every run differs anywhere in the table with
    probability about 5% (the per-row range rule it replaced flagged about 22% of rows, so nearly every table)."""
    rng = np.random.default_rng(0)
    configs, sd = {"clip0.01": -3.0, "gp": 0.0, "sn": -1.0}, {"clip0.01": 0.27, "gp": 0.19, "sn": 0.18}
    trials, flagged = 400, 0
    for _ in range(trials):
        c, r = _flow_draw(rng, configs, sd), _flow_draw(rng, configs, sd)
        flagged += bool(agreement.gradient_flow_differences(c, r, list(c)))
    assert flagged / trials <= 0.08  # 5% promised (Bonferroni: at most); 0.08 leaves 3 binomial standard errors


def test_gradient_flow_a_real_shift_is_reported_row_by_row():
    rng = np.random.default_rng(1)
    configs, sd = {"clip0.01": -3.0, "sn": -1.0}, {"clip0.01": 0.05, "sn": 0.05}
    shift = {("clip0.01", 400, layer): 1.0 for layer in range(13)}  # clipping's late gradients 10x larger
    c, r = _flow_draw(rng, configs, sd), _flow_draw(rng, configs, sd, shift=shift)
    differing = {d["item"] for d in agreement.gradient_flow_differences(c, r, list(c))}
    assert differing == {f"clip0.01/400/dense_{layer} grad_norm" for layer in range(13)}


def test_gradient_flow_with_one_seed_needs_equality():
    c = {("gp", 0, "dense_0"): (1.0, 1.0, 1.0, 1), ("gp", 0, "dense_1"): (2.0, 2.0, 2.0, 1)}
    r = {("gp", 0, "dense_0"): (1.0, 1.0, 1.0, 1), ("gp", 0, "dense_1"): (2.01, 2.01, 2.01, 1)}
    differing = agreement.gradient_flow_differences(c, r, list(c))
    assert [d["item"] for d in differing] == ["gp/0/dense_1 grad_norm"] and differing[0]["tolerance"] is None


def test_cli_exit_status_and_the_list_on_stdout(tmp_path, committed, capsys):
    reproduced = _reproduced(tmp_path, committed)
    out = tmp_path / "agreement.md"
    assert cli.main(["agreement", "--committed", committed, "--reproduced", reproduced, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("agrees")
    assert out.read_text().startswith("agrees") and (tmp_path / "agreement.json").is_file()

    claims = _claims()
    claims["claims"][0]["verdict"] = "supported"
    _write(reproduced, claims=claims)
    assert cli.main(["agreement", "--committed", committed, "--reproduced", reproduced]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("differs")
    assert printed[1] == "claim: claims.json claim 1: committed partly supported, reproduced supported"


def test_cli_names_a_missing_directory(tmp_path, committed, capsys):
    missing = str(tmp_path / "nowhere")
    assert cli.main(["agreement", "--committed", committed, "--reproduced", missing]) == 2
    error = capsys.readouterr().err
    assert "`reproduced`=" in error and "nowhere" in error and "not a directory" in error


def test_the_module_needs_neither_keras_nor_tensorflow(tmp_path, committed):
    """Loaded as in test_lipschitz_bounds: the package's __init__ (which imports keras) is bypassed."""
    reproduced = _reproduced(tmp_path, committed)
    code = (
        "import sys, types\n"
        "sys.modules['tensorflow'] = None; sys.modules['keras'] = None; sys.modules['jax'] = None\n"
        f"pkg = types.ModuleType('keras_sngan'); pkg.__path__ = [{os.path.join(ROOT, 'keras_sngan')!r}]\n"
        "sys.modules['keras_sngan'] = pkg\n"
        "from keras_sngan.poster.judging import agreement\n"
        f"print(agreement.compare({committed!r}, {reproduced!r})['headline'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "agrees"


def test_a_table_without_its_key_columns_is_an_error_naming_the_file(tmp_path, committed):
    reproduced = _reproduced(tmp_path, committed, flow=_gradient_flow().drop(columns=["layer"]))
    with pytest.raises(ValueError, match=r"gradient_flow.csv.*\['layer'\]"):
        agreement.compare(committed, reproduced)


def test_another_number_of_seeds_is_a_difference(tmp_path, committed):
    table = _overfitting()
    table = table[~((table["dataset"] == "8gaussians") & (table["method"] == "sn") & (table["seed"] == 3))]
    report = agreement.compare(committed, _reproduced(tmp_path, committed, overfitting=table))
    assert _kinds(report) == [("metric", "8gaussians/512/sn std_gap"), ("metric", "8gaussians/512/sn gap")]
    assert report["differences"][0]["committed"]["n"] == 4 and report["differences"][0]["reproduced"]["n"] == 3
