"""The CI profile end to end on JAX, in a venv without TensorFlow, and its agreement with the TensorFlow run.

``.venv-jax`` holds the package with the ``jax`` and ``pipeline`` extras only
(``make test`` creates it: ``make .venv-jax/.installed``). The test runs
``config/test.yaml`` + ``config/test-backends.yaml`` (three seeds per
comparison cell, two per gradient-flow configuration: a spread to compare
within) with ``backend=tensorflow`` in this venv and with ``backend=jax``
there, each into a fresh directory, and then ``keras-sngan agreement``:
every claim's verdict equal, every headline number within the seeds' spread
(the rules of ``keras_sngan.poster.judging.agreement``).
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
JAX_BIN = os.path.join(ROOT, os.environ.get("JAX_VENV", ".venv-jax"), "bin")
PROFILE = ("--configfile", "config/test.yaml", "config/test-backends.yaml")

pytestmark = [
    pytest.mark.xdist_group("pipeline_on_jax"),
    pytest.mark.skipif(not os.path.exists(os.path.join(JAX_BIN, "snakemake")),
                       reason="no .venv-jax: `make .venv-jax/.installed` (make test creates it)"),
]


def _env(bin_dir):
    env = subprocess_env()
    env["PATH"] = os.pathsep.join([bin_dir, env["PATH"]])
    env.pop("PYTHONPATH", None)  # each venv's own installed package (the JAX venv's is this checkout, editable)
    return env


def _pipeline(bin_dir, backend, results):
    return subprocess.run(
        [os.path.join(bin_dir, "snakemake"), "--cores", "2", *PROFILE, "--config", f"results={results}",
         f"backend={backend}"],
        cwd=ROOT, env=_env(bin_dir), capture_output=True, text=True, timeout=1200,
    )


@pytest.mark.slow
def test_ci_profile_on_jax_without_tensorflow_agrees_with_tensorflow(tmp_path):
    probe = subprocess.run([os.path.join(JAX_BIN, "python"), "-c", "import importlib.util as u; "
                            "print(u.find_spec('tensorflow') is None, u.find_spec('jax') is not None)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["True", "True"], "the JAX venv must have JAX and no TensorFlow"
    runs = {}
    for backend, bin_dir in (("tensorflow", BIN), ("jax", JAX_BIN)):
        runs[backend] = tmp_path / backend
        done = _pipeline(bin_dir, backend, runs[backend])
        assert done.returncode == 0, f"{backend}: " + (done.stdout + done.stderr)[-4000:]
    for run_json in (runs["jax"] / "runs" / "compare").glob("*/*/seed*/run.json"):
        assert json.loads(run_json.read_text())["backend"] == "jax", run_json
    report = tmp_path / "agreement.md"
    agreement = subprocess.run(
        [os.path.join(JAX_BIN, "keras-sngan"), "agreement", "--committed", str(runs["tensorflow"]),
         "--reproduced", str(runs["jax"]), "--out", str(report)],
        env=_env(JAX_BIN), capture_output=True, text=True, timeout=300,
    )
    assert agreement.returncode == 0, agreement.stdout[-4000:]
    result = json.loads(report.with_suffix(".json").read_text())
    assert result["agrees"] and result["checked"]["claims"] >= 6, result["headline"]
