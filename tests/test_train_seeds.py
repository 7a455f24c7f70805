"""Several seeds in one `keras-sngan train` process: each equal to its lone run, and resumable after SIGKILL.

The oracle of a seed trained after others in one process (reusing their
traced step) is the same seed trained alone in a fresh process: every CSV
byte for byte, run.json but its wall-clock fields, and the saved weights
exactly. Killed with SIGKILL in the second seed and run again, the process
must rewrite the first seed's outputs from its kept final checkpoint and
resume the second from its last epoch, with the same bytes.
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

pytestmark = pytest.mark.xdist_group("train_seeds")

BIN = os.path.dirname(sys.executable)
WALL_CLOCK = ("seconds_per_iteration", "wall_seconds_this_process", "resumed_from_epoch")


def _args(method):
    extra = ["--optimizer", "rmsprop", "--learning-rate", "5e-5"] if method == "clip" else ["--gp-weight", "0.1"]
    return [
        "--dataset", "8gaussians", "--method", method, "--iterations", "12", "--epochs", "3",
        "--batch-size", "16", "--n-critic", "2", "--width", "8", "--depth", "2", "--train-size", "256",
        "--gap-samples", "64", "--stats-every", "2", "--threads", "1", "--verbose", "0", *extra,
    ]


def _train(tmp, name, method, seeds, pause=None, expect_kill=False, extra=()):
    out = tmp / name
    command = [os.path.join(BIN, "keras-sngan"), "train", "--out-dir", f"{out}/seed{{seed}}",
               "--checkpoint-dir", f"{out}-ckpt/seed{{seed}}", "--seed", *map(str, seeds), *_args(method), *extra]
    if not expect_kill:
        result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return out
    # Every seed stops at `pause`: let the earlier ones go on (remove their marker), kill in the last.
    process = subprocess.Popen(command, env=subprocess_env(pause), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    for seed in seeds:
        marker = tmp / f"{name}-ckpt" / f"seed{seed}" / "paused"
        while not marker.exists():
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        if seed != seeds[-1]:
            marker.unlink()
    process.send_signal(signal.SIGKILL)
    process.wait()
    return out


def _model(path):
    import keras

    import keras_sngan  # noqa: F401  (registers SpectralNormalization)

    return keras.saving.load_model(path, compile=False)


def _weights(path):
    return _model(path).get_weights()


def _assert_same(lone, cell):
    for name in ("history.csv", "layers.csv", "gap.csv", "quality.csv"):
        if name == "quality.csv" and not (lone / name).exists():
            continue
        assert (cell / name).read_bytes() == (lone / name).read_bytes(), name
    a, b = (json.loads((d / "run.json").read_text()) for d in (lone, cell))
    for key in WALL_CLOCK:
        a.pop(key), b.pop(key)
    assert a == b
    for net in ("critic.keras", "generator.keras"):
        for x, y in zip(_weights(lone / net), _weights(cell / net)):
            np.testing.assert_array_equal(x, y)


# SN (graph mode) is compared the same way by the kill test below.
@pytest.mark.parametrize("method, jit", [("clip", "off"), ("gp", "off"), ("gp", "on")])
def test_each_seed_of_a_shared_process_equals_its_lone_run(tmp_path, method, jit):
    cell = _train(tmp_path, "cell", method, [4, 7], extra=["--jit-compile", jit])
    lone = _train(tmp_path, "lone", method, [7], extra=["--jit-compile", jit])
    assert json.loads((cell / "seed7" / "run.json").read_text())["jit_compile"] is (jit == "on")
    _assert_same(lone / "seed7", cell / "seed7")
    assert not (tmp_path / "cell-ckpt" / "seed4").exists() and not (tmp_path / "cell-ckpt" / "seed7").exists()
    # and the seeds differ from each other (the copied state is the seed's own)
    assert (cell / "seed4" / "history.csv").read_bytes() != (cell / "seed7" / "history.csv").read_bytes()


def test_killed_in_the_second_seed_the_rerun_equals_the_lone_runs(tmp_path):
    quality = ("--quality-samples", "64")  # the sample-quality record resumes exactly too
    lone = _train(tmp_path, "lone", "sn", [7], extra=quality)
    first = _train(tmp_path, "first", "sn", [4], extra=quality)
    out = _train(tmp_path, "cell", "sn", [4, 7], pause="step:6", expect_kill=True, extra=quality)
    assert (out / "seed4" / "run.json").exists()  # the first seed finished...
    assert (tmp_path / "cell-ckpt" / "seed4").exists()  # ...and kept its final checkpoint for a rerun
    (out / "seed4" / "history.csv").unlink()  # as Snakemake does to a failed job's outputs
    _train(tmp_path, "cell", "sn", [4, 7], extra=quality)
    assert len((out / "seed7" / "quality.csv").read_text().splitlines()) == 1 + 4  # header, iteration 0, 3 epochs
    _assert_same(first / "seed4", out / "seed4")
    _assert_same(lone / "seed7", out / "seed7")
    info = json.loads((out / "seed7" / "run.json").read_text())
    assert info["resumed_from_epoch"] == 1 and json.loads((out / "seed4" / "run.json").read_text())["resumed_from_epoch"] == 3


def test_the_quality_record_is_w1_of_the_saved_generator_by_an_independent_computation(tmp_path):
    """The last quality row against POT's exact W1 of the saved generator's samples (same documented noise)."""
    import ot
    import pandas as pd

    from keras_sngan.poster.running.training import training_arrays

    out = _train(tmp_path, "q", "gp", [3], extra=("--quality-samples", "100"))
    quality = pd.read_csv(out / "seed3" / "quality.csv")
    assert quality["iteration"].tolist() == [0, 4, 8, 12]
    generator = _model(out / "seed3" / "generator.keras")
    rng = np.random.default_rng([3, 2468])
    z = rng.standard_normal((100, json.loads((out / "seed3" / "run.json").read_text())["latent_dim"])).astype("float32")
    train_real, heldout = training_arrays("8gaussians", 3, 256)
    reference = train_real[rng.choice(len(train_real), 100, replace=False)]
    fake = np.asarray(generator.predict(z, verbose=0), np.float64)

    def w1(x, y):
        return ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), ot.dist(x, y, metric="euclidean"))

    last = quality.iloc[-1]
    np.testing.assert_allclose(last["w1"], w1(fake, heldout[:100].astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(last["floor"], w1(reference.astype(np.float64), heldout[:100].astype(np.float64)), rtol=1e-6)
    assert last["num_modes"] == 8 and 0 <= last["modes_covered"] <= 8


def test_quality_records_refuse_image_sets_by_name(tmp_path):
    command = [os.path.join(BIN, "keras-sngan"), "train", "--out-dir", str(tmp_path / "x"), "--seed", "0",
               "--dataset", "digits", "--method", "sn", "--iterations", "2", "--epochs", "1", "--batch-size", "8",
               "--quality-samples", "10"]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "quality_samples" in result.stderr and "digits" in result.stderr


def test_a_failing_seed_names_itself(tmp_path):
    out = tmp_path / "cell"
    command = [os.path.join(BIN, "keras-sngan"), "train", "--out-dir", f"{out}/seed{{seed}}", "--seed", "1", "2",
               *_args("sn"), "--train-size", "8"]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "seed 1" in result.stderr and str(out / "seed1") in result.stderr


@pytest.mark.parametrize("option", ["--out-dir", "--checkpoint-dir"])
def test_several_seeds_need_a_seed_placeholder(tmp_path, option):
    """Checked from the arguments alone, before the backend is imported (no timing record: no work began)."""
    dirs = {"--out-dir": str(tmp_path / "x{seed}"), "--checkpoint-dir": str(tmp_path / "ckpt{seed}"), option: str(tmp_path / "y")}
    command = [os.path.join(BIN, "keras-sngan"), "train", *(x for kv in dirs.items() for x in kv), "--seed", "1", "2",
               *_args("sn")]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "{seed}" in result.stderr and option in result.stderr
    assert "keras-sngan timing" not in result.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "dataset, model, method, iterations, expected",
    [
        # toy_mlp_256 GP saves 6.9 ms / iteration and costs 9.65 s to compile: XLA from 1393 iterations on
        ("8gaussians", {"width": 256, "depth": 3}, "gp", 600, False),
        ("8gaussians", {"width": 256, "depth": 3}, "gp", 2000, True),
        ("8gaussians", {"width": 256, "depth": 3}, "clip", 10**6, False),  # XLA slower per step: never
        ("digits", {}, "gp", 500, True),  # 43.8 ms saved per iteration, 15.9 s to compile
        ("8gaussians", {"width": 8, "depth": 2}, "gp", 10**6, False),  # not measured: Keras' own CPU choice
    ],
)
def test_auto_jit_compile_pays_for_its_compilation(dataset, model, method, iterations, expected):
    from keras_sngan.poster.running import training

    assert training.choose_jit_compile("auto", dataset, method, model, iterations) is expected
    assert training.choose_jit_compile(True, dataset, method, model, 1) is True
    with pytest.raises(ValueError, match="jit_compile"):
        training.choose_jit_compile("yes", dataset, method, model, 1)
