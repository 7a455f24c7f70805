"""``benchmarks/gpu_check.py --tiny`` (the GPU check's own code, small models, on CPU) runs and reports."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "gpu.json"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--tiny", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["device"]["platform"] == "cpu"
    assert set(report["methods"]) == {"sn", "gp", "none"}
    for row in report["methods"].values():
        assert row["jit_compile"] is True and row["steps_timed"] == 2
        assert 0 < row["ms_per_iteration"] < 1000 * row["first_step_s"]
    assert report["sn_over_none"] == pytest.approx(
        report["methods"]["sn"]["ms_per_iteration"] / report["methods"]["none"]["ms_per_iteration"])
    assert report["sn_100k_minutes_extrapolated"] == pytest.approx(
        report["methods"]["sn"]["ms_per_iteration"] * 100_000 / 60_000)
    assert all(v is None for v in report["targets"].values())  # no verdict from a tiny CPU run


def test_gpu_check_refuses_a_warmup_as_long_as_the_run(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--tiny", "--iterations", "2",
                          "--warmup", "2", "--out", str(tmp_path / "x.json")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0 and "--warmup must be in [0, --iterations)" in run.stderr
    assert not (tmp_path / "x.json").exists()
