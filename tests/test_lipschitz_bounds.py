"""Lower and upper Lipschitz bounds against models whose constant is known exactly.

Oracles: analytic constants (affine maps, 1-D ReLU / LeakyReLU chains with one
kink), and the numpy SVD of explicit Jacobians (convolutions and pooling
evaluated on basis vectors: each output entry is one kernel entry times 1 plus
zeros, so the float32 Jacobian is exact; stacks are composed in float64).
Every test runs on the active Keras backend (TensorFlow or JAX).
"""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import keras
from keras_sngan import linear_maps as lm
from keras_sngan.lipschitz import (
    layer_spectral_norms,
    lipschitz_lower_bound,
    lipschitz_upper_bound,
)

PROPERTY = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALES = st.sampled_from([1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e3])


def explicit_jacobian(fn, input_shape, dtype="float32") -> np.ndarray:
    """(inputs, outputs) matrix of a linear map, column by column from basis vectors."""
    n = int(np.prod(input_shape))
    basis = np.eye(n, dtype=dtype).reshape(n, *input_shape)
    return keras.ops.convert_to_numpy(fn(basis)).reshape(n, -1).astype("float64")


def top_sv(matrix) -> float:
    return float(np.linalg.svd(np.asarray(matrix, "float64"), compute_uv=False)[0])


def set_dense(layer, kernel, bias):
    layer.kernel.assign(np.asarray(kernel, "float32"))
    layer.bias.assign(np.asarray(bias, "float32"))


# ---------------------------------------------------------------- regressions of issue 9


def affine(weights, offset):
    model = keras.Sequential([keras.Input((len(weights),)), keras.layers.Dense(1)])
    set_dense(model.layers[0], np.reshape(weights, (-1, 1)), [offset])
    return model


def test_affine_map_with_a_large_offset_is_not_overestimated():
    # Landed main returned 18.5 here (exact constant 1).
    low = lipschitz_lower_bound(affine([1.0], 1000.0), n_starts=4, steps=10, input_scale=1e-4)["bound"]
    assert 1 - 2**-7 <= low <= 1.0


def relu_kink_chain(weights, alpha, offset, kink):
    """Width-1 chain whose every pre-activation is 0 at input ``kink`` (one kink), plus ``offset``."""
    layers = [keras.Input((1,))]
    for _ in weights[:-1]:
        layers.append(keras.layers.Dense(1))
        layers.append(keras.layers.LeakyReLU(alpha) if alpha else keras.layers.ReLU())
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for i, (layer, w) in enumerate(zip(dense, weights)):
        bias = -w * kink if i == 0 else (offset if i == len(weights) - 1 else 0.0)
        set_dense(layer, [[w]], [bias])
    return model


def kink_chain_constant(weights, alpha) -> float:
    """Exact constant: the larger |slope| of the two linear pieces on either side of the kink."""
    best = 0.0
    for side in (1.0, -1.0):
        slope, direction = 1.0, side
        for w in weights[:-1]:
            pre = w * direction
            gain = 1.0 if pre > 0 else alpha
            slope *= w * gain
            direction = np.sign(pre) * gain
        best = max(best, abs(slope * weights[-1]))
    return best


def test_relu_chain_through_a_kink_is_not_overestimated():
    # Landed main returned 1.0036 here (exact constant 1).
    model = relu_kink_chain([1.0, 1.0, 1.0], 0.0, 0.0, 0.0)
    low = lipschitz_lower_bound(model, n_starts=4, steps=10, input_scale=1e-3)["bound"]
    assert low <= 1.0
    assert lipschitz_upper_bound(model)["bound"] >= 1.0


# ---------------------------------------------------------------- property tests: lower bound


@PROPERTY
@given(
    weights=st.lists(st.floats(-3, 3).filter(lambda w: abs(w) > 0.05), min_size=1, max_size=4),
    offset=st.sampled_from([0.0, 1.0, -1e3, 1e5, 3e6]),
    scale=SCALES,
)
def test_lower_bound_of_affine_maps_with_large_offsets(weights, offset, scale):
    exact = float(np.linalg.norm(np.float32(weights).astype("float64")))
    model = affine(weights, offset)
    low = lipschitz_lower_bound(model, n_starts=2, steps=2, input_scale=scale)["bound"]
    assert low <= exact * (1 + 1e-6)
    assert low >= exact * (1 - 2**-6)  # a linear map: every resolved pair is steepest
    assert lipschitz_upper_bound(model)["bound"] >= exact


