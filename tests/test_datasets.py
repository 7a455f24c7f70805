import os
import random
import time

import numpy as np
import pytest
import sklearn.datasets
import tensorflow_datasets as tfds

from keras_sngan import datasets
from keras_sngan.datasets import (
    DatasetNotAvailableError,
    gaussian_mixture_modes,
    load_arrays,
    load_dataset,
    load_digits_split,
    sample_toy,
)
from keras_sngan.metrics import wasserstein1


def _gan_toy_reference(name, n, seed):
    """Straight transcription of gan_toy.py's inf_train_gen (one batch of n)."""
    np.random.seed(seed)
    random.seed(seed)
    if name == "8gaussians":
        s = 1.0 / np.sqrt(2)
        centers = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
        centers = [(2.0 * x, 2.0 * y) for x, y in centers]
        points = []
        for _ in range(n):
            point = np.random.randn(2) * 0.02
            cx, cy = random.choice(centers)
            points.append((point[0] + cx, point[1] + cy))
        return np.array(points) / 1.414
    if name == "25gaussians":
        points = []
        for _ in range(n // 25):
            for x in range(-2, 3):
                for y in range(-2, 3):
                    point = np.random.randn(2) * 0.05
                    points.append((point[0] + 2 * x, point[1] + 2 * y))
        return np.array(points) / 2.828
    data = sklearn.datasets.make_swiss_roll(n_samples=n, noise=0.25)[0]
    return data[:, [0, 2]] / 7.5


@pytest.mark.parametrize("name", datasets.TOY_DATASETS)
def test_toy_sets_match_gan_toy_py(name):
    """Our sampler and a transcription of the original are the same distribution.

    Exact W1 between them must be as small as between two samples of the
    original; a wrong scale, center or noise level breaks this by far.
    """
    n = 1000
    ours = sample_toy(name, n, seed=0)
    reference = _gan_toy_reference(name, n, seed=1)
    floor = wasserstein1(_gan_toy_reference(name, n, seed=2), reference)
    assert ours.shape == (n, 2) and ours.dtype == np.float32
    assert wasserstein1(ours, reference) < 1.3 * floor + 0.005


@pytest.mark.parametrize("name", datasets.TOY_DATASETS)
def test_toy_sets_match_gan_toy_py_moments(name):
    """Per-coordinate std and mean radius agree with the original to ~1%.

    Catches scale errors too small for the W1 test (e.g. 7.0 instead of 7.5).
    """
    ours = sample_toy(name, 20_000, seed=0)
    reference = _gan_toy_reference(name, 20_000, seed=1)
    np.testing.assert_allclose(ours.std(0), reference.std(0), rtol=0.025)
    np.testing.assert_allclose(
        np.linalg.norm(ours, axis=1).mean(), np.linalg.norm(reference, axis=1).mean(), rtol=0.015
    )


@pytest.mark.parametrize(
    "name, num_modes, std", [("8gaussians", 8, 0.02 / 1.414), ("25gaussians", 25, 0.05 / 2.828)]
)
def test_mixture_modes_and_std(name, num_modes, std):
    centers, got_std = gaussian_mixture_modes(name)
    assert centers.shape == (num_modes, 2)
    assert got_std == pytest.approx(std)
    if name == "8gaussians":
        np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 2.0 / 1.414)
    else:
        np.testing.assert_allclose(np.unique(centers[:, 0]), np.array([-4, -2, 0, 2, 4]) / 2.828)
    x = sample_toy(name, 20_000, seed=3)
    dist = np.linalg.norm(x[:, None] - centers[None], axis=-1)
    nearest = dist.argmin(1)
    residual = x - centers[nearest]
    assert residual.std() == pytest.approx(std, rel=0.03)
    counts = np.bincount(nearest, minlength=num_modes)
    assert counts.min() > 0.8 * len(x) / num_modes  # every mode, about equally often


def test_sample_toy_is_seeded():
    np.testing.assert_array_equal(sample_toy("swissroll", 50, seed=7), sample_toy("swissroll", 50, seed=7))
    assert not np.allclose(sample_toy("8gaussians", 50, seed=7), sample_toy("8gaussians", 50, seed=8))


def test_toy_load_dataset_batches_for_n_critic():
    data = load_dataset("8gaussians", 32, n_critic=5, seed=0, train_size=1000, heldout_size=300)
    assert data.steps_per_epoch == 1000 // 160
    batches = list(data.train)
    assert len(batches) == data.steps_per_epoch
    assert all(b.shape == (160, 2) and b.dtype.name == "float32" for b in batches)
    assert data.heldout.shape == (300, 2) and data.heldout_labels is None
    assert data.sample_shape == (2,)
    # The training sample is what load_arrays returns, and held-out points are not in it.
    x_train, _ = load_arrays("8gaussians", "train", n=1000, seed=0)
    seen = np.concatenate([b.numpy() for b in batches])
    assert set(map(tuple, seen)) <= set(map(tuple, x_train))
    assert not set(map(tuple, data.heldout)) & set(map(tuple, x_train))
    np.testing.assert_array_equal(load_arrays("8gaussians", "test", n=300, seed=0)[0], data.heldout)


def test_shuffling_is_seeded_and_reshuffles_every_epoch():
    first = load_dataset("25gaussians", 50, seed=4, train_size=500)
    again = load_dataset("25gaussians", 50, seed=4, train_size=500)
    epoch1 = [b.numpy() for b in first.train]
    epoch2 = [b.numpy() for b in first.train]
    np.testing.assert_array_equal(epoch1[0], next(iter(again.train)).numpy())
    assert not np.array_equal(epoch1[0], epoch2[0])
    np.testing.assert_array_equal(np.sort(np.concatenate(epoch1), 0), np.sort(np.concatenate(epoch2), 0))


