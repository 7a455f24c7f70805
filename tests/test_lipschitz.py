"""Lipschitz tools against analytic values and explicit matrices."""

import math

import numpy as np
import pytest

import keras
from keras_sngan import SpectralNormalization
from keras_sngan.lipschitz import (
    activation_lipschitz,
    layer_spectral_norms,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
)


def top_sv(matrix):
    return np.linalg.svd(np.asarray(matrix, "float64"), compute_uv=False)[0]


def dense_chain(kernels, activation):
    model = keras.Sequential([keras.Input((kernels[0].shape[0],))])
    for i, kernel in enumerate(kernels):
        last = i == len(kernels) - 1
        model.add(keras.layers.Dense(kernel.shape[1], activation=None if last else activation))
    for layer, kernel in zip(model.layers, kernels):
        layer.kernel.assign(kernel)
    return model


def test_dense_norms_are_exact_svd():
    rng = np.random.default_rng(0)
    kernels = [rng.standard_normal((4, 6)).astype("float32"), rng.standard_normal((6, 1)).astype("float32")]
    rows = layer_spectral_norms(dense_chain(kernels, "relu"))
    assert [r["method"] for r in rows] == ["svd", "svd"]
    for row, kernel in zip(rows, kernels):
        assert row["norm"] == pytest.approx(top_sv(kernel), rel=1e-6)


def test_conv_norm_is_the_operator_norm_of_the_explicit_map():
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(3, 3, strides=2, padding="same", use_bias=False)])
    n = 5 * 5 * 2
    basis = np.eye(n, dtype="float32").reshape(n, 5, 5, 2)
    matrix = keras.ops.convert_to_numpy(model(basis)).reshape(n, -1)
    (row,) = layer_spectral_norms(model)
    # Small enough to write out: the exact norm of its float64 matrix (certified, not estimated).
    assert row["method"] == "svd-explicit"
    assert row["norm"] == pytest.approx(top_sv(matrix), rel=1e-6)


@pytest.mark.parametrize(
    "activation, constant",
    [
        ("relu", 1.0),
        ("sigmoid", 0.25),
        ("tanh", 1.0),
        # gelu'(x) = Phi(x) + x phi(x), maximal at sqrt(2)
        ("gelu", 0.5 * (1 + math.erf(1.0)) + math.sqrt(2) * math.exp(-1) / math.sqrt(2 * math.pi)),
    ],
)
def test_upper_bound_is_product_of_norms_and_activation_constants(activation, constant):
    rng = np.random.default_rng(1)
    kernels = [rng.standard_normal(s).astype("float32") for s in [(3, 5), (5, 4), (4, 1)]]
    report = lipschitz_upper_bound(dense_chain(kernels, activation))
    expected = np.prod([top_sv(k) for k in kernels]) * constant**2
    assert report["bound"] == pytest.approx(expected, rel=1e-5)


def test_swish_constant_matches_a_dense_grid():
    x = np.linspace(-10, 10, 2_000_001)
    s = 1 / (1 + np.exp(-x))
    slope = s * (1 + x * (1 - s))
    assert activation_lipschitz("swish") == pytest.approx(slope.max(), rel=1e-6)
    assert activation_lipschitz("silu") > 1.09


def test_lower_bound_of_a_linear_model_is_its_weight_norm():
    model = dense_chain([np.array([[3.0], [4.0]], "float32")], None)
    report = lipschitz_lower_bound(model, n_starts=4, steps=5)
    # Certified slopes lose at most 2^-8 to the rounding margin, never overshoot.
    assert 5.0 * (1 - 2**-7) <= report["bound"] <= 5.0


def test_lower_bound_finds_the_slope_of_a_relu_network():
    # f(x) = relu(x) + relu(-x) = |x| has Lipschitz constant 1 exactly.
    model = dense_chain([np.array([[1.0, -1.0]], "float32"), np.array([[1.0], [1.0]], "float32")], "relu")
    low = lipschitz_lower_bound(model, n_starts=8, steps=20)["bound"]
    high = lipschitz_upper_bound(model)["bound"]
    assert 1 - 2**-7 <= low <= 1.0
    assert high == pytest.approx(2.0, rel=1e-5)  # sqrt(2) * sqrt(2): the product bound is loose here


def test_bounds_bracket_a_spectrally_normalized_critic():
    model = keras.Sequential(
        [keras.Input((4,))]
        + [SpectralNormalization(keras.layers.Dense(16, activation="leaky_relu"), warmup_iterations=300) for _ in range(3)]
        + [SpectralNormalization(keras.layers.Dense(1), warmup_iterations=300)]
    )
    high = lipschitz_upper_bound(model)["bound"]
    low = lipschitz_lower_bound(model, n_starts=4, steps=5)["bound"]
    assert high == pytest.approx(1.0, abs=1e-3)
    assert 0 < low <= high


def test_unknown_layers_and_activations_are_refused():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3)(inputs)
    residual = keras.Model(inputs, keras.layers.Add()([inputs, hidden]))
    with pytest.raises(ValueError, match="is not a chain"):
        lipschitz_upper_bound(residual)
    with pytest.raises(ValueError, match="Unknown activation 'exponential'"):
        lipschitz_upper_bound(dense_chain([np.ones((2, 2), "float32"), np.ones((2, 1), "float32")], "exponential"))
    with pytest.raises(ValueError, match="n_starts"):
        lipschitz_lower_bound(residual, n_starts=0)


def test_lower_bound_never_overshoots_a_known_constant():
    """Float32 rounding over tiny steps must not report a slope above the truth."""
    model = dense_chain([np.array([[0.6], [0.8]], "float32")], None)  # Lipschitz constant 1
    report = lipschitz_lower_bound(model, n_starts=8, steps=30, learning_rate=0.1)
    assert 1.0 - 2**-7 <= report["bound"] <= 1.0
