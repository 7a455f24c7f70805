"""Warm start (`keras_sngan.poster.warm_start`): a command forked from a warm server behaves as a cold process.

The oracle of a warm command is the same command run cold in a fresh
process: the same files byte for byte (but wall-clock fields), the same exit
status and messages. Killing the client (SIGKILL, SIGTERM) ends the work as
killing a cold process does; bad settings fail before anything runs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import subprocess_env
from keras_sngan.poster import warm_start
from keras_sngan.poster.plumbing import timing

BIN = os.path.dirname(sys.executable)
WALL_CLOCK = ("seconds_per_iteration", "wall_seconds_this_process", "resumed_from_epoch")


@pytest.fixture
def warm_env(tmp_path):
    """An environment whose commands go to a server of this test's own (killed at the end)."""
    env = subprocess_env()
    env.update({warm_start.ENABLE: "1", warm_start.IDLE: "300", "KERAS_SNGAN_TEST_SERVER": str(tmp_path)})
    path = warm_start.ensure_server(env, timeout=180)
    server = _server_process(path)
    yield env
    server.kill()
    server.wait(10)


def _server_process(path):
    for process in psutil.process_iter(["cmdline"]):
        if path in (process.info["cmdline"] or []):
            return process
    raise AssertionError(f"no server process for {path}")


def _train_command(out, *extra):
    return [os.path.join(BIN, "keras-sngan"), "train", "--out-dir", f"{out}/seed{{seed}}",
            "--checkpoint-dir", f"{out}-ckpt/seed{{seed}}", "--seed", "4", "7", "--dataset", "8gaussians",
            "--method", "sn", "--iterations", "12", "--epochs", "3", "--batch-size", "16", "--n-critic", "2",
            "--width", "8", "--depth", "2", "--train-size", "256", "--gap-samples", "64", "--stats-every", "2",
            "--threads", "1", "--verbose", "0", *extra]


def _record(stderr):
    records = timing.parse(stderr)
    assert len(records) == 1, stderr[-2000:]
    return records[0]


def test_a_warm_run_equals_a_cold_one_file_for_file(tmp_path, warm_env):
    cold_env = dict(warm_env, **{warm_start.ENABLE: "0"})
    cold = subprocess.run(_train_command(tmp_path / "cold"), env=cold_env, capture_output=True, text=True, timeout=300)
    warm = subprocess.run(_train_command(tmp_path / "warm"), env=warm_env, capture_output=True, text=True, timeout=300)
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr[-2000:] + warm.stderr[-2000:]
    assert _record(cold.stderr)["warm_start"] is False and _record(warm.stderr)["warm_start"] is True
    # the warm child imported nothing: its record's import phase is the client's start-up alone
    assert _record(warm.stderr)["phases"]["import"] < 0.5 * _record(cold.stderr)["phases"]["import"]
    # stdout: the printed run summary of the last seed, the same but its wall-clock fields
    summaries = [json.loads(run.stdout[run.stdout.index("["):]) for run in (cold, warm)]
    assert [[{k: v for k, v in seed.items() if k not in WALL_CLOCK} for seed in s] for s in summaries][0] == \
        [[{k: v for k, v in seed.items() if k not in WALL_CLOCK} for seed in s] for s in summaries][1]
    import keras
    import numpy as np

    import keras_sngan  # noqa: F401

    for seed in ("seed4", "seed7"):
        a, b = tmp_path / "cold" / seed, tmp_path / "warm" / seed
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for name in ("history.csv", "layers.csv", "gap.csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), (seed, name)
        info = [{k: v for k, v in json.loads((d / "run.json").read_text()).items() if k not in WALL_CLOCK} for d in (a, b)]
        assert info[0] == info[1]
        for model in ("critic.keras", "generator.keras"):
            wa = keras.saving.load_model(a / model, compile=False).get_weights()
            wb = keras.saving.load_model(b / model, compile=False).get_weights()
            assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb)), (seed, model)


def test_exit_status_and_messages_are_the_cold_ones(tmp_path, warm_env):
    bad = [os.path.join(BIN, "keras-sngan"), "train", "--out-dir", str(tmp_path / "x"), "--seed", "0",
           "--dataset", "digits", "--method", "sn", "--iterations", "2", "--epochs", "1", "--batch-size", "8",
           "--quality-samples", "10"]
    usage = [os.path.join(BIN, "keras-sngan"), "train", "--method", "nonsense"]
    for command in (bad, usage):
        cold = subprocess.run(command, env=dict(warm_env, **{warm_start.ENABLE: "0"}), capture_output=True, text=True,
                              timeout=300)
        warm = subprocess.run(command, env=warm_env, capture_output=True, text=True, timeout=300)
        assert warm.returncode == cold.returncode != 0
        lines = [[line for line in run.stderr.splitlines() if "keras-sngan" in line and "timing" not in line]
                 for run in (cold, warm)]
        assert lines[0] == lines[1] and lines[0], (cold.stderr[-1500:], warm.stderr[-1500:])


