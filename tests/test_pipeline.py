"""The Snakemake pipeline: dry run, lint, config validation, and the CI profile end to end."""

import contextlib
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


def test_cross_field_check_names_the_fields(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"compare": {"epochs": 7}}))
    result = _snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "compare.epochs" in result.stdout + result.stderr


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
    assert not (results / "checkpoints").exists() or not any((results / "checkpoints").rglob("*.weights.h5"))

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

def _pipeline_run_files(results):
    run_dir = results / "runs" / "compare" / "8gaussians" / "sn" / "seed0"
    return run_dir, sorted(p.name for p in run_dir.glob("*") if p.suffix in (".csv", ".json"))


def _wait_for_pause(marker, process):
    import time

    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, (process.communicate()[0] or "")[-3000:]
        assert time.monotonic() < deadline, "the training job never reached its pause point"
        time.sleep(0.05)
    return int(marker.read_text().split()[1])


def _run_command(results):
    target = results / "runs" / "compare" / "8gaussians" / "sn" / "seed0" / "run.json"
    return [os.path.join(BIN, "snakemake"), str(target), "--cores", "2", "--configfile", "config/test.yaml",
            "--config", f"results={results}"]


def _private_workdir(path):
    """A working directory of its own (its own .snakemake, so its own Snakemake locks) for this repository."""
    path.mkdir()
    for name in ("Snakefile", "config", "workflow", "keras_sngan"):
        (path / name).symlink_to(os.path.join(ROOT, name))
    return str(path)


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """The single training job's outputs from an uninterrupted pipeline run."""
    reference = tmp_path_factory.mktemp("reference")
    done = subprocess.run(_run_command(reference), cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return reference


def _assert_same_run(reference, results, resumed_from_epoch):
    """Every CSV/JSON output of the training job equal, byte for byte (run.json: but its wall-clock fields)."""
    ref_dir, ref_files = _pipeline_run_files(reference)
    run_dir, files = _pipeline_run_files(results)
    assert files == ref_files == ["gap.csv", "history.csv", "layers.csv", "run.json"]
    for name in files:
        if name == "run.json":
            a, b = (json.loads((d / name).read_text()) for d in (ref_dir, run_dir))
            assert b.pop("resumed_from_epoch") == resumed_from_epoch and a.pop("resumed_from_epoch") == 0
            for key in ("seconds_per_iteration", "wall_seconds_this_process"):
                a.pop(key), b.pop(key)
            assert a == b
        else:
            assert (run_dir / name).read_bytes() == (ref_dir / name).read_bytes(), name


@pytest.mark.slow
def test_killed_pipeline_rerun_equals_uninterrupted_run(tmp_path, uninterrupted_run):
    """Ctrl-C snakemake mid-training, then SIGKILL its training job; the same command finishes exactly.

    Compared: every CSV/JSON output of the training job, byte for byte,
    except the wall-clock fields of run.json (seconds_per_iteration,
    wall_seconds_this_process) and resumed_from_epoch.
    """
    import signal

    results = tmp_path / "killed"
    marker = results / "checkpoints" / "compare" / "8gaussians" / "sn" / "seed0" / "paused"
    # config/test.yaml: 20 iterations in 2 epochs. 1) Ctrl-C (SIGINT to the
    # process group, as a terminal sends it) after iteration 5: no checkpoint yet.
    # 2) SIGKILL of the training job after iteration 15 (mid-epoch 2).
    for pause, kill in (("step:5", "sigint-group"), ("step:15", "sigkill-job")):
        if marker.exists():
            marker.unlink()
        process = subprocess.Popen(_run_command(results), cwd=ROOT, env=subprocess_env(pause), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        job = _wait_for_pause(marker, process)
        if kill == "sigint-group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(job, signal.SIGKILL)
        output = process.communicate(timeout=300)[0]
        assert process.returncode != 0, output[-3000:]
        assert not (results / "runs" / "compare" / "8gaussians" / "sn" / "seed0" / "run.json").exists()
    rerun = subprocess.run(_run_command(results), cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    _assert_same_run(uninterrupted_run, results, resumed_from_epoch=1)


@pytest.mark.slow
def test_sigkilled_snakemake_rerun_needs_no_unlock_and_waits_for_its_orphan(tmp_path, uninterrupted_run):
    """`kill -9` of snakemake alone: its training job lives on; the same command, typed again, finishes exactly.

    The rerun must start without `snakemake --unlock` (the killed run's lock
    files are still there), and its training job must wait for the orphan
    instead of training into the same checkpoint directory beside it.
    """
    import signal
    import threading

    workdir = _private_workdir(tmp_path / "workdir")
    results = tmp_path / "killed"
    marker = results / "checkpoints" / "compare" / "8gaussians" / "sn" / "seed0" / "paused"
    log = open(tmp_path / "first.log", "w")  # not a pipe: the orphan keeps writing to it
    first = subprocess.Popen(_run_command(results), cwd=workdir, env=subprocess_env("step:15"), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    rerun = None
    try:
        _wait_for_pause(marker, first)
        first.kill()  # SIGKILL to snakemake only: the job (shell, tee, keras-sngan train) lives on
        first.wait(timeout=60)
        stale = sorted(p.name for p in (tmp_path / "workdir" / ".snakemake" / "locks").glob("*.lock"))
        assert "0.output.lock" in stale  # what a rerun would trip over without the clean-up
        assert marker.exists()  # the orphan is alive, paused after iteration 15

        rerun = subprocess.Popen(_run_command(results), cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines, waiting = [], threading.Event()

        def read():
            for line in rerun.stdout:
                lines.append(line)
                if "waiting for it to finish" in line:
                    waiting.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert waiting.wait(300), "".join(lines)[-3000:]
        assert "removed the stale Snakemake lock" in "".join(lines)
        marker.unlink()  # the orphan goes on from iteration 15 to the end, then the rerun's job runs
        assert rerun.wait(timeout=600) == 0, "".join(lines)[-3000:]
        reader.join(timeout=60)
    finally:
        for process in (first, rerun):  # the orphan is in `first`'s process group
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        log.close()
    # The orphan kept its final checkpoint for the waiting job, which only rewrote the outputs.
    _assert_same_run(uninterrupted_run, results, resumed_from_epoch=2)
