"""Multi-worker training through the CLI: real `keras-sngan train` worker processes on 127.0.0.1.

Two worker processes (``TF_CONFIG``, free ports) form a real
`tf.distribute.MultiWorkerMirroredStrategy` cluster. The oracle is an
independent one-process run with the same global batch: `MirroredStrategy`
on two logical CPUs (``--replicas 2``). Both must end with the same weights
and the same logged history, for each of clip / gp / sn, and a worker pair
killed with SIGKILL after the chief's first checkpoint must, relaunched with
the same two commands, end where the uninterrupted pair ends.

Every process runs in its own session with a deadline: a hung collective
kills the process groups and fails the test with the workers' logs.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
import zipfile
from io import BytesIO

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_sngan import distribute

# One pytest-xdist worker for the whole module (`make test`: -n 2 --dist loadgroup): its module fixtures run once.
pytestmark = pytest.mark.xdist_group("multi_worker")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
METHODS = ("clip", "gp", "sn")
EPOCHS = 4
# Tiny model, 6 generator iterations per epoch: long enough to kill a pair
# between its first checkpoint and its end, short enough for the test budget.
TRAIN_ARGS = [
    "--dataset", "8gaussians", "--seed", "3", "--iterations", str(6 * EPOCHS), "--epochs", str(EPOCHS),
    "--batch-size", "16", "--n-critic", "2", "--width", "16", "--depth", "2", "--train-size", "512",
    "--gap-samples", "64", "--stats-every", "6", "--threads", "1", "--verbose", "2",
]
DEADLINE = 420  # seconds for one run (a pair runs concurrently); generous for a loaded CI machine
EPOCH_END = re.compile(r"^\d+/\d+ - ", re.MULTILINE)  # Keras' verbose=2 end-of-epoch line


# --------------------------------------------------------------------------- processes
def _env(tf_config=None):
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines reach the log as they are printed
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class _Run:
    """One `keras-sngan train` process in its own session, output to a log file."""

    def __init__(self, args, log_path, tf_config=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "keras-sngan"), "train", *args], cwd=ROOT, env=_env(tf_config),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def text(self):
        with open(self.log_path) as handle:
            return handle.read()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


def _wait(runs, until=None, deadline=DEADLINE):
    """Wait until every run exits (or ``until()`` is true); kill all and fail on the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if until is not None and until():
            return
        if all(r.proc.poll() is not None for r in runs):
            break
        if any(r.proc.poll() not in (None, 0) for r in runs):
            break  # one failed: its peers would wait on a collective forever
        time.sleep(0.02)
    else:
        for r in runs:
            r.kill()
        pytest.fail(f"runs still going after {deadline} s (hung collective?):\n" + _logs(runs))
    failed = [r for r in runs if r.proc.poll() != 0]
    if failed:
        for r in runs:
            r.kill()
        pytest.fail("a run failed:\n" + _logs(runs))
    for r in runs:
        r.kill()  # already exited: reap and close the log


def _wait_all_failed(runs, deadline=DEADLINE):
    """Wait until every run has exited on its own with an error; kill all and fail on the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and any(r.proc.poll() is None for r in runs):
        time.sleep(0.05)
    codes = [r.proc.poll() for r in runs]
    for r in runs:
        r.kill()
    assert all(code not in (None, 0) for code in codes), f"expected every run to fail, exit codes {codes}:\n" + _logs(runs)


def _logs(runs):
    return "\n".join(f"--- {r.log_path} (exit {r.proc.poll()}):\n{r.text()[-3000:]}" for r in runs)


def _start_pair(out_dir, method, checkpoint_dir, tag, worker1_checkpoint_dir=None):
    """Start worker 0 (the chief) and worker 1 with the same command, each with its TF_CONFIG."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    runs = []
    for i, directory in enumerate((checkpoint_dir, worker1_checkpoint_dir or checkpoint_dir)):
        args = ["--out-dir", str(out_dir), "--method", method, "--checkpoint-dir", str(directory), *TRAIN_ARGS]
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        runs.append(_Run(args, f"{out_dir}.{tag}.worker{i}.log", tf_config=tf_config))
    return runs


