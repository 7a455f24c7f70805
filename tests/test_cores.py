"""`snakemake --cores N` never runs more than N compute threads in all.

Two halves: (1) in the DAG, every job that computes (a `keras-sngan` command that
runs TensorFlow or large NumPy work) declares `threads` and passes exactly the
threads Snakemake grants it as `--threads`, and every other job gets one thread;
(2) the CLI's `--threads` really sizes the thread pools, read back from the
libraries themselves (TensorFlow's configuration, threadpoolctl's view of the
loaded BLAS / OpenMP pools) in a fresh process with no thread variables set.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
COMPUTE_COMMANDS = ("train", "evaluate", "classifier", "lipschitz", "variance", "overfit")
COMPUTE_RULES = {"variance", "lipschitz", "train_compare", "train_gradient_flow", "classifier", "evaluate", "overfit",
                 "train_variant_width_512",  # the default profile's reference runs (claim 1 at gan_toy.py's width)
                 "train_variant_glorot"}  # and their Keras-initialized twins (the robustness variant)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _clean_env():
    return {k: v for k, v in subprocess_env().items() if k not in THREAD_VARIABLES}


def _dry_run_jobs(cores, threads):
    """(rule, threads, shell command) of every job of a forced dry run of the default config."""
    result = subprocess.run(
        [os.path.join(BIN, "snakemake"), "-n", "-p", "--forceall", "--cores", str(cores), "--config", f"threads={threads}"],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout + "\n" + result.stderr):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        granted = re.search(r"^\s+threads: (\d+)$", block, re.M)
        command = re.search(r"^Shell command: (.*)$", block, re.M) or re.search(r"^\s{4}(keras-sngan .*)$", block, re.M)
        assert command, block
        jobs.append((head.group(1), int(granted.group(1)) if granted else 1, command.group(1)))
    return jobs


@pytest.mark.parametrize("cores, threads", [(4, 2), (1, 2)])
def test_every_compute_job_passes_the_threads_it_is_granted(cores, threads):
    jobs = _dry_run_jobs(cores, threads)
    expected = min(cores, threads)  # Snakemake scales a rule's threads down to --cores
    assert len(jobs) > 50
    seen = set()
    for rule, granted, command in jobs:
        program = re.match(r"keras-sngan (\S+)", command)
        assert program, command
        if program.group(1) in COMPUTE_COMMANDS:
            seen.add(rule)
            assert granted == expected, (rule, granted, command)
            assert re.findall(r"--threads (\d+)", command) == [str(expected)], (rule, command)
        else:
            assert granted == 1 and "--threads" not in command, (rule, granted, command)
    assert seen == COMPUTE_RULES


PROBE = r"""
import json, sys
from keras_sngan.poster import cli
code = cli.main(sys.argv[1:])
assert code == 0, code
import tensorflow as tf
from threadpoolctl import threadpool_info
print("POOLS " + json.dumps({
    "intra": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter": tf.config.threading.get_inter_op_parallelism_threads(),
    "blas": sorted({pool["num_threads"] for pool in threadpool_info()}),
}))
"""


def _pools(tmp_path, *args):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("POOLS ", 1)[1])


def test_cli_threads_sizes_tensorflow_and_blas_pools(tmp_path):
    train = ("train", "--out-dir", str(tmp_path / "run"), "--dataset", "8gaussians", "--method", "gp", "--seed", "0",
             "--iterations", "4", "--batch-size", "32", "--n-critic", "2", "--epochs", "2", "--stats-every", "2",
             "--width", "8", "--depth", "2", "--gap-samples", "64", "--verbose", "0", "--threads", "1")
    assert _pools(tmp_path, *train) == {"intra": 1, "inter": 1, "blas": [1]}


def test_cli_overfit_threads_sizes_tensorflow_pools(tmp_path):
    overfit = ("overfit", "--out", str(tmp_path / "gp.csv"), "--dataset", "8gaussians", "--train-size", "64",
               "--method", "gp", "--seeds", "0", "--iterations", "2", "--records", "1", "--batch-size", "16",
               "--n-critic", "2", "--width", "8", "--depth", "1", "--threads", "1")
    assert _pools(tmp_path, *overfit) == {"intra": 1, "inter": 1, "blas": [1]}


def test_cli_variance_threads_sizes_blas_pools(tmp_path):
    variance = ("variance", "--out-dir", str(tmp_path / "v"), "--widths", "8", "--s2", "1.0", "--samples", "100",
                "--depths", "2", "--bsn-scale", "2.83", "--width", "8", "--batch", "8", "--c-values", "1",
                "--threads", "1")
    assert _pools(tmp_path, *variance)["blas"] == [1]


def test_cli_rejects_bad_threads_before_work(tmp_path):
    result = subprocess.run(
        [os.path.join(BIN, "keras-sngan"), "variance", "--out-dir", str(tmp_path / "v"), "--widths", "8", "--s2", "1",
         "--depths", "2", "--bsn-scale", "2.83", "--threads", "0"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "`threads` must be an integer >= 1, received 0" in result.stderr
    assert not (tmp_path / "v").exists()