def _start_and_find_child(command, env, server):
    client = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not server.children():
        assert client.poll() is None, client.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the server forked no child"
        time.sleep(0.02)
    return client, server.children()[0]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_client_ends_the_work(tmp_path, warm_env, signum):
    server = _server_process(warm_start.socket_path(warm_env))
    long_run = _train_command(tmp_path / "run")
    long_run[long_run.index("--iterations") + 1] = "30000"  # a multiple of --epochs 3
    client, child = _start_and_find_child(long_run, warm_env, server)
    time.sleep(1.0)  # well into the command
    client.send_signal(signum)
    assert client.wait(30) == -signum  # the client dies as a cold process would
    child.wait(10)  # and the work with it (psutil.TimeoutExpired otherwise)
    assert not server.children()


def test_the_child_takes_the_clients_niceness_and_cpus(tmp_path, warm_env):
    server = _server_process(warm_start.socket_path(warm_env))
    long_run = _train_command(tmp_path / "run")
    long_run[long_run.index("--iterations") + 1] = "30000"
    niceness, cpus = os.nice(0), sorted(os.sched_getaffinity(0))
    command = ["nice", "-n", "7", "taskset", "-c", str(cpus[-1]), *long_run]
    client, child = _start_and_find_child(command, warm_env, server)
    try:
        # The child is visible from its fork on and takes the client's scheduling a moment later, before it
        # runs the command: wait for that moment (CI once looked in between and saw the server's niceness).
        expected = (min(niceness + 7, 19), [cpus[-1]])
        deadline = time.monotonic() + 30
        while (child.nice(), child.cpu_affinity()) != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (child.nice(), child.cpu_affinity()) == expected
        assert server.nice() == niceness and server.cpu_affinity() == cpus  # the server's are untouched
    finally:
        client.kill()
        client.wait(30)
        child.wait(10)


def test_the_server_exits_when_idle_and_the_next_command_runs_cold(tmp_path):
    env = subprocess_env()
    env.update({warm_start.ENABLE: "1", warm_start.IDLE: "2", "KERAS_SNGAN_TEST_SERVER": str(tmp_path)})
    path = warm_start.ensure_server(env, timeout=180)
    server = _server_process(path)
    first = subprocess.run(_train_command(tmp_path / "a"), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and _record(first.stderr)["warm_start"] is True
    server.wait(30)  # two idle seconds later it is gone...
    assert not os.path.exists(path) and not os.path.exists(path + ".lock")
    cold = subprocess.run(_train_command(tmp_path / "b"), env=env, capture_output=True, text=True, timeout=300)
    assert cold.returncode == 0 and _record(cold.stderr)["warm_start"] is False  # ...so this one ran cold
    assert (tmp_path / "a" / "seed7" / "history.csv").read_bytes() == (tmp_path / "b" / "seed7" / "history.csv").read_bytes()
    # (the cold command started a new server for the next ones; with 2 idle seconds it is gone again)


@pytest.mark.parametrize("variable, value", [(warm_start.ENABLE, "yes"), (warm_start.IDLE, "-1"), (warm_start.IDLE, "soon")])
def test_bad_settings_fail_before_anything_runs(tmp_path, variable, value):
    env = dict(subprocess_env(), **{variable: value})
    result = subprocess.run(_train_command(tmp_path / "x"), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert variable in result.stderr and repr(value) in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, expected", [
    ({}, True),
    ({"SLURM_JOB_ID": "17"}, False),  # a server would live, and die, in one job's cgroup
    ({"KERAS_BACKEND": "jax"}, False),
    ({"KERAS_BACKEND": "tensorflow"}, True),
])
def test_warm_start_is_for_local_tensorflow_commands(extra, expected):
    assert warm_start.enabled({warm_start.ENABLE: "1", **extra}) is expected
    assert warm_start.enabled({warm_start.ENABLE: "0", **extra}) is False


def test_a_changed_source_file_or_environment_means_another_server(tmp_path, monkeypatch):
    env = {"A": "1"}
    path = warm_start.socket_path(env)
    assert warm_start.socket_path({"A": "1", "PWD": "/elsewhere", "SHLVL": "3"}) == path  # shell bookkeeping
    assert warm_start.socket_path({"A": "2"}) != path
    stamp = warm_start._source_stamp()
    monkeypatch.setattr(warm_start, "_source_stamp", lambda: stamp + "\nchanged")
    assert warm_start.socket_path(env) != path
    assert len(path.encode()) < 100  # AF_UNIX paths are limited to 107 bytes