# --------------------------------------------------------------------------- results
def _weights(path):
    """Every weight array of a saved ``.keras`` model, by its path in the weights file."""
    found = {}
    with zipfile.ZipFile(path) as archive, h5py.File(BytesIO(archive.read("model.weights.h5")), "r") as store:
        store.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def _assert_same_run(expected_dir, actual_dir):
    for net in ("critic", "generator"):
        expected, actual = _weights(expected_dir / f"{net}.keras"), _weights(actual_dir / f"{net}.keras")
        assert sorted(expected) == sorted(actual)
        for name in expected:
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=f"{net}/{name}")
    expected, actual = pd.read_csv(expected_dir / "history.csv"), pd.read_csv(actual_dir / "history.csv")
    assert list(expected.columns) == list(actual.columns) and len(expected) == len(actual) == 6 * EPOCHS + 1
    np.testing.assert_allclose(actual.to_numpy(float), expected.to_numpy(float), rtol=1e-5, atol=1e-6)
    assert expected["critic_loss"].nunique() > EPOCHS  # the runs did train (not two untouched initializations)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per method, once per module: the one-process 2-replica oracle and an uninterrupted worker pair."""
    cache = {}

    def get(method):
        if method not in cache:
            root = tmp_path_factory.mktemp(f"multi_worker_{method}")
            oracle = _Run(
                ["--out-dir", str(root / "oracle"), "--method", method, "--replicas", "2", *TRAIN_ARGS],
                str(root / "oracle.log"),
            )
            pair = _start_pair(root / "pair", method, root / "pair-checkpoints", "run")
            _wait([oracle, *pair])  # independent processes: run side by side
            cache[method] = root
        return cache[method]

    return get


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("method", METHODS)
def test_multi_worker_pair_equals_one_process_mirrored(method, trained):
    root = trained(method)
    _assert_same_run(root / "oracle", root / "pair")
    info = json.loads((root / "pair" / "run.json").read_text())
    assert info["replicas"] == 2 and info["resumed_from_epoch"] == 0
    assert json.loads((root / "oracle" / "run.json").read_text())["replicas"] == 2
    # Only the chief writes: no checkpoint left behind, no worker's private copy either.
    assert not (root / "pair-checkpoints").exists()
    assert not list(root.glob("pair-checkpoints.*"))


def test_multi_worker_pair_killed_after_a_checkpoint_resumes_from_the_chiefs(tmp_path, trained):
    method = "sn"  # the most state to restore: Adam moments, noise seed and the SN power-iteration vectors
    reference = trained(method) / "pair"
    out_dir, checkpoint_dir = tmp_path / "pair", tmp_path / "checkpoints"
    pair = _start_pair(out_dir, method, checkpoint_dir, "killed")
    chief = pair[0]
    # Checkpoints are written at the end of an epoch, before Keras prints the
    # epoch's progress line: the first such line of the chief means its first
    # checkpoint is complete. Kill both workers as soon as it appears.
    _wait(pair, until=lambda: len(EPOCH_END.findall(chief.text())) >= 1)
    for run in pair:
        run.kill()
    epochs_done = len(EPOCH_END.findall(chief.text()))
    assert 1 <= epochs_done < EPOCHS and not (out_dir / "run.json").exists(), (
        "the pair must be killed between its first checkpoint and its end:\n" + _logs(pair)
    )
    assert any(checkpoint_dir.iterdir()), "the chief left no checkpoint"

    # A worker that cannot see the chief's checkpoint (here: pointed at an
    # empty directory, as on a file system that is not shared) would start
    # over while the chief resumes: both must stop with a clear error, in
    # bounded time, and leave the chief's checkpoint as it was.
    mismatched = _start_pair(out_dir, method, checkpoint_dir, "mismatched", worker1_checkpoint_dir=tmp_path / "elsewhere")
    _wait_all_failed(mismatched)
    for run in mismatched:
        assert "start training from different model and optimizer states" in run.text(), _logs(mismatched)
    assert not (out_dir / "run.json").exists()

    relaunched = _start_pair(out_dir, method, checkpoint_dir, "resumed")
    _wait(relaunched)
    info = json.loads((out_dir / "run.json").read_text())
    assert info["resumed_from_epoch"] >= 1, "the relaunched pair started over instead of resuming"
    _assert_same_run(reference, out_dir)
    assert not checkpoint_dir.exists() and not list(tmp_path.glob("checkpoints.*"))


