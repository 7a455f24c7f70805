"""The pipeline's jobs on every backend: threads, data order, checkpoints' guard, datasets, the DAG's refusals.

The end-to-end run of the CI profile on JAX in an environment without
TensorFlow, and its agreement with the TensorFlow run, is
tests/test_pipeline_on_jax.py; the SIGKILL resume tests of both backends are
in tests/test_resume.py and tests/test_pipeline_resume.py.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import subprocess_env

from keras_sngan.poster.plumbing import data_stream
from keras_sngan.poster.running.spec import RunSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


# --------------------------------------------------------------------------- threads
THREAD_PROBE = textwrap.dedent(
    """
    import collections, os, resource, sys, time
    threads = int(sys.argv[1])
    from keras_sngan import runtime
    if threads:
        runtime.configure(threads)
    import jax, jax.numpy as jnp
    a = jnp.ones((1536, 1536), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    while time.perf_counter() - t0 < 1.5:
        f(a).block_until_ready()
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r.ru_utime + r.ru_stime) - (r0.ru_utime + r0.ru_stime)
    names = collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    print(names["tf_XLAEigen"], cpu / (time.perf_counter() - t0), len(os.sched_getaffinity(0)))
    """
)


def _xla_pool(threads):
    """(XLA's compute threads, cores kept busy by a matmul loop, CPUs the process may use) of a JAX process."""
    env = dict(subprocess_env(), KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", THREAD_PROBE, str(threads)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    pool, busy, cpus = result.stdout.split()
    return int(pool), float(busy), int(cpus)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell 1 thread from several")
def test_jax_compute_is_capped_at_the_threads_given():
    """`--threads 1` on JAX: XLA's compute pool has 1 thread, not one per CPU, and the process keeps every CPU.

    XLA names its CPU compute threads ``tf_XLAEigen``; uncapped it starts one
    per CPU (so the check can fail). The busy-cores figure can only be lowered
    by other processes, so its bound holds on a loaded machine too.
    """
    cpus = len(os.sched_getaffinity(0))
    assert _xla_pool(0)[0] == cpus
    pool, busy, allowed = _xla_pool(1)
    assert pool == 1
    assert busy < 1.25, f"with threads=1 the process kept {busy:.2f} cores busy"
    assert allowed == cpus, "the process must get all its CPUs back (jobs sharing a machine must not pile on one core)"


# --------------------------------------------------------------------------- data order
def _oracle_step(x, batch_size, n_critic, seed, step):
    """Step `step` of the NumPy stream, from its definition: pass p's permutation cut into blocks."""
    per_step = batch_size * n_critic
    per_pass = len(x) // per_step
    p, k = divmod(step, per_pass)
    order = np.random.default_rng([seed, p]).permutation(len(x))
    return x[order[k * per_step:(k + 1) * per_step]]


def test_numpy_stream_is_its_definition_and_resumes_at_any_step():
    import keras

    x = np.random.default_rng(0).standard_normal((103, 3)).astype(np.float32)
    stream = data_stream.StepStream(x, batch_size=4, n_critic=5, seed=7, start_step=0, num_steps=30)
    assert isinstance(stream, keras.utils.PyDataset) and len(stream) == 30
    for step in range(30):  # 5 steps per pass: six passes, each its own permutation
        np.testing.assert_array_equal(stream[step], _oracle_step(x, 4, 5, 7, step))
    resumed = data_stream.StepStream(x, batch_size=4, n_critic=5, seed=7, start_step=13, num_steps=17)
    for i, element in enumerate(resumed):
        np.testing.assert_array_equal(element, stream[13 + i])
    assert not np.array_equal(stream[0], data_stream.StepStream(x, 4, 5, 8, 0, 1)[0])  # the seed matters


# --------------------------------------------------------------------------- checkpoints' guard
def test_a_checkpoint_resumes_only_on_the_backend_that_wrote_it():
    spec = RunSpec(dataset="8gaussians", method="sn", out_dir="o", iterations=10, seeds=(0,), batch_size=8)
    assert spec.fingerprint(0) == spec.fingerprint(0, backend="tensorflow")  # TensorFlow's fingerprints unchanged
    assert spec.fingerprint(0, backend="jax") != spec.fingerprint(0)
    assert spec.fingerprint(0, backend="jax") != spec.fingerprint(0, backend="torch")


# --------------------------------------------------------------------------- toy initializer
def test_gan_toy_initializer_is_he_uniform_hidden_and_glorot_output():
    """Bounds and variances against the formulas (tflib: uniform with std sqrt(2 / fan_in), output Glorot)."""
    import keras

    from keras_sngan import models

    keras.utils.set_random_seed(0)
    critic = models.toy_critic(width=512, depth=3, initializer="gan_toy")
    kernels = {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer in critic.layers if hasattr(layer, "kernel")}
    hidden, output = kernels["dense_1"], kernels["score"]
    fan_in = 512
    assert np.abs(hidden).max() <= np.sqrt(6 / fan_in) and np.abs(hidden).max() > 0.99 * np.sqrt(6 / fan_in)
    assert hidden.var() == pytest.approx(2 / fan_in, rel=0.02)
    assert np.abs(output).max() <= np.sqrt(6 / (fan_in + 1))
    assert output.var() == pytest.approx(2 / (fan_in + 1), rel=0.25)
    glorot = models.toy_critic(width=512, depth=3)
    plain = keras.ops.convert_to_numpy(glorot.get_layer("dense_1").kernel)
    assert plain.var() == pytest.approx(2 / (512 + 512), rel=0.02)  # Keras' default, half He's variance
    generator = models.toy_generator(width=512, initializer="gan_toy")
    assert keras.ops.convert_to_numpy(generator.get_layer("dense_1").kernel).var() == pytest.approx(2 / 512, rel=0.02)
    with pytest.raises(ValueError, match=r"`initializer` must be one of \['glorot', 'gan_toy'\], received 'he'"):
        models.toy_critic(initializer="he")


# --------------------------------------------------------------------------- datasets
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_missing_dataset_is_one_line_naming_it_and_how_to_provide_it(tmp_path, backend):
    env = dict(subprocess_env(), TFDS_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [os.path.join(BIN, "keras-sngan"), "--backend", backend, "train", "--dataset", "cifar10", "--method", "sn",
         "--seed", "0", "--batch-size", "8", "--out-dir", str(tmp_path / "run"), "--iterations", "10", "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("keras-sngan timing")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-sngan train: error:") and "'cifar10'" in lines[0]
    assert "keras-sngan prepare-images --dataset cifar10 --out DIR/cifar10.npz" in lines[0]


def _dry_run(*config, cwd=ROOT):
    return subprocess.run(
        [os.path.join(BIN, "snakemake"), "-n", "--configfile", "config/test.yaml", "--config", *config],
        cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )


def test_workflow_refuses_tfds_jobs_on_jax_without_array_files_when_the_dag_is_built(tmp_path):
    result = _dry_run(f"results={tmp_path / 'r'}", "backend=jax", "compare={datasets: [8gaussians, cifar10]}")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "train_compare, classifier and evaluate of 'cifar10'" in message
    assert "needs TensorFlow, and `backend` is 'jax'" in message and "keras-sngan prepare-images --dataset cifar10" in message
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "cifar10.npz").write_bytes(b"")
    given = _dry_run(f"results={tmp_path / 'r'}", "backend=jax", "compare={datasets: [8gaussians, cifar10]}",
                     f"image_arrays={tmp_path / 'arrays'}")
    assert "train_compare, classifier and evaluate of" not in given.stdout + given.stderr
    assert _dry_run(f"results={tmp_path / 'r'}", "backend=jax").returncode == 0  # the test profile itself: no TFDS set


def test_prepared_arrays_equal_the_tfds_arrays_bit_for_bit_and_load_without_tensorflow(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from test_datasets import write_mnist_metadata
    from test_sn_layer_without_tensorflow import run_without_tensorflow

    from keras_sngan import datasets

    data_dir = write_mnist_metadata(tmp_path / "tfds")
    path = tmp_path / "arrays" / "mnist.npz"
    with tfds.testing.mock_data(num_examples=40, data_dir=data_dir):
        info = datasets.save_arrays("mnist", path, data_dir=data_dir)
        direct = {split: datasets.load_arrays("mnist", split, data_dir=data_dir, arrays=False) for split in ("train", "test")}
    assert info["train"] == 40 and info["shape"] == [28, 28, 1]
    for split, (x, y) in direct.items():
        fx, fy = datasets.load_arrays("mnist", split, arrays=path)
        assert fx.dtype == np.float32 and fx.tobytes() == x.tobytes() and np.array_equal(fy, y)
    np.save(tmp_path / "test_x.npy", direct["test"][0])
    result = run_without_tensorflow(
        f"""
        import os, numpy as np
        os.environ["{datasets.ARRAYS_ENV}"] = {str(path.parent)!r}
        from keras_sngan import datasets
        data = datasets.load_dataset("mnist", batch_size=4, n_critic=2)
        assert data.steps_per_epoch == 40 // 8 and data.sample_shape == (28, 28, 1)
        assert data.heldout.tobytes() == np.load({str(tmp_path / "test_x.npy")!r}).tobytes()
        try:
            datasets.load_arrays("cifar10", "train", arrays={str(path)!r})
        except ValueError as error:
            print("WRONG FILE:", error)
        print("OK")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WRONG FILE: load_arrays:" in result.stdout and "is not the array file of dataset 'cifar10'" in result.stdout
    assert result.stdout.strip().endswith("OK")


def test_backend_option_is_checked_and_recorded(tmp_path):
    bad = subprocess.run([os.path.join(BIN, "keras-sngan"), "--backend", "theano", "variance"], env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'theano'" in bad.stderr
    out = tmp_path / "run"
    done = subprocess.run(
        [os.path.join(BIN, "keras-sngan"), "--backend", "jax", "train", "--dataset", "8gaussians", "--method", "gp",
         "--seed", "0", "--out-dir", str(out), "--iterations", "4", "--epochs", "1", "--batch-size", "8", "--width", "8", "--depth", "1",
         "--train-size", "64", "--gap-samples", "16", "--threads", "1", "--verbose", "0"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["backend"] == "jax" and info["jit_compile"] is True  # JAX has no graph mode: always XLA


def test_auto_means_xla_on_jax_and_the_measured_choice_on_tensorflow():
    from keras_sngan.poster.running.training import choose_jit_compile

    model = {"width": 256, "depth": 3}
    # toy_mlp_256 clip: graph 44.15 ms, XLA 45.46 ms in STEP_TIMES: graph mode on TensorFlow
    assert choose_jit_compile("auto", "8gaussians", "clip", model, 600) is False
    assert choose_jit_compile("auto", "8gaussians", "clip", model, 600, backend="jax") is True
    assert choose_jit_compile(False, "8gaussians", "clip", model, 600, backend="jax") is False  # as given


def test_dataset_presence_is_checked_without_tensorflow(tmp_path, monkeypatch):
    """Built in, a prepared array file, or TFDS's dataset_info.json: present; else the one-line error."""
    from keras_sngan.datasets import ARRAYS_ENV, DatasetNotAvailableError
    from keras_sngan.datasets.prepared import check_available

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv(ARRAYS_ENV, raising=False)
    check_available("digits")
    with pytest.raises(DatasetNotAvailableError, match=r"dataset 'mnist' is not here.*prepare-images --dataset mnist"):
        check_available("mnist")
    (tmp_path / "tfds" / "mnist" / "3.0.1").mkdir(parents=True)
    (tmp_path / "tfds" / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    check_available("mnist")
    monkeypatch.setenv(ARRAYS_ENV, str(tmp_path / "arrays"))
    with pytest.raises(DatasetNotAvailableError, match=r"KERAS_SNGAN_IMAGE_ARRAYS=.*arrays, but .*cifar10.npz does not exist"):
        check_available("cifar10")
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "cifar10.npz").write_bytes(b"")
    check_available("cifar10")
