"""Unit tests of the experiment functions: analytic checks and the verdict rules."""

import os

import numpy as np
import pandas as pd
import pytest

from keras_sngan.poster.plumbing import io
from keras_sngan.poster.reporting import tables
from keras_sngan.poster.running import variance
from keras_sngan.poster.running.spec import RunSpec


# ---------------------------------------------------------------- io
def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            with open(tmp, "w") as handle:
                handle.write("half")
            raise RuntimeError("killed")
    assert io.read_json(target) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_turns_nan_into_null(tmp_path):
    io.write_json(tmp_path / "x.json", {"v": float("nan"), "a": np.arange(2)})
    assert io.read_json(tmp_path / "x.json") == {"v": None, "a": [0, 1]}


# ---------------------------------------------------------------- variance
def test_variance_check_matches_n_s2():
    table = variance.variance_check([8, 128], [0.5, 2.0], samples=40_000, seed=1)
    np.testing.assert_allclose(table["predicted"], table["n"] * table["s2"])
    assert (table["z"].abs() < 4).all()
    np.testing.assert_allclose(table["ratio"], 1.0, atol=0.05)


def test_variance_check_rejects_bad_width():
    with pytest.raises(ValueError, match="widths"):
        variance.variance_check([0], [1.0], samples=10)


def test_propagation_he_is_stable_lecun_shrinks_relu():
    profile = variance.propagate([30], ["relu"], [1, 2], bsn_scale=2.83, width=128, batch=64)
    stab = variance.stability_summary(profile).set_index("scheme")
    assert abs(stab.loc["c=2", "activation_factor_per_layer"] - 1) < 0.05
    assert abs(stab.loc["c=1", "activation_factor_per_layer"] - 2**-0.5) < 0.05
    assert stab.loc["sn", "max_spectral_norm"] == pytest.approx(1.0)


def test_sn_bound_holds_for_any_input_family():
    bound = variance.sn_bound_check(10, ["relu", "linear"], width=32, batch=16)
    assert (bound["max_layer_gain"] <= 1 + 1e-9).all()
    linear_top = bound[(bound.activation == "linear") & (bound.input == "top_singular_vector")]
    assert linear_top["max_layer_gain"].iloc[0] == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------- tables (verdict rules: tests/test_claims.py)
def test_summary_table(tmp_path):
    paths = []
    for seed, w1 in enumerate([0.1, 0.3]):
        path = tmp_path / f"m{seed}.json"
        io.write_json(path, {"dataset": "8gaussians", "method": "sn", "seed": seed, "w1_excess": w1, "seconds_per_iteration": 0.01})
        paths.append(str(path))
    table = tables.summary_table(paths, tmp_path / "s.csv", tmp_path / "s.md")
    assert table["w1_excess_mean"].iloc[0] == pytest.approx(0.2)
    assert "8gaussians" in (tmp_path / "s.md").read_text()


# ---------------------------------------------------------------- training: resume after a kill
def test_killed_training_resumes_from_checkpoint(tmp_path):
    import keras

    from keras_sngan.poster.running import training

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated kill after the first epoch's checkpoint")

    spec = RunSpec(out_dir=tmp_path / "run", dataset="8gaussians", method="sn", seeds=[0], iterations=6,
                   batch_size=8, n_critic=2, width=8, depth=1, epochs=3, stats_every=2,
                   gap_samples=16, train_size=64, checkpoint_dir=tmp_path / "ckpt", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.train(spec, callbacks=[Kill()])
    assert not (tmp_path / "run" / "history.csv").exists()  # no half-written result
    assert (tmp_path / "ckpt" / "epoch-000001" / "manifest.json").exists()
    [info] = training.train(spec)
    assert info["resumed_from_epoch"] == 1
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["iteration"]) == list(range(7))
    assert np.isfinite(history["critic_loss"]).all()
    assert (history["probe_grad_norm"] >= 0).all()  # the same probe on every row, iteration 0 included
    assert not (tmp_path / "ckpt").exists()  # the backup is removed once the run is complete


def test_train_rejects_bad_arguments_before_work(tmp_path):
    from keras_sngan.poster.running import training

    def spec(**changes):  # the run specification is checked whole when it is made
        return RunSpec(**{**dict(out_dir=tmp_path, dataset="8gaussians", method="sn", seeds=[0], iterations=10,
                                 batch_size=8), **changes})

    with pytest.raises(ValueError, match="method"):
        training.train(spec(method="wgan"))
    with pytest.raises(ValueError, match="epochs"):
        training.train(spec(epochs=3))
    with pytest.raises(ValueError, match="rmsprop"):
        training.train(spec(epochs=2, optimizer="sgd", learning_rate=1.0))
    assert not any(tmp_path.iterdir())


def test_tfds_image_run_through_mock_data(tmp_path, monkeypatch):
    """The paper profile's path: a TFDS image set (MNIST 28x28), train then evaluate with the classifier."""
    import tensorflow_datasets as tfds

    from keras_sngan.poster.running import training

    data_dir = tmp_path / "tfds"
    builder = tfds.builder("mnist", data_dir=str(data_dir))
    os.makedirs(builder.data_dir)
    template = tfds.core.naming.ShardedFileTemplate(
        data_dir=builder.data_dir, dataset_name="mnist", filetype_suffix="tfrecord"
    )
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0, filename_template=template.replace(split=s))
        for s, n in (("train", 64), ("test", 32))
    ]))
    builder.info.write_to_directory(builder.data_dir)
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    run = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=64, data_dir=str(data_dir)):
        [info] = training.train(RunSpec(out_dir=run, dataset="mnist", method="sn", seeds=[0], iterations=4, batch_size=8,
                                        n_critic=2, epochs=2, stats_every=2, gap_samples=16, critic_channels=4,
                                        generator_channels=8, latent_dim=8, verbose=0))
        metrics = training.evaluate(run, run / "eval", classifier_path=tmp_path / "clf.keras", n_samples=32)
    assert info["latent_dim"] == 8
    assert np.isfinite(metrics["frechet_distance"]) and metrics["num_classes"] == 10
    assert np.load(run / "eval" / "samples.npz")["images"].shape[1:] == (28, 28, 1)
