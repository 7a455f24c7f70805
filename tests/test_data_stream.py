"""The training stream: its elements, and no tf.data autotuning thread.

The stream's elements are checked against numpy (each pass a permutation of
the training rows, a resumed stream the tail of the uninterrupted one); the
options against what the job needs: tf.data's autotuning thread off, because
at the end of ``fit`` the iterator's destructor waits for it (measured: 8 s of
a 28 s run with no CPU spent, when another job shared the two cores).
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_sngan.poster.plumbing import data_stream  # noqa: E402


def _elements(stream):
    return [e.numpy() for e in stream]


@pytest.mark.parametrize("seed", [0, 3])
def test_every_pass_is_a_permutation_of_the_training_rows(seed):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)  # row i is (2i, 2i + 1): its index is recoverable
    per_pass = data_stream.steps_per_pass(len(x), batch_size=2, n_critic=3)  # 6 samples a step: 3 steps a pass
    assert per_pass == 3
    elements = _elements(data_stream.training_stream(x, 2, 3, seed, start_step=0, num_steps=2 * per_pass))
    assert len(elements) == 2 * per_pass and all(e.shape == (6, 2) for e in elements)
    for p in range(2):
        rows = np.concatenate(elements[p * per_pass:(p + 1) * per_pass])
        indices = (rows[:, 0] / 2).astype(int)
        np.testing.assert_array_equal(rows, x[indices])  # whole rows of x
        assert len(set(indices.tolist())) == len(indices)  # each at most once in a pass
    first = np.concatenate(elements[:per_pass])
    second = np.concatenate(elements[per_pass:])
    assert not np.array_equal(first, second)  # a new order every pass


def test_a_stream_started_later_is_the_tail_of_the_uninterrupted_one():
    x = np.random.default_rng(1).standard_normal((50, 3)).astype(np.float32)
    whole = _elements(data_stream.training_stream(x, 4, 2, seed=7, start_step=0, num_steps=14))
    tail = _elements(data_stream.training_stream(x, 4, 2, seed=7, start_step=5, num_steps=9))
    assert len(tail) == 9
    for a, b in zip(whole[5:], tail):
        np.testing.assert_array_equal(a, b)


def test_the_stream_runs_without_tf_data_autotuning():
    x = np.zeros((30, 2), np.float32)
    stream = data_stream.training_stream(x, 2, 5, seed=0, start_step=0, num_steps=3)
    assert stream.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False  # the default, for contrast
