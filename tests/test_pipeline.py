"""The Snakemake pipeline: dry run, lint, config validation, and the CI profile end to end."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import subprocess_env

# One pytest-xdist worker (`make test`: -n 2 --dist loadgroup) for this module and its partner
# (test_pipeline.py / test_slurm.py): they share conftest.ci_pipeline_results.
pytestmark = pytest.mark.xdist_group("ci_pipeline")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _snakemake(*args, cwd=ROOT, timeout=600):
    return subprocess.run(
        [os.path.join(BIN, "snakemake"), *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
        timeout=timeout,
    )


def test_dry_run_default_config():
    result = _snakemake("-n", "--forceall")
    assert result.returncode == 0, result.stderr
    for rule in ("train_compare", "train_gradient_flow", "evaluate", "claims", "variance", "lipschitz"):
        assert rule in result.stdout + result.stderr


def test_reproduction_directory_takes_every_job_and_leaves_results_alone():
    """`make reproduce` runs `snakemake --config results=reproduction`: every job, no path under results/."""
    result = _snakemake("-n", "--config", "results=reproduction")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "reproduction/claims.json" in output and "reproduction/tables/summary.csv" in output
    assert "results/" not in output
    for rule in ("train_compare", "train_gradient_flow", "variance", "lipschitz", "overfit"):
        assert rule in output


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "override, field",
    [
        ({"threads": 0}, "threads"),
        ({"methods": {"clip": {"optimizer": "sgd", "learning_rate": 5e-5}}}, "sgd"),
        ({"compare": {"datasets": ["8gaussians", "moons"]}}, "moons"),
        ({"variance": {"bsn_scale": -1}}, "bsn_scale"),
    ],
)
def test_schema_violation_stops_before_any_job(tmp_path, override, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    result = _snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert field in output
    assert "rule train_compare" not in output


@pytest.mark.parametrize(
    "override, fields",
    [
        ({"compare": {"epochs": 7}}, ["compare.epochs"]),
        # a robustness variant longer than the profile's runs (600) cannot be judged against them
        ({"robustness": {"variants": {"w": {"width": 8, "iterations": 1200}}}},
         ["robustness.variants.w.iterations", "compare.toy.iterations"]),
        # a variant around one that does not exist, and a reference that is not a variant
        ({"robustness": {"variants": {"w": {"around": "nope", "methods": ["gp"]}}}}, ["robustness.variants.w.around", "nope"]),
        ({"robustness": {"reference": "nope", "variants": {"w": {"width": 8}}}}, ["robustness.reference", "nope"]),
        # a variant stopping before the window's end, at no budget: no claim could be judged on it
        ({"robustness": {"variants": {"w": {"width": 8, "iterations": 100}}}},
         ["robustness.variants.w.iterations", "robustness.budgets", "claims.window"]),
    ],
)
def test_cross_field_check_names_the_fields(tmp_path, override, fields):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    result = _snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    for field in fields:
        assert field in result.stdout + result.stderr
    assert "rule train_compare" not in result.stdout + result.stderr


def _report_text(path):
    """The report's HTML with every embedded data: URI decoded (snakemake embeds result files base64)."""
    import base64
    import re

    html = path.read_text(errors="replace")
    decoded = [html]
    for payload in re.findall(r"data:[^,\"']*?;base64,([A-Za-z0-9+/=]+)", html):
        try:
            decoded.append(base64.b64decode(payload).decode("utf-8", errors="replace"))
        except ValueError:
            continue
    return "\n".join(decoded)


