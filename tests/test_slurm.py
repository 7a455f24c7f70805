"""The SLURM profile end to end on a real single-node SLURM cluster.

`scripts/slurm-local-cluster.sh up` installs Debian's SLURM packages (once) and
starts munged / slurmctld / slurmd; `snakemake --profile workflow/profiles/slurm`
then runs the whole CI pipeline (config/test.yaml) as SLURM jobs, and every CSV
and JSON it writes must equal the one of a local run (the oracle). The cluster
is torn down afterwards unless it was already running before the test.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = os.path.dirname(sys.executable)
SCRIPT = ROOT / "scripts" / "slurm-local-cluster.sh"

# Wall-clock measurements differ between any two runs and are left out of the
# comparison (they were the only difference found between a local and a SLURM run):
# run.json and eval/metrics.json: seconds_per_iteration, wall_seconds_this_process;
# tables/summary.csv: seconds_per_iteration_mean, seconds_per_iteration_std.
# Every other field of every CSV / JSON must be equal, exactly.
WALL_CLOCK_FIELDS = {
    "seconds_per_iteration", "wall_seconds_this_process", "seconds_per_iteration_mean", "seconds_per_iteration_std",
}


def _skip_reason():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: the cluster script installs Debian packages and starts munged/slurmctld/slurmd (CI runs as root)"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs a Debian machine (apt-get) or SLURM already installed"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "needs snakemake-executor-plugin-slurm (pip install -e '.[test]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


def _env():
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def _cluster(command, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), command], env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def slurm_cluster():
    already_up = _cluster("status").returncode == 0
    up = _cluster("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield
    finally:
        if not already_up:
            down = _cluster("down")
            assert down.returncode == 0, down.stdout + down.stderr
            assert _cluster("status").returncode != 0, "slurmctld still answers after `down`"


def _snakemake(*args):
    return subprocess.Popen(
        [os.path.join(BIN, "snakemake"), *args], cwd=ROOT, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(proc, timeout=1800):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _data_files(root):
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.suffix in (".csv", ".json") and "checkpoints" not in p.relative_to(root).parts
    )


def _drop_wall_clock(value):
    if isinstance(value, dict):
        return {k: _drop_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK_FIELDS}
    if isinstance(value, list):
        return [_drop_wall_clock(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _compare(local, slurm):
    names = _data_files(local)
    assert names, "the local run wrote no CSV / JSON"
    assert _data_files(slurm) == names
    for name in names:
        if name.endswith(".json"):
            a = _drop_wall_clock(json.loads((local / name).read_text()))
            b = _drop_wall_clock(json.loads((slurm / name).read_text()))
            assert a == b, name
        else:
            a, b = pd.read_csv(local / name), pd.read_csv(slurm / name)
            keep = [c for c in a.columns if c not in WALL_CLOCK_FIELDS]
            pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True, obj=name)


def test_slurm_profile_runs_the_pipeline_like_a_local_run(slurm_cluster, tmp_path):
    local, slurm, logs = tmp_path / "local", tmp_path / "slurm", tmp_path / "slurm_logs"
    common = ("--configfile", "config/test.yaml")
    # Both at once: the SLURM run mostly waits on status polls, the local run on the CPU.
    local_run = _snakemake("--cores", "2", *common, "--config", f"results={local}")
    slurm_run = _snakemake(
        "--profile", "workflow/profiles/slurm", *common, "--config", f"results={slurm}",
        "--slurm-logdir", str(logs), "--slurm-keep-successful-logs",
        # poll job states every 3 s instead of the profile's 10 s (a quicker test; MinJobAge is 300 s)
        "--slurm-init-seconds-before-status-checks", "3",
    )
    slurm_code, slurm_out = _finish(slurm_run)
    local_code, local_out = _finish(local_run)
    assert local_code == 0, local_out[-3000:]
    assert slurm_code == 0, slurm_out[-5000:]

    # Every job but the local `all` went through sbatch, ran in SLURM and finished there.
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_out)
    n_jobs = int(re.search(r"^total\s+(\d+)$", slurm_out, re.M).group(1))
    assert len(submitted) == n_jobs - 1, slurm_out[-5000:]
    job_logs = list(logs.rglob("*.log"))
    assert len(job_logs) == len(submitted)
    assert all("1 of 1 steps (100%) done" in p.read_text() for p in job_logs)

    _compare(local, slurm)
