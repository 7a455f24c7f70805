"""Exact resume the way users break runs: a real `keras-sngan train` killed with SIGKILL.

The kill points are chosen from the run's checkpoint progress, not from
sleeps: the test hook ``KERAS_SNGAN_TEST_PAUSE`` makes the process stop at a
named point (after a generator iteration, or in the middle of writing a
checkpoint) and announce it with a ``paused`` file; the test then SIGKILLs it.
The oracle is an uninterrupted run of the same command.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import subprocess_env

from keras_sngan.poster.plumbing import checkpoints

# One pytest-xdist worker for the whole module (`make test`: -n 2 --dist loadgroup): its module fixtures run once.
pytestmark = pytest.mark.xdist_group("resume")

BIN = os.path.dirname(sys.executable)
# 3 epochs of 4 iterations: one checkpoint per epoch.
ARGS = [
    "--dataset", "8gaussians", "--method", "sn", "--seed", "3", "--iterations", "12", "--epochs", "3",
    "--batch-size", "16", "--n-critic", "2", "--width", "8", "--depth", "2", "--train-size", "256",
    "--gap-samples", "64", "--stats-every", "2", "--threads", "1", "--verbose", "0",
]
WALL_CLOCK = ("seconds_per_iteration", "wall_seconds_this_process")


BACKENDS = ("tensorflow", "jax")  # the CLI-kill test runs on both (--backend)


def _command(out_dir, backend="tensorflow"):
    return [os.path.join(BIN, "keras-sngan"), "--backend", backend, "train", "--out-dir", str(out_dir),
            "--checkpoint-dir", str(out_dir) + "-ckpt", *ARGS]


def train(out_dir, backend="tensorflow"):
    result = subprocess.run(_command(out_dir, backend), env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def train_until_killed(out_dir, pause, backend="tensorflow"):
    """Start the run, wait until it stops at `pause`, SIGKILL it."""
    marker = os.path.join(str(out_dir) + "-ckpt", "paused")
    if os.path.exists(marker):
        os.remove(marker)
    process = subprocess.Popen(_command(out_dir, backend), env=subprocess_env(pause), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not os.path.exists(marker):
        assert process.poll() is None, f"run ended before pausing at {pause}: {process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"run never reached {pause}"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def committed_epochs(out_dir):
    directory = str(out_dir) + "-ckpt"
    return sorted(int(n.split("-")[1]) for n in os.listdir(directory) if n.startswith("epoch-"))


def weights(path):
    import keras

    import keras_sngan  # noqa: F401  (registers SpectralNormalization)

    return keras.saving.load_model(path, compile=False).get_weights()


def assert_same_run(reference, resumed):
    for name in ("history.csv", "layers.csv", "gap.csv"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    ref, res = (json.loads((d / "run.json").read_text()) for d in (reference, resumed))
    for key in WALL_CLOCK + ("resumed_from_epoch",):
        ref.pop(key), res.pop(key)
    assert res == ref
    for net in ("critic.keras", "generator.keras"):
        a, b = weights(reference / net), weights(resumed / net)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), net


@pytest.fixture(scope="module", params=BACKENDS)
def reference(request, tmp_path_factory):
    """(backend, the uninterrupted run's directory) on each backend."""
    out = tmp_path_factory.mktemp(f"reference-{request.param}") / "run"
    info = train(out, request.param)
    assert info["backend"] == request.param
    return request.param, out


@pytest.mark.slow
def test_killed_three_times_then_resumed_equals_uninterrupted_run(tmp_path, reference):
    backend, reference = reference
    out = tmp_path / "run"
    # 1. Killed before the first checkpoint: nothing to resume, starts afresh.
    train_until_killed(out, "step:2", backend)
    assert committed_epochs(out) == []
    # 2. Killed in the middle of writing the epoch-2 checkpoint (files written,
    #    not yet renamed into place): the half-written one must never be loaded.
    train_until_killed(out, "write:2", backend)
    assert committed_epochs(out) == [1]
    ckpt = str(out) + "-ckpt"
    assert any(n.startswith(".epoch-000002") for n in os.listdir(ckpt))
    # 3. Killed mid-epoch 3 (after iteration 10 of 12).
    train_until_killed(out, "step:10", backend)
    assert committed_epochs(out) == [2]
    assert not any(n.startswith(".epoch-") for n in os.listdir(ckpt))
    info = train(out, backend)
    assert info["resumed_from_epoch"] == 2
    assert not os.path.exists(ckpt)
    assert_same_run(reference, out)


# ------------------------------------------------------ checkpoint store units


def _tiny_model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    return model


def test_a_corrupt_checkpoint_is_never_loaded(tmp_path):
    store = checkpoints.CheckpointStore(tmp_path, "abc")
    good = _tiny_model(0)
    path1 = store.save(1, good, {"rows": [1.0, float("nan")]})
    store.save(2, _tiny_model(1), {"rows": [2.0]})
    assert not os.path.exists(path1)  # older checkpoints are removed once a newer one is in place
    epoch, weights_path, state = store.latest()
    assert epoch == 2 and state == {"rows": [2.0]}
    # A flipped byte in the weights (or a truncated file) invalidates the checkpoint.
    with open(weights_path, "r+b") as handle:
        handle.seek(-10, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-10, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert store.latest() is None
    # Epoch 1 again; a leftover temporary directory of a killed write is removed.
    store.save(1, good, {"rows": [1.0, float("nan")]})
    os.makedirs(tmp_path / ".epoch-000003.xyz")
    epoch, weights_path, state = store.latest()
    assert epoch == 1 and np.isnan(state["rows"][1])
    assert not os.path.exists(tmp_path / ".epoch-000003.xyz")
    restored = _tiny_model(5)
    restored.load_weights(weights_path)
    for a, b in zip(good.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_other_parameters_is_refused(tmp_path):
    checkpoints.CheckpointStore(tmp_path, "abc").save(1, _tiny_model(0), {})
    with pytest.raises(ValueError, match="written by a run with other parameters.*checkpoint_dir"):
        checkpoints.CheckpointStore(tmp_path, "other").latest()
