"""The SLURM profile end to end on a real single-node SLURM cluster.

`scripts/slurm-local-cluster.sh up` installs Debian's SLURM packages (once) and
starts munged / slurmctld / slurmd; `snakemake --profile workflow/profiles/slurm`
then runs a slice of the CI pipeline (config/test.yaml) as SLURM jobs, and every
CSV and JSON it writes must equal the one of a local run (the oracle). The slice
(`SLURM_TARGETS`) holds a job of every resource class of the profile (training
with several seeds, the gradient-flow runs, evaluation, a table); a SLURM job
pays sbatch, status polling and a job-step `snakemake` on top of the job itself,
so the whole CI pipeline through SLURM took 5 minutes of the test suite without
testing anything the slice does not. The cluster is torn down afterwards unless
it was already running before the test.
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
from conftest import subprocess_env

# One pytest-xdist worker (`make test`: -n 2 --dist loadgroup) for this module and its partner
# (test_pipeline.py / test_slurm.py): they share conftest.ci_pipeline_results.
pytestmark = pytest.mark.xdist_group("ci_pipeline")

ROOT = Path(__file__).resolve().parent.parent
BIN = os.path.dirname(sys.executable)
SCRIPT = ROOT / "scripts" / "slurm-local-cluster.sh"

# Wall-clock measurements differ between any two runs and are left out of the
# comparison (they were the only difference found between a local and a SLURM run):
# run.json and eval/metrics.json: seconds_per_iteration, wall_seconds_this_process;
# tables/summary.csv: seconds_per_iteration_mean, seconds_per_iteration_std;
# overfitting/<cell>/<method>.csv: seconds (wall time of the seed so far).
# Every other field of every CSV / JSON must be equal, exactly.
WALL_CLOCK_FIELDS = {
    "seconds_per_iteration", "wall_seconds_this_process", "seconds_per_iteration_mean", "seconds_per_iteration_std",
    "seconds",
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


needs_cluster = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
HEAVY_RULES = {"train_compare", "train_gradient_flow", "classifier", "evaluate"}
# The DAG slice run through SLURM (paths under the results directory): the 8gaussians comparison cell
# evaluated (three training jobs, one evaluation) and the gradient-flow table (two training jobs, a table).
SLURM_TARGETS = ("runs/compare/8gaussians/sn/seed0/eval/metrics.json", "tables/gradient_flow.csv")
SITE_VARIABLES = ("SNGAN_SLURM_ACCOUNT", "SNGAN_SLURM_PARTITION", "SNGAN_SLURM_GPU", "SNGAN_SLURM_GPU_GRES",
                  "SNGAN_SLURM_GPU_PARTITION", "SNGAN_SLURM_RUNTIME", "SNGAN_SLURM_MEM_MB", "SNGAN_SLURM_JOBS")


def _profile_resources(tmp_path, **site):
    """{rule: resources of its jobs} in a dry run of the SLURM profile with the given site variables."""
    # subprocess_env(): scontrol is a stub; a dry run asks SLURM nothing (the plugin only probes it at start-up)
    env = {k: v for k, v in subprocess_env().items() if k not in SITE_VARIABLES}
    env.update(site)
    result = subprocess.run(
        [os.path.join(BIN, "snakemake"), "-n", "--profile", "workflow/profiles/slurm", "--configfile",
         "config/test.yaml", "--config", f"results={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = {}
    for rule, line in re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", result.stdout, re.M):
        found.setdefault(rule, set()).add(line)
    assert len(found) > 10
    resources = {}
    for rule, lines in found.items():
        assert len(lines) == 1, (rule, lines)  # every job of a rule asks for the same
        resources[rule] = dict(item.split("=", 1) for item in lines.pop().split(", "))
    return resources


def test_slurm_profile_defaults_need_no_site_settings(tmp_path):
    """No variable set: no account, no partition, no GPU request; heavier limits for training."""
    resources = _profile_resources(tmp_path)
    for rule, res in resources.items():
        assert not {"slurm_account", "slurm_partition", "gres", "gpu", "slurm_extra"} & set(res), (rule, res)
        assert (res["runtime"], res["mem_mb"]) == (("240", "4000") if rule in HEAVY_RULES else ("60", "2000"))


def test_slurm_profile_site_variables_and_gpu_switch(tmp_path):
    resources = _profile_resources(
        tmp_path, SNGAN_SLURM_ACCOUNT="proj7", SNGAN_SLURM_PARTITION="all", SNGAN_SLURM_GPU="yes",
        SNGAN_SLURM_GPU_PARTITION="gpu", SNGAN_SLURM_GPU_GRES="gpu:a100:1", SNGAN_SLURM_RUNTIME="30",
    )
    for rule, res in resources.items():
        assert res["slurm_account"] == "proj7"
        if rule in HEAVY_RULES:
            assert (res["slurm_partition"], res["gres"], res["runtime"]) == ("gpu", "gpu:a100:1", "30"), rule
        else:  # "all" stays a partition name, not Python's builtin
            assert (res["slurm_partition"], res["runtime"]) == ("all", "60") and "gres" not in res, rule


def _env():
    return subprocess_env(slurm=True)


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
    """Every CSV / JSON of the SLURM run equals the local run's (which wrote all of the CI pipeline's)."""
    names = _data_files(slurm)
    assert names, "the SLURM run wrote no CSV / JSON"
    assert set(names) <= set(_data_files(local)), sorted(set(names) - set(_data_files(local)))
    for name in names:
        if name.endswith(".json"):
            a = _drop_wall_clock(json.loads((local / name).read_text()))
            b = _drop_wall_clock(json.loads((slurm / name).read_text()))
            assert a == b, name
        else:
            a, b = pd.read_csv(local / name), pd.read_csv(slurm / name)
            keep = [c for c in a.columns if c not in WALL_CLOCK_FIELDS]
            pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True, obj=name)


@pytest.mark.slow
@needs_cluster
def test_slurm_profile_runs_the_pipeline_like_a_local_run(slurm_cluster, ci_pipeline_results, tmp_path):
    local, slurm, logs = ci_pipeline_results, tmp_path / "slurm", tmp_path / "slurm_logs"
    common = ("--configfile", "config/test.yaml")
    # The local run is conftest's (`snakemake --cores 2 --configfile config/test.yaml`), shared with test_pipeline.
    slurm_run = _snakemake(
        *(str(slurm / target) for target in SLURM_TARGETS),
        "--profile", "workflow/profiles/slurm", *common, "--config", f"results={slurm}",
        "--slurm-logdir", str(logs), "--slurm-keep-successful-logs",
        # poll job states every 3 s instead of the profile's 10 s (a quicker test; MinJobAge is 300 s)
        "--slurm-init-seconds-before-status-checks", "3",
    )
    slurm_code, slurm_out = _finish(slurm_run)
    assert slurm_code == 0, slurm_out[-5000:]

    # Every job of the slice went through sbatch, ran in SLURM and finished there.
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_out)
    n_jobs = int(re.search(r"^total\s+(\d+)$", slurm_out, re.M).group(1))
    assert len(submitted) == n_jobs, slurm_out[-5000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", slurm_out[:slurm_out.index("total")], re.M))
    assert {rule: int(n) for rule, n in jobs.items() if rule != "job"} == {
        "train_compare": 3, "evaluate": 1, "train_gradient_flow": 2, "gradient_flow_table": 1}, slurm_out[-5000:]
    job_logs = list(logs.rglob("*.log"))
    assert len(job_logs) == len(submitted)
    assert all("1 of 1 steps (100%) done" in p.read_text() for p in job_logs)

    _compare(local, slurm)