# --------------------------------------------------------------------------- roles and config
def _strategy_with_role(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "cluster, task_type, task_id, chief",
    [
        ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
        ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
    ],
)
def test_multi_worker_chief_is_the_chief_task_or_worker_0(cluster, task_type, task_id, chief):
    assert distribute.is_chief(_strategy_with_role(cluster, task_type, task_id)) is chief
    assert distribute.is_chief(tf.distribute.get_strategy()) is True  # one process


def test_multi_worker_non_chief_checkpoints_into_a_copy_of_the_chiefs(tmp_path):
    shared = tmp_path / "checkpoints"
    (shared / "backup").mkdir(parents=True)
    (shared / "backup" / "state").write_text("epoch 1")
    chief = _strategy_with_role({"worker": ["a:1", "b:1"]}, "worker", 0)
    other = _strategy_with_role({"worker": ["a:1", "b:1"]}, "worker", 1)
    assert distribute.worker_checkpoint_dir(shared, chief) == str(shared)
    private = distribute.worker_checkpoint_dir(shared, other)
    assert private == f"{shared}.worker1"
    assert (tmp_path / "checkpoints.worker1" / "backup" / "state").read_text() == "epoch 1"
    (tmp_path / "checkpoints.worker1" / "backup" / "state").write_text("epoch 2")  # its own saves ...
    assert (shared / "backup" / "state").read_text() == "epoch 1"  # ... never touch the chief's
    distribute.remove_worker_checkpoint_dir(private, other)
    distribute.remove_worker_checkpoint_dir(str(shared), chief)  # the chief's is never removed here
    assert shared.exists() and not os.path.exists(private)


def _tf_config(**overrides):
    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    config.update(overrides)
    return {"TF_CONFIG": json.dumps(config)}


@pytest.mark.parametrize(
    "environ, mode, replicas, expected",
    [
        ({}, "auto", 1, "none"),
        ({}, "auto", 2, "mirrored"),
        ({"TF_CONFIG": ""}, "auto", 1, "none"),
        (_tf_config(), "auto", 1, "multi-worker"),
        (_tf_config(cluster={"worker": ["127.0.0.1:1"]}, task={"type": "worker", "index": 0}), "auto", 1, "none"),
        (_tf_config(), "none", 1, "none"),
        (_tf_config(), "mirrored", 2, "mirrored"),
        ({"TF_CONFIG": "{not json"}, "none", 1, "none"),  # only auto / multi-worker read it
    ],
)
def test_multi_worker_mode_resolution(environ, mode, replicas, expected):
    assert distribute.resolve_mode(mode, replicas, environ) == expected


@pytest.mark.parametrize(
    "environ, mode, replicas, match",
    [
        ({}, "multi-worker", 1, "needs the TF_CONFIG"),
        ({}, "ring", 1, "`distribute` must be one of .* received 'ring'"),
        ({}, "auto", 0, "`replicas` must be an integer >= 1, received 0"),
        (_tf_config(), "auto", 2, "`replicas`=2 .* received `distribute`='multi-worker'"),
        ({"TF_CONFIG": "{cluster"}, "auto", 1, "TF_CONFIG must be JSON"),
        ({"TF_CONFIG": "{}"}, "auto", 1, "must hold 'cluster' and 'task'"),
        (_tf_config(cluster={"ps": ["a:1"], "worker": ["a:2"]}), "auto", 1, r"received \['ps'\]"),
        (_tf_config(cluster={"worker": ["nohost"]}), "auto", 1, r"'host:port' strings, received \['nohost'\]"),
        (_tf_config(task={"type": "chief", "index": 0}), "auto", 1, "task type must be one of .* 'chief'"),
        (_tf_config(task={"type": "worker", "index": 2}), "auto", 1, r"index must be an integer in \[0, 1\].* received 2"),
    ],
)
def test_multi_worker_bad_config_is_a_clear_error(environ, mode, replicas, match):
    with pytest.raises(ValueError, match=match):
        distribute.resolve_mode(mode, replicas, environ)


def test_multi_worker_global_batch_must_split_over_the_replicas():
    two = types.SimpleNamespace(num_replicas_in_sync=2)
    distribute.check_global_batch(16, two)
    with pytest.raises(ValueError, match="`batch_size`=15 is the global critic batch .* 2 replicas"):
        distribute.check_global_batch(15, two)
