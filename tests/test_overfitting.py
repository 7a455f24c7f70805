"""The overfitting experiment (claim 2b): data sets, independent seeded replicates, the gap table."""

import numpy as np
import pandas as pd
import pytest

from keras_sngan import datasets
from keras_sngan.poster.plumbing.runs import overfitting_final
from keras_sngan.poster.running import overfitting

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
    """One traced WGAN serves every seed: seed 1 run again after seed 0 must repeat seed 1's first run exactly
    (fresh weights and SN vectors, fresh optimizer state and noise stream each time)."""
    table = overfitting.run(tmp_path / "cell.csv", "digits", 32, "sn", [1, 0, 1], label="sn-test", **TINY)
    columns = ["iteration", "w_train", "w_heldout", "gap", "std_gap"]
    seed1 = table[table.seed == 1][columns].reset_index(drop=True)
    first, again = seed1.iloc[:3].reset_index(drop=True), seed1.iloc[3:].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)
    seed0 = table[table.seed == 0][columns].reset_index(drop=True)
    assert not np.allclose(seed0["w_train"], first["w_train"])  # another seed is another run
    assert list(first["iteration"]) == [0, 2, 4]
    assert set(table["method"]) == {"sn-test"} and table["gp_weight"].isna().all()
    assert (table["train_size"] == 32).all() and (table["n"] == 32).all()
    # The gap uses the same fakes in both terms: it is w_train - w_heldout; the file parses back.
    np.testing.assert_allclose(table["gap"], table["w_train"] - table["w_heldout"])
    assert len(overfitting.combine([tmp_path / "cell.csv", tmp_path / "cell.csv"], tmp_path / "all.csv")) == 18
    assert list(overfitting_final(pd.read_csv(tmp_path / "cell.csv"))["iteration"]) == [4, 4, 4]


@pytest.mark.parametrize("method", ["clip", "sn"])
def test_the_records_do_not_change_the_training(tmp_path, method):
    """Training the seed in one epoch or in one epoch per record must end at the same critic.

    The records split one `fit` into epochs over consecutive slices of the
    seed's sample order; if an epoch restarted at the start of the array, or a
    gap measurement moved the training's random state, the last rows would
    differ.
    """
    settings = dict(TINY, iterations=6, n_critic=2, batch_size=8)
    one = overfitting.run(tmp_path / "one.csv", "8gaussians", 64, method, [5], **dict(settings, records=1))
    three = overfitting.run(tmp_path / "three.csv", "8gaussians", 64, method, [5], **dict(settings, records=3))
    assert three["iteration"].tolist() == [0, 2, 4, 6] and one["iteration"].tolist() == [0, 6]
    columns = ["w_train", "w_heldout", "gap", "std_gap"]
    pd.testing.assert_frame_equal(one[columns].iloc[[-1]].reset_index(drop=True),
                                  three[columns].iloc[[-1]].reset_index(drop=True), check_exact=True)