@pytest.mark.slow
def test_ci_profile_end_to_end(tmp_path, ci_pipeline_results):
    """config/test.yaml into a temporary results dir; every output exists and parses; rerun is a no-op."""
    results = ci_pipeline_results  # conftest: `snakemake --cores 2 --configfile config/test.yaml`
    args = ("--cores", "2", "--configfile", "config/test.yaml", "--config", f"results={results}")

    with open(os.path.join(ROOT, "config", "test.yaml")) as handle:
        cfg = yaml.safe_load(handle)
    for name in ("variance_check", "propagation", "stability", "sn_bound"):
        assert not pd.read_csv(results / "variance" / f"{name}.csv").empty
    json.loads((results / "variance" / "variance_summary.json").read_text())
    assert not pd.read_csv(results / "lipschitz" / "mlp_bounds.csv").empty
    json.loads((results / "lipschitz" / "lipschitz_summary.json").read_text())
    for dataset in cfg["compare"]["datasets"]:
        for method in cfg["compare"]["methods"]:
            run_dir = results / "runs" / "compare" / dataset / method / "seed0"
            history = pd.read_csv(run_dir / "history.csv")
            assert list(history["iteration"]) == list(range(cfg["compare"]["toy" if dataset != "digits" else "images"]["iterations"] + 1))
            assert not pd.read_csv(run_dir / "layers.csv").empty
            metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
            assert metrics["method"] == method
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert len(summary) == len(cfg["compare"]["datasets"]) * len(cfg["compare"]["methods"])
    assert not pd.read_csv(results / "tables" / "gradient_flow.csv").empty
    curves = pd.read_csv(results / "tables" / "training_curves.csv")
    assert {"critic_loss_mean", "grad_norm_min", "gap_max"} <= set(curves.columns)
    overfit = pd.read_csv(results / "tables" / "overfitting.csv")
    assert set(overfit["method"]) == {"clip", "gp", "sn", "gp0.1"}
    assert overfit["seed"].nunique() == len(cfg["overfitting"]["seeds"])
    assert "probe_grad_norm_mean" in curves.columns
    for figure in ("variance", "lipschitz", "training_behaviour", "layer_stats", "gradient_flow", "samples",
                   "image_samples", "overfitting"):
        assert (results / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    claims = json.loads((results / "claims.json").read_text())
    assert [c["id"] for c in claims["claims"]] == ["1", "2a", "2b", "3", "4", "5"]
    assert all(c["used"] for c in claims["claims"])  # each verdict carries the numbers its rule used
    allowed = {"supported", "partly supported", "not supported"}
    assert all(c["verdict"] in allowed for c in claims["claims"])
    assert "Verdict" in (results / "claims.md").read_text()
    # The default profile's reference in miniature (config/test.yaml `robustness`): the toy comparison again at
    # the reference width, stopping after the window at no budget, so it is a setting of claim 1 only.
    robust = json.loads((results / "robustness.json").read_text())
    reference = cfg["robustness"]["variants"]["width_32"]["iterations"]
    assert robust["reference"] == "width_32" and robust["partial"] == {"width_32": {"last": reference, "claims": ["1"]}}
    for cid in ("2a", "3"):  # whole-run claims: never judged on the comparison cut at the reference's length
        c = robust["claims"][cid]
        assert c["decided_at"] is None and [r["factor"] for r in c["settings"]] == ["bootstrap"]
    c1 = robust["claims"]["1"]
    assert [r["factor"] for r in c1["settings"]] == (["scaled_down", "bootstrap"] if c1["decided_at"]
                                                      else ["width_32", "bootstrap"])
    by_id = {c["id"]: c for c in claims["claims"]}
    assert by_id["1"]["verdict"] == c1["base"] and by_id["1"].get("decided_at") == c1["decided_at"]
    assert "reruns the comparison at width 32 (its reference)" in (results / "claims.md").read_text()
    assert not (results / "checkpoints").exists() or not any((results / "checkpoints").rglob("*.weights.h5"))

    # The workflow's jobs fork from a warm server (keras_sngan/poster/warm_start.py): every `keras-sngan` job
    # leaves one timing record, and only those started before the server was ready ran cold.
    from keras_sngan.poster.plumbing import timing

    # A job's start: its log's last write (the record is its last line) minus its wall seconds. How many
    # jobs start before the server is ready depends on the machine's load, so the check is the order.
    records = [(log.stat().st_mtime - r["wall_s"], r) for log in (results / "logs").rglob("*.log")
               for r in timing.parse(log.read_text(errors="replace"))]
    assert len(records) >= 25
    warm = [start for start, r in records if r["warm_start"]]
    assert len(warm) >= len(records) // 2, records
    late_cold = [(r["command"], round(start - min(warm), 1)) for start, r in records
                 if not r["warm_start"] and start > min(warm) + 1.0]
    assert not late_cold, late_cold  # (command, seconds after the first warm job started)

    # The agreement check of `make reproduce`, on this run against itself (its seeds' spread is 0).
    from keras_sngan.poster.judging import agreement

    same = agreement.compare(results, results, out_md=str(tmp_path / "agreement.md"))
    assert same["agrees"], same["headline"]
    assert all(count > 0 for count in same["checked"].values())

    rerun = _snakemake(*args, "-n")
    assert rerun.returncode == 0
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # The snakemake report carries the claims table (verdicts with their numbers), not only the figures.
    report = tmp_path / "report.html"
    rendered = _snakemake(*args, "--report", str(report))
    assert rendered.returncode == 0, rendered.stdout[-3000:] + rendered.stderr[-3000:]
    text = _report_text(report)
    assert "Claims and verdicts" in text
    for claim in claims["claims"]:
        assert f"Verdict: {claim['verdict']}." in text
    assert "numbers and tolerances used" in text and "Constants: SMALL_REL=0.1" in text


def test_long_profile_dry_run_reuses_the_default_results_and_plans_the_robustness_runs(tmp_path):
    result = _snakemake("-n", "--forceall", "--configfile", "config/long.yaml", "--config", f"results={tmp_path / 'long'}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    for rule in ("train_compare", "train_variant_gp_weight_1", "train_variant_gp_weight_10", "train_variant_width_512",
                 "train_variant_width_512_gp_weight_1", "train_variant_width_512_gp_weight_10",
                 "convergence", "robustness", "claims", "figure_convergence"):
        assert f"rule {rule}:" in output, rule
    for rule in ("variance", "lipschitz", "overfit", "train_gradient_flow", "classifier"):
        assert f"rule {rule}:" not in output, rule  # read from `reuse: results`, not recomputed


def test_quality_records_with_an_image_set_stop_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"compare": {"quality_samples": 10}}))  # the default datasets include digits
    result = _snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "compare.quality_samples" in result.stdout + result.stderr and "digits" in result.stdout + result.stderr