@PROPERTY
@given(
    weights=st.lists(st.floats(-2, 2).filter(lambda w: abs(w) > 0.1), min_size=2, max_size=5),
    alpha=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
    offset=st.sampled_from([0.0, 10.0, -1e3, 1e4]),
    kink=st.sampled_from([0.0, 1e-3, -0.5, 7.0]),
    scale=SCALES,
)
def test_lower_bound_of_relu_chains_through_kinks(weights, alpha, offset, kink, scale):
    weights = [float(np.float32(w)) for w in weights]
    exact = kink_chain_constant(weights, alpha)
    model = relu_kink_chain(weights, alpha, offset, kink)
    starts = np.array([[kink]])
    low = lipschitz_lower_bound(model, n_starts=2, steps=2, input_scale=scale, starts=starts)["bound"]
    assert low <= exact * (1 + 1e-6)
    assert lipschitz_upper_bound(model)["bound"] >= exact * (1 - 1e-12)


def conv_output_size(size, specs):
    """Spatial size after the stack (Keras' rule); below 1 the stack cannot be built."""
    for _, kernel, stride, dilation, padding in specs:
        size = -(-size // stride) if padding == "same" else (size - dilation * (kernel - 1) - 1) // stride + 1
        if size < 1:
            return size
    return size


def float64_copy(model, shape):
    """The same layers and weights computed in float64: the exact linear map the float32 weights define,
    without the float32 rounding of its products and sums (a float32 Jacobian is only accurate to ~1e-7)."""
    layers = [type(layer).from_config({**layer.get_config(), "dtype": "float64"}) for layer in model.layers]
    copy = keras.Sequential([keras.Input(shape, dtype="float64")] + layers)
    copy.set_weights([np.asarray(w, "float64") for w in model.get_weights()])
    return copy


def float64_enabled():
    """A context in which the backend computes float64 (JAX computes float32 unless x64 is enabled)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True) if hasattr(jax, "enable_x64") else jax.experimental.enable_x64()
    return contextlib.nullcontext()


def conv_stack(rank, specs, size, channels):
    shape = (size,) * rank + (channels,)
    conv = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[rank]
    layers = [keras.Input(shape)]
    for filters, kernel, stride, dilation, padding in specs:
        layers.append(conv(filters, kernel, strides=stride, dilation_rate=dilation, padding=padding, use_bias=False))
    layers += [keras.layers.Flatten(), keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(50.0))]
    return keras.Sequential(layers), shape


CONV_SPEC = st.tuples(
    st.integers(1, 3),  # filters
    st.integers(1, 3),  # kernel size
    st.integers(1, 2),  # stride
    st.integers(1, 2),  # dilation
    st.sampled_from(["valid", "same"]),
).filter(lambda s: s[2] == 1 or s[3] == 1)


@PROPERTY
@given(rank=st.sampled_from([1, 2]), specs=st.lists(CONV_SPEC, min_size=1, max_size=2), scale=SCALES, seed=st.integers(0, 99))
def test_bounds_of_linear_conv_stacks_bracket_the_explicit_jacobian(rank, specs, scale, seed):
    assume(conv_output_size(7, specs) >= 1)  # a stack whose output would be empty is not a model
    keras.utils.set_random_seed(seed)
    model, shape = conv_stack(rank, specs, 7, 2)
    biasless = keras.Sequential(
        [keras.Input(shape)] + [layer for layer in model.layers if not isinstance(layer, keras.layers.Dense)]
    )
    dense = model.layers[-1]
    # f(x) = J x + const with J = (conv chain Jacobian) @ dense kernel: exact constant ||J||, J computed in float64
    # (composed in float32 it came out 1.5e-8 above the correct bound on JAX: the oracle's rounding, not the bound's).
    with float64_enabled():
        jacobian = explicit_jacobian(float64_copy(biasless, shape), shape, dtype="float64")
    exact = float(np.linalg.norm(jacobian @ keras.ops.convert_to_numpy(keras.ops.copy(dense.kernel.value)).astype("float64")))
    low = lipschitz_lower_bound(model, n_starts=2, steps=2, input_scale=scale)["bound"]
    assert low <= exact * (1 + 1e-6)
    assert lipschitz_upper_bound(model)["bound"] >= exact * (1 - 1e-12)


# ---------------------------------------------------------------- property tests: upper bound


LAYER_CASES = st.one_of(
    st.builds(
        lambda f, k, s, r, p, g: ("conv", dict(filters=2 * g * f, kernel_size=k, strides=s, dilation_rate=r, padding=p, groups=g)),
        st.integers(1, 2), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
        st.sampled_from(["valid", "same"]), st.sampled_from([1, 2]),
    ),
    st.builds(
        lambda k, s, r, p, m: ("depthwise", dict(kernel_size=k, strides=s, dilation_rate=r, padding=p, depth_multiplier=m)),
        st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["valid", "same"]), st.integers(1, 2),
    ),
    st.builds(
        lambda f, k, s, p: ("transpose", dict(filters=f, kernel_size=k, strides=s, padding=p)),
        st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.sampled_from(["valid", "same"]),
    ),
).filter(lambda case: case[1].get("strides", 1) == 1 or case[1].get("dilation_rate", 1) == 1)


def make_layer(rank, case):
    kind, kwargs = case
    cls = {
        ("conv", 1): keras.layers.Conv1D, ("conv", 2): keras.layers.Conv2D,
        ("depthwise", 1): keras.layers.DepthwiseConv1D, ("depthwise", 2): keras.layers.DepthwiseConv2D,
        ("transpose", 1): keras.layers.Conv1DTranspose, ("transpose", 2): keras.layers.Conv2DTranspose,
    }[(kind, rank)]
    return cls(use_bias=False, **kwargs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rank=st.sampled_from([1, 2]), case=LAYER_CASES, size=st.integers(4, 9), seed=st.integers(0, 99))
def test_convolution_norm_is_certified_against_the_explicit_jacobian(rank, case, size, seed):
    keras.utils.set_random_seed(seed)
    kernel = case[1]["kernel_size"]
    reach = (kernel - 1) * case[1].get("dilation_rate", 1) + 1
    size = max(size, reach)  # "valid" needs the kernel to fit
    shape = (size,) * rank + (4,)
    model = keras.Sequential([keras.Input(shape), make_layer(rank, case)])
    exact = top_sv(explicit_jacobian(model, shape))
    (row,) = layer_spectral_norms(model)
    assert row["norm"] >= exact * (1 - 1e-12)
    if row["method"] == "svd-explicit":  # written out from the kernel: exact, same padding rule as Keras
        assert row["norm"] == pytest.approx(exact, rel=1e-6)
    else:
        assert row["method"] == "fft-circulant"
    # The circulant bound alone is certified too, and not uselessly loose without strides.
    from keras_sngan.lipschitz import conv_norms

    layer = model.layers[0]
    kernel = keras.ops.convert_to_numpy(keras.ops.copy(layer.kernel.value))
    limit = conv_norms.EXPLICIT_MAX_ENTRIES
    try:
        conv_norms.EXPLICIT_MAX_ENTRIES = 0  # force the circulant bound
        circulant = conv_norms.convolution_norm_report(layer, lm.layer_kind(layer), kernel, (1, *shape))
    finally:
        conv_norms.EXPLICIT_MAX_ENTRIES = limit
    assert circulant[1] == "fft-circulant"
    assert circulant[0] >= exact * (1 - 1e-12)
    if case[1].get("strides", 1) == 1 and case[0] != "transpose":
        assert circulant[0] <= 3 * exact + 1e-6


POOLING = st.tuples(
    st.sampled_from(["average", "max"]),
    st.integers(1, 3),  # pool size
    st.integers(1, 3),  # stride
    st.sampled_from(["valid", "same"]),
    st.integers(3, 7),  # input size (odd sizes included)
)


@PROPERTY
@given(rank=st.sampled_from([1, 2]), case=POOLING, seed=st.integers(0, 99))
def test_pooling_factors_are_certified(rank, case, seed):
    kind, pool, stride, padding, size = case
    cls = {
        ("average", 1): keras.layers.AveragePooling1D, ("average", 2): keras.layers.AveragePooling2D,
        ("max", 1): keras.layers.MaxPooling1D, ("max", 2): keras.layers.MaxPooling2D,
    }[(kind, rank)]
    shape = (size,) * rank + (2,)
    model = keras.Sequential([keras.Input(shape), cls(pool, strides=stride, padding=padding)])
    (factor,) = lipschitz_upper_bound(model)["factors"]
    if kind == "average":  # linear: the exact norm is the SVD of its Jacobian
        assert factor["method"] == "pooling-average-svd"
        # Jacobian entries are 1/count rounded to float32 (relative error <= 2^-24).
        assert factor["factor"] == pytest.approx(top_sv(explicit_jacobian(model, shape)), rel=1e-6)
    else:  # piecewise linear: every local Jacobian's norm is a lower bound on the constant
        assert factor["method"] == "pooling-max-overlap"
        rng = np.random.default_rng(seed)
        x = keras.ops.convert_to_tensor(rng.standard_normal((1, *shape)).astype("float32"))
        n = int(np.prod(shape))
        values = keras.ops.convert_to_numpy(model(x)).reshape(-1)
        flat = keras.ops.convert_to_numpy(x).reshape(-1)
        # Local Jacobian: each output copies the input entry equal to its value (ties have probability 0).
        rows = np.array([np.flatnonzero(flat == v)[0] for v in values])
        local = np.zeros((len(values), n))
        local[np.arange(len(values)), rows] = 1.0
        assert factor["factor"] >= top_sv(local) * (1 - 1e-12)  # the oracle SVD rounds too


def test_average_pooling_same_on_odd_input_has_norm_one():
    # Landed main returned 0.5 (border windows average fewer elements).
    model = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.AveragePooling2D(2, padding="same")])
    exact = top_sv(explicit_jacobian(model, (5, 5, 1)))
    assert exact == pytest.approx(1.0, rel=1e-9)
    assert lipschitz_upper_bound(model)["bound"] >= exact


def test_a_layer_used_twice_is_counted_twice():
    dense = keras.layers.Dense(2, use_bias=False)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, dense(dense(inputs)))
    kernel = np.array([[2.0, 1.0], [0.0, 2.0]], "float32")
    dense.kernel.assign(kernel)
    exact = top_sv(kernel.astype("float64") @ kernel.astype("float64"))  # x -> x K K
    report = lipschitz_upper_bound(model)
    assert [f["name"] for f in report["factors"]] == [dense.name, dense.name]
    assert report["bound"] >= exact > top_sv(kernel)  # counting one use would not bound it


def test_threshold_relu_is_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2), keras.layers.ReLU(threshold=0.5)])
    with pytest.raises(ValueError, match="threshold=0.5"):
        lipschitz_upper_bound(model)


def test_the_lipschitz_package_runs_without_tensorflow():
    """keras_sngan.lipschitz needs keras.ops/numpy/scipy only (TensorFlow blocked, JAX backend)."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: no non-TensorFlow backend to run on")
    package = os.path.join(os.path.dirname(__file__), os.pardir, "keras_sngan")
    code = (
        "import sys, types\n"
        "sys.modules['tensorflow'] = None\n"
        # keras_sngan/__init__ imports the TF-only WGAN: load the subpackage without it.
        f"pkg = types.ModuleType('keras_sngan'); pkg.__path__ = [{os.path.abspath(package)!r}]\n"
        "sys.modules['keras_sngan'] = pkg\n"
        "import keras\n"
        "from keras_sngan.lipschitz import lipschitz_lower_bound, lipschitz_upper_bound\n"
        "m = keras.Sequential([keras.Input((3, 1)), keras.layers.Conv1D(1, 2, padding='same'), keras.layers.Flatten(),"
        " keras.layers.Dense(1)])\n"
        "up = lipschitz_upper_bound(m)['bound']; low = lipschitz_lower_bound(m, n_starts=2, steps=1)['bound']\n"
        "assert 0 < low <= up, (low, up)\n"
        "print('ok', keras.backend.backend())\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok jax")
