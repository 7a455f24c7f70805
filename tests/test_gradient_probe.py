"""The gradient-norm probe: exact against analytic gradients, no epsilon floor, and a pure function of the weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sngan import models
from keras_sngan.poster.running.gradient_probe import GradientProbe, input_gradient_norms


def _tanh_critic(rng):
    critic = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])
    for v in critic.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    return critic


def test_norms_match_the_analytic_gradient():
    rng = np.random.default_rng(0)
    critic = _tanh_critic(rng)
    x = rng.standard_normal((7, 3)).astype("float32")
    (w, b), (v, _) = [[t.numpy().astype(np.float64) for t in layer.weights] for layer in critic.layers]
    h = np.tanh(x.astype(np.float64) @ w + b)
    grads = ((1 - h**2) * v[:, 0]) @ w.T  # d/dx v . tanh(W^T x + b)
    np.testing.assert_allclose(input_gradient_norms(critic, x), np.linalg.norm(grads, axis=1), rtol=1e-5)


def test_exact_zero_has_no_epsilon_floor():
    critic = models.toy_critic(width=4, depth=2, lipschitz="clip", clip_value=0.01)
    for v in critic.weights:
        v.assign(np.zeros(v.shape, "float32"))
    norms = input_gradient_norms(critic, np.ones((3, 2), "float32"))
    assert np.all(norms == 0.0)


def test_probe_is_a_pure_function_of_the_weights():
    keras.utils.set_random_seed(1)
    critic = models.toy_critic(width=8, depth=2, lipschitz="sn")
    generator = models.toy_generator(latent_dim=2, width=8, depth=1)
    real = np.random.default_rng(0).standard_normal((16, 2)).astype("float32")
    probe = GradientProbe(real, latent_dim=2, seed=3)
    before = [v.numpy().copy() for v in critic.weights + generator.weights]
    tf_state = tf.random.get_global_generator().state.numpy().copy()
    np_state = np.random.get_state()[1].copy()
    first, second = probe(critic, generator), probe(critic, generator)
    assert first == second and first > 0
    after = [v.numpy() for v in critic.weights + generator.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # SN's u included: not advanced
    assert np.array_equal(tf.random.get_global_generator().state.numpy(), tf_state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    # Same seed, same points; another seed, other points.
    np.testing.assert_array_equal(GradientProbe(real, 2, seed=3).points(generator), probe.points(generator))
    assert not np.array_equal(GradientProbe(real, 2, seed=4).points(generator), probe.points(generator))


def test_probe_points_are_interpolates():
    generator = models.toy_generator(latent_dim=2, width=4, depth=1)
    real = np.full((5, 2), 3.0, "float32")
    probe = GradientProbe(real, latent_dim=2, seed=0)
    fake = keras.ops.convert_to_numpy(generator(probe.z))
    np.testing.assert_allclose(probe.points(generator), probe.alpha * real + (1 - probe.alpha) * fake, rtol=1e-6)
    assert np.all((probe.alpha >= 0) & (probe.alpha <= 1))


@pytest.mark.parametrize("kwargs, name", [({"real": np.zeros((0, 2))}, "real"), ({"latent_dim": 0}, "latent_dim")])
def test_probe_rejects_bad_arguments(kwargs, name):
    args = {"real": np.zeros((4, 2)), "latent_dim": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        GradientProbe(**args)


def test_compiled_probe_equals_the_eager_definition_and_follows_the_weights():
    """The probe's compiled function against the eager per-sample norms, before and after a weight change."""
    keras.utils.set_random_seed(2)
    critic = models.toy_critic(width=8, depth=2, lipschitz="sn")
    generator = models.toy_generator(latent_dim=2, width=8, depth=1)
    real = np.random.default_rng(1).standard_normal((32, 2)).astype("float32")
    probe = GradientProbe(real, latent_dim=2, seed=5)

    def eager():
        return float(np.mean(input_gradient_norms(critic, probe.points(generator))))

    first = probe(critic, generator)
    np.testing.assert_allclose(first, eager(), rtol=1e-6)
    for v in critic.trainable_weights + generator.trainable_weights:
        v.assign(v.numpy() * 1.5)  # the compiled function reads the variables, not a copy
    second = probe(critic, generator)
    assert second != first
    np.testing.assert_allclose(second, eager(), rtol=1e-6)
    other = models.toy_critic(width=8, depth=2, lipschitz="sn")  # another model: traced anew
    np.testing.assert_allclose(probe(other, generator), np.mean(input_gradient_norms(other, probe.points(generator))), rtol=1e-6)