def test_long_profile_end_to_end_on_the_ci_results(tmp_path, ci_pipeline_results):
    """config/test-long.yaml (the long profile's CI twin) reusing the CI pipeline's experiments."""
    results = tmp_path / "long"
    args = ("--cores", "2", "--configfile", "config/test.yaml", "config/test-long.yaml",
            "--config", f"results={results}", f"reuse={ci_pipeline_results}")
    run = _snakemake(*args, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not (results / "variance").exists() and not (results / "overfitting").exists()  # reused, not rerun
    quality = pd.read_csv(results / "runs" / "compare" / "8gaussians" / "gp" / "seed1" / "quality.csv")
    assert quality["iteration"].tolist() == [0, 10, 20] and (quality["num_modes"] == 8).all()
    convergence = pd.read_csv(results / "tables" / "convergence.csv")
    assert len(convergence) == 2 * 3 and convergence.groupby("dataset")["best"].sum().eq(1).all()
    robust = json.loads((results / "robustness.json").read_text())
    assert robust["reference"] == "width_32" and robust["around"] == {"width_32_gp_weight_1": "width_32"}
    for cid in ("1", "2a", "3"):
        c = robust["claims"][cid]
        factors, settings = [r["factor"] for r in c["settings"]], {r["factor"]: r["setting"] for r in c["settings"]}
        if c["decided_at"] is None:  # the reference agrees with the profile's runs on this claim
            # the variants in config order (test.yaml's width_32 comes before test-long.yaml's gp_weight_1)
            assert factors == ["width_32", "gp_weight_1", "budget", "bootstrap"], factors
            assert settings["gp_weight_1"] == "gp_weight 10 -> 1; iterations 20 -> 10 (gp; seeds [0, 1])"
        else:  # the reference flips it: decided there, one factor around the reference
            assert c["decided_at"] == "width_32" and c["profile_verdict"] != c["base"]
            assert factors == ["scaled_down", "width_32_gp_weight_1", "bootstrap"], factors
            assert settings["width_32_gp_weight_1"] == "gp_weight 10 -> 1 (gp; seeds [0, 1])"
            assert settings["scaled_down"].startswith("width 32 -> 16: the profile's own runs")
    claims = json.loads((results / "claims.json").read_text())
    default = {c["id"]: c["verdict"] for c in json.loads((ci_pipeline_results / "claims.json").read_text())["claims"]}
    for c in claims["claims"]:
        assert c["other_profile"] == default[c["id"]]
        if c["id"] in ("2b", "4", "5"):  # the reused experiments: the same verdicts by construction
            assert c["verdict"] == default[c["id"]]
        if c["id"] in ("1", "2a", "3"):
            r = robust["claims"][c["id"]]
            assert c["robustness"]["n"] == r["n"] and c["verdict"] == r["base"]
            assert c.get("decided_at") == r["decided_at"] and c.get("profile_verdict") == r.get("profile_verdict")
    assert "holds in (robustness)" in (results / "claims.md").read_text()
    assert (results / "figures" / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    rerun = _snakemake(*args, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