def test_digits_split_is_fixed_stratified_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_split()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.min() == -1.0 and x_train.max() == 1.0
    full = sklearn.datasets.load_digits()
    # Together the two parts are exactly the 1797 images, scaled x / 8 - 1.
    ours = np.concatenate([x_train, x_test]).reshape(1797, 64)
    np.testing.assert_array_equal(
        np.sort((ours + 1.0) * 8.0, axis=0), np.sort(full.data.astype(np.float32), axis=0)
    )
    expected = np.bincount(full.target) * 0.2
    assert np.all(np.abs(np.bincount(y_test) - expected) <= 1)  # stratified
    # Independent of the training seed:
    a = load_dataset("digits", 64, seed=1)
    b = load_dataset("digits", 64, seed=2)
    np.testing.assert_array_equal(a.heldout, b.heldout)
    np.testing.assert_array_equal(a.heldout_labels, y_test)
    assert not np.array_equal(next(iter(a.train)).numpy(), next(iter(b.train)).numpy())


def test_digits_batches():
    data = load_dataset("digits", 64, n_critic=5, seed=0)
    assert data.steps_per_epoch == 1437 // 320 == len(list(data.train))
    assert next(iter(data.train)).shape == (320, 8, 8, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "imagenet_typo"}, r"`name`='imagenet_typo'.*8gaussians.*digits.*mnist"),
        ({"name": 3}, r"`name` must be a string, received 3"),
        ({"name": "digits", "batch_size": 300, "n_critic": 5}, r"5 \* 300 = 1500 exceeds the 1437"),
        ({"name": "8gaussians", "batch_size": 0}, r"`batch_size` must be an integer >= 1, received 0"),
        ({"name": "8gaussians", "n_critic": 2.5}, r"`n_critic` must be an integer >= 1, received 2.5"),
        ({"name": "swissroll", "train_size": -1}, r"`train_size` must be an integer >= 1"),
        ({"name": "mnist", "split": ""}, r"`split` must be a non-empty TFDS split"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs, match):
    kwargs = {"batch_size": 8, **kwargs}
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        load_dataset(kwargs.pop("name"), kwargs.pop("batch_size"), **kwargs)
    assert time.perf_counter() - start < 5.0


def test_load_arrays_rejects_unknown_builtin_split():
    with pytest.raises(ValueError, match=r"`split`.*'train' or 'test', received 'validation'"):
        load_arrays("digits", "validation")


# --- TFDS -------------------------------------------------------------------


@pytest.fixture
def mnist_metadata_dir(tmp_path):
    """A TFDS data_dir holding only MNIST's metadata (40 train, 10 test examples).

    `tfds.testing.mock_data` then serves random examples as if the data were
    prepared there.
    """
    return write_mnist_metadata(tmp_path)


def write_mnist_metadata(tmp_path):
    """MNIST's TFDS metadata (40 train, 10 test examples) in ``tmp_path``; returns it as a data_dir."""
    os.makedirs(tmp_path, exist_ok=True)
    builder = tfds.builder("mnist", data_dir=str(tmp_path))
    os.makedirs(builder.data_dir)
    template = tfds.core.naming.ShardedFileTemplate(
        data_dir=builder.data_dir, dataset_name="mnist", filetype_suffix="tfrecord"
    )
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(
                    name=split, shard_lengths=[n], num_bytes=0,
                    filename_template=template.replace(split=split),
                )
                for split, n in (("train", 40), ("test", 10))
            ]
        )
    )
    builder.info.write_to_directory(builder.data_dir)
    return str(tmp_path)


def test_tfds_dataset_through_mock_data(mnist_metadata_dir):
    with tfds.testing.mock_data(num_examples=40, data_dir=mnist_metadata_dir):
        data = load_dataset("mnist", 8, n_critic=2, seed=0, data_dir=mnist_metadata_dir)
        batches = list(data.train)
        raw = tfds.load("mnist", split="test", data_dir=mnist_metadata_dir)
        raw_images = np.stack([ex["image"] for ex in raw.as_numpy_iterator()])
    assert data.steps_per_epoch == 40 // 16 == len(batches)
    assert all(b.shape == (16, 28, 28, 1) for b in batches)
    assert data.sample_shape == (28, 28, 1)
    assert data.heldout.dtype == np.float32 and data.heldout_labels.dtype == np.int64
    # Pixels map 0..255 -> [-1, 1] exactly as x / 127.5 - 1.
    np.testing.assert_allclose(data.heldout, raw_images.astype(np.float32) / 127.5 - 1.0, atol=1e-6)
    assert -1.0 <= data.heldout.min() and data.heldout.max() <= 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, r"`split`='validation' is not a valid split.*\['train', 'test'\]"),
        ({"heldout_split": "val"}, r"`heldout_split`='val' is not a valid split"),
        ({"batch_size": 41}, r"1 \* 41 = 41 exceeds the 40 training samples of 'mnist'"),
    ],
)
def test_tfds_bad_split_or_batch(mnist_metadata_dir, kwargs, match):
    kwargs = {"batch_size": 8, **kwargs}
    with tfds.testing.mock_data(num_examples=40, data_dir=mnist_metadata_dir):
        with pytest.raises(ValueError, match=match):
            load_dataset("mnist", kwargs.pop("batch_size"), data_dir=mnist_metadata_dir, **kwargs)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_tfds_data_fails_fast_offline(tmp_path, name):
    start = time.perf_counter()
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset(name, 64, data_dir=str(tmp_path))
    assert time.perf_counter() - start < 20.0
    message = str(info.value)
    assert str(tmp_path) in message and "download=True" in message and "manual_dir" in message
