"""The overfitting experiment (claim 2b): data sets, independent seeded replicates, the gap table."""

import numpy as np
import pandas as pd
import pytest

from keras_sngan import datasets
from keras_sngan.experiments import overfitting

TINY = dict(iterations=4, records=2, batch_size=8, n_critic=2, width=4, depth=1)


def test_digit_subsets_are_seeded_prefixes_of_the_training_split():
    x_all, _, x_heldout, _ = datasets.load_digits_split()
    train, heldout = overfitting.data("digits", 256, seed=3)
    assert train.shape == (256, 64) and heldout.shape == (len(x_heldout), 64)
    rows = {row.tobytes() for row in x_all.reshape(len(x_all), -1)}
    assert all(row.tobytes() in rows for row in train)  # training images only
    assert len({row.tobytes() for row in train}) == len({row.tobytes() for row in train[:256]})
    np.testing.assert_array_equal(train, overfitting.data("digits", 256, seed=3)[0])
    assert not np.array_equal(train, overfitting.data("digits", 256, seed=4)[0])
    assert overfitting.data("digits", "all", seed=0)[0].shape == (len(x_all), 64)


def test_toy_sets_are_fixed_per_seed_with_fresh_heldout_points():
    train, heldout = overfitting.data("8gaussians", 512, seed=0)
    assert train.shape == heldout.shape == (512, 2)
    assert not np.isin(train[:, 0], heldout[:, 0]).any()
    np.testing.assert_array_equal(train, overfitting.data("8gaussians", 512, seed=0)[0])


def test_order_revisits_every_point_once_per_pass():
    order = overfitting._order(10, 35, seed=0)
    assert len(order) == 35
    for start in (0, 10, 20):
        assert sorted(order[start:start + 10]) == list(range(10))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dataset": "moons"}, "dataset"),
        ({"train_size": 1}, "train_size"),
        ({"dataset": "8gaussians", "train_size": "all"}, "train_size"),
        ({"train_size": 5000}, "train_size"),
        ({"method": "wgan"}, "method"),
        ({"seeds": []}, "seeds"),
        ({"iterations": 5}, "records"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, kwargs, name):
    args = dict(out_csv=tmp_path / "x.csv", dataset="digits", train_size=64, method="gp", seeds=[0], **TINY)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        overfitting.run(**args)
    assert not (tmp_path / "x.csv").exists()


def test_replicates_are_independent_of_the_seeds_run_before_them(tmp_path):
    """One traced WGAN serves every seed: seed 1 after seed 0 must equal seed 1 alone (fresh weights, optimizer
    state and noise each time)."""
    both = overfitting.run(tmp_path / "both.csv", "digits", 32, "sn", [0, 1], label="sn", **TINY)
    alone = overfitting.run(tmp_path / "alone.csv", "digits", 32, "sn", [1], **TINY)
    columns = ["iteration", "w_train", "w_heldout", "gap", "std_gap"]
    pd.testing.assert_frame_equal(both[both.seed == 1][columns].reset_index(drop=True), alone[columns], rtol=1e-5)
    assert list(both[both.seed == 0]["iteration"]) == [0, 2, 4]
    assert set(both.columns) >= {"dataset", "train_size", "method", "gp_weight", "seed", "n"}
    assert (both["train_size"] == 32).all() and (both["n"] == 32).all()
    last = overfitting.final(both)
    assert list(last["iteration"]) == [4, 4]
    # The gap uses the same fakes in both terms: it is w_train - w_heldout, and the rows parse back.
    np.testing.assert_allclose(both["gap"], both["w_train"] - both["w_heldout"])
    table = overfitting.combine([tmp_path / "both.csv", tmp_path / "alone.csv"], tmp_path / "all.csv")
    assert len(table) == 9


def test_cli_runs_one_cell(tmp_path):
    from keras_sngan import cli

    out = tmp_path / "cell.csv"
    code = cli.main(["overfit", "--out", str(out), "--dataset", "8gaussians", "--train-size", "16", "--method", "gp",
                     "--label", "gp0.1", "--gp-weight", "0.1", "--seeds", "0", "1", "--iterations", "2", "--records",
                     "1", "--batch-size", "4", "--n-critic", "2", "--width", "4", "--depth", "1"])
    assert code == 0
    table = pd.read_csv(out)
    assert set(table["method"]) == {"gp0.1"} and (table["gp_weight"] == 0.1).all()
    assert sorted(table["seed"].unique()) == [0, 1]
