"""SpectralNormalization against independent oracles (numpy SVD, explicit Jacobians).

Runs on every Keras backend (``KERAS_BACKEND``); the few TensorFlow-only
checks (``tf.distribute``, SavedModel export, ``tf.function`` XLA) are marked.
"""

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import tensorflow_only
from hypothesis import given, settings
from hypothesis import strategies as st

import keras
from keras import ops
from keras_sngan import SpectralNormalization
from keras_sngan.linear_maps import vjp


def to_numpy(x):
    """A tensor or variable as a numpy array."""
    return ops.convert_to_numpy(x.value if isinstance(x, keras.Variable) else x)


def gradient(scalar_fn, x):
    """``d scalar_fn(x) / d x`` on the active backend (its own autodiff)."""
    x = ops.convert_to_tensor(x, "float32")
    return to_numpy(vjp(scalar_fn, x, ops.ones((), "float32")))


def top_sv(matrix):
    return np.linalg.svd(np.asarray(matrix, dtype="float64"), compute_uv=False)[0]


# Each case: a layer factory, the input shape, and the oracle reshapes written
# out with numpy from the documented Keras kernel layouts.
def dense():
    return keras.layers.Dense(7)


def conv1d():
    return keras.layers.Conv1D(5, 3, dilation_rate=2)


def conv2d():
    return keras.layers.Conv2D(6, 3, strides=2, padding="same")


def conv3d():
    return keras.layers.Conv3D(4, 2)


def conv2d_transpose():
    return keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")


def conv1d_transpose():
    return keras.layers.Conv1DTranspose(3, 3, strides=2)


def depthwise():
    return keras.layers.DepthwiseConv2D(3, depth_multiplier=2)


def embedding():
    return keras.layers.Embedding(12, 5)


def fan_in_np(kernel, kind):
    """Columns = one output feature's incoming weights."""
    if kind in ("dense", "embedding"):
        return kernel
    if kind == "conv":
        return kernel.reshape(-1, kernel.shape[-1])
    if kind == "transpose":  # (*k, out, in)
        return np.swapaxes(kernel, -1, -2).reshape(-1, kernel.shape[-2])
    if kind == "depthwise":  # (*k, in, mult)
        return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])
    raise AssertionError(kind)


def fan_out_np(kernel, kind):
    """Columns = one input feature's outgoing weights."""
    if kind in ("dense", "embedding"):
        return kernel.T
    if kind == "conv":
        return np.swapaxes(kernel, -1, -2).reshape(-1, kernel.shape[-2])
    if kind == "transpose":
        return kernel.reshape(-1, kernel.shape[-1])
    if kind == "depthwise":
        return np.swapaxes(kernel, -1, -2).reshape(-1, kernel.shape[-2])
    raise AssertionError(kind)


CASES = [
    (dense, (3, 5), "dense"),
    (dense, (2, 4, 5), "dense"),  # Dense on a rank-3 input
    (conv1d, (2, 11, 3), "conv"),
    (conv2d, (2, 8, 8, 3), "conv"),
    (conv3d, (1, 4, 4, 4, 2), "conv"),
    (conv1d_transpose, (2, 6, 2), "transpose"),
    (conv2d_transpose, (2, 5, 5, 3), "transpose"),
    (depthwise, (2, 6, 6, 3), "depthwise"),
    (embedding, (2, 3), "embedding"),
]
IDS = [f"{factory.__name__}-{len(shape)}d" for factory, shape, _ in CASES]


def make_input(shape, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "embedding":
        return rng.integers(0, 12, size=shape)
    return rng.standard_normal(shape).astype("float32")


def raw_kernel(sn):
    """The wrapped layer's kernel: its first weight for every supported type."""
    return to_numpy(sn.layer.weights[0])


def with_kernel(layer, kernel, x):
    """Call an unwrapped layer with its kernel temporarily set to ``kernel``."""
    variable = layer.weights[0]
    saved = to_numpy(variable)
    variable.assign(kernel)
    try:
        return keras.ops.convert_to_numpy(layer(x))
    finally:
        variable.assign(saved)


@pytest.mark.parametrize("factory, shape, kind", CASES, ids=IDS)
@pytest.mark.parametrize("method", ["reshape", "bidirectional"])
def test_sigma_matches_numpy_svd(factory, shape, kind, method):
    sn = SpectralNormalization(factory(), method=method, warmup_iterations=300)
    x = make_input(shape, kind)
    y = keras.ops.convert_to_numpy(sn(x))
    kernel = raw_kernel(sn)
    expected = top_sv(fan_in_np(kernel, kind))
    if method == "bidirectional":
        expected = 0.5 * (expected + top_sv(fan_out_np(kernel, kind)))
    assert float(to_numpy(sn.sigma())) == pytest.approx(expected, rel=1e-4)
    # The output is the wrapped layer's output with W / sigma_svd, bias untouched.
    np.testing.assert_allclose(y, with_kernel(sn.layer, kernel / expected, x), rtol=1e-4, atol=1e-5)


def explicit_operator_norm(layer, input_shape):
    """SVD of the linear map x -> layer(x) - layer(0), built column by column."""
    n = int(np.prod(input_shape))
    basis = np.eye(n, dtype="float32").reshape((n, *input_shape))
    zero = keras.ops.convert_to_numpy(layer(np.zeros((1, *input_shape), "float32")))
    columns = keras.ops.convert_to_numpy(layer(basis)) - zero
    return top_sv(columns.reshape(n, -1))


@pytest.mark.parametrize(
    "factory, input_shape",
    [
        (lambda: keras.layers.Conv2D(3, 3, strides=2, padding="same"), (6, 6, 2)),
        (lambda: keras.layers.Conv2D(3, 4, strides=2, padding="valid"), (7, 7, 2)),
        (lambda: keras.layers.Conv1D(4, 3, dilation_rate=2, padding="causal"), (9, 2)),
        (lambda: keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"), (4, 4, 3)),
        (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (5, 5, 2)),
        (lambda: keras.layers.Conv3D(2, 2, padding="same"), (3, 3, 3, 2)),
    ],
    ids=["conv2d-same-s2", "conv2d-valid-s2", "conv1d-causal-dil2", "conv2dT-s2", "depthwise", "conv3d"],
)
def test_operator_norm_matches_explicit_jacobian_svd(factory, input_shape):
    sn = SpectralNormalization(factory(), method="operator", warmup_iterations=500)
    x = np.random.default_rng(1).standard_normal((2, *input_shape)).astype("float32")
    y = keras.ops.convert_to_numpy(sn(x))
    true_norm = explicit_operator_norm(sn.layer, input_shape)
    assert float(to_numpy(sn.sigma())) == pytest.approx(true_norm, rel=1e-4)
    np.testing.assert_allclose(
        y, with_kernel(sn.layer, raw_kernel(sn) / true_norm, x), rtol=1e-4, atol=1e-5
    )
    # After normalization the layer's linear part really has norm 1.
    normalized = to_numpy(sn.normalized_kernel())
    saved = raw_kernel(sn)
    sn.layer.weights[0].assign(normalized)
    assert explicit_operator_norm(sn.layer, input_shape) == pytest.approx(1.0, rel=1e-4)
    sn.layer.weights[0].assign(saved)


def test_reshape_underestimates_the_operator_norm_of_a_conv():
    """The documented caveat: reshape-SN does not bound a convolution's norm."""
    layer = keras.layers.Conv2D(8, 3, padding="same")
    sn = SpectralNormalization(layer, method="reshape", warmup_iterations=300)
    sn(np.zeros((1, 8, 8, 4), "float32"))
    sn.layer.weights[0].assign(sn.normalized_kernel())
    ratio = explicit_operator_norm(sn.layer, (8, 8, 4))
    assert 1.2 < ratio <= 3.0 + 1e-6  # bounded by sqrt(kh * kw) = 3


# The layer scales whichever is smaller, the input or the kernel (same
# function, same gradient, different cost): these shapes take each path.
GRADIENT_CASES = {
    ("dense", "inputs"): (4, 5),  # 20 input entries <= 30 kernel entries
    ("dense", "kernel"): (16, 5),
    ("conv", "inputs"): (1, 3, 3, 3),  # 27 <= 108
    ("conv", "kernel"): (2, 5, 5, 3),
}


@pytest.mark.parametrize("method", ["reshape", "bidirectional"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("kind, scaled", list(GRADIENT_CASES), ids=["-".join(c) for c in GRADIENT_CASES])
def test_gradient_matches_autodiff_of_svd_normalization(kind, scaled, training, method):
    x = np.random.default_rng(2).standard_normal(GRADIENT_CASES[kind, scaled]).astype("float32")
    # The same kernel on every backend: their default initializers draw differently, and with
    # PyTorch's draw the conv case sat at the edge of the check below that the case tells the
    # exact gradient from the naive one (gap 0.0499 of the largest entry, needed 0.05). This
    # kernel tells them apart on every case (checked below, on every backend).
    shape = (x.shape[-1], 6) if kind == "dense" else (3, 3, x.shape[-1], 4)
    init = keras.initializers.Constant(0.3 * np.random.default_rng(6).standard_normal(shape).astype("float32"))
    layer = (keras.layers.Dense(6, kernel_initializer=init) if kind == "dense"
             else keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=init))
    sn = SpectralNormalization(layer, warmup_iterations=1000, method=method)
    sn(x)
    assert sn._scales_inputs(ops.convert_to_tensor(x)) == (scaled == "inputs")
    weights = np.random.default_rng(3).standard_normal(sn.compute_output_shape(x.shape)).astype("float32")
    kernel_var = sn.layer.weights[0]
    kernel0 = to_numpy(kernel_var)
    bias = to_numpy(sn.layer.bias)

    def ours(kernel):
        with keras.StatelessScope(state_mapping=[(kernel_var, kernel)]):
            return ops.sum(ops.multiply(sn(x, training=training), weights))

    def with_normalized(w):
        out = ops.matmul(x, w) if kind == "dense" else ops.conv(x, w, padding="same")
        return ops.sum(ops.multiply(ops.add(out, bias), weights))

    def exact_sigma(kernel):  # Miyato's fan-in reshape; bidirectional also averages the fan-out one
        sigma = ops.svd(ops.reshape(kernel, (-1, kernel.shape[-1])), compute_uv=False)[0]
        if method == "reshape":
            return sigma
        fan_out = ops.reshape(ops.swapaxes(kernel, -1, -2), (-1, kernel.shape[-2]))
        return (sigma + ops.svd(fan_out, compute_uv=False)[0]) / 2

    def svd_normalization(kernel):  # the oracle: autodiff through an exact SVD
        return with_normalized(kernel / exact_sigma(kernel))

    sigma0 = float(to_numpy(exact_sigma(ops.convert_to_tensor(kernel0))))

    def naive(kernel):  # sigma treated as a constant: what skipping d sigma / d W gives
        return with_normalized(kernel / sigma0)

    grad = gradient(ours, kernel0)
    oracle = gradient(svd_normalization, kernel0)
    np.testing.assert_allclose(grad, oracle, rtol=2e-3, atol=2e-5)
    # And the gradient is not the naive one that ignores sigma: the two differ by
    # far more than the tolerance above (the term <G, W/sigma> u v^T / sigma).
    naive_grad = gradient(naive, kernel0)
    gap = np.abs(naive_grad - oracle).max()
    assert gap > 0.05 * np.abs(oracle).max()
    assert np.abs(grad - naive_grad).max() > 0.9 * gap
    # The gradient with respect to the input is that of the normalized layer.
    normalized0 = kernel0 / np.float32(sigma0)

    def ours_of_input(inputs):
        return ops.sum(ops.multiply(sn(inputs, training=training), weights))

    def oracle_of_input(inputs):
        out = ops.matmul(inputs, normalized0) if kind == "dense" else ops.conv(inputs, normalized0, padding="same")
        return ops.sum(ops.multiply(out, weights))

    np.testing.assert_allclose(gradient(ours_of_input, x), gradient(oracle_of_input, x), rtol=2e-3, atol=2e-5)


def test_raw_kernel_never_overwritten_and_vectors_advance_only_in_training():
    sn = SpectralNormalization(keras.layers.Dense(8), warmup_iterations=1)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype("float32")
    sn(x)
    kernel_before = to_numpy(sn.layer.kernel).copy()
    u_before = to_numpy(sn.weights[-2]).copy()  # sn_u
    for _ in range(3):
        sn(x, training=False)
    np.testing.assert_array_equal(to_numpy(sn.weights[-2]), u_before)
    for _ in range(5):
        sn(x, training=True)
    assert not np.allclose(to_numpy(sn.weights[-2]), u_before)
    np.testing.assert_array_equal(to_numpy(sn.layer.kernel), kernel_before)
    # Inference uses exactly the kernel the last training call computed with.
    y_train = to_numpy(sn(x, training=False))
    expected = x @ to_numpy(sn.normalized_kernel()) + to_numpy(sn.layer.bias)
    np.testing.assert_allclose(y_train, expected, rtol=1e-5, atol=1e-6)


def test_builtin_keras_layer_has_the_defect_we_avoid():
    """Documents why this package exists: Keras' layer overwrites the kernel."""
    layer = keras.layers.Dense(4)
    builtin = keras.layers.SpectralNormalization(layer)
    x = np.ones((2, 3), "float32")
    builtin(x)
    before = to_numpy(layer.kernel).copy()
    builtin(x, training=True)
    assert not np.allclose(to_numpy(layer.kernel), before)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_master_kernel(policy):
    keras.config.set_dtype_policy(policy)
    sn = SpectralNormalization(keras.layers.Dense(16))
    model = keras.Sequential([keras.Input((8,)), sn, keras.layers.Activation("linear", dtype="float32")])
    assert sn.layer.kernel.dtype == "float32"
    assert all(w.dtype == "float32" for w in sn.non_trainable_weights)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    x = np.random.default_rng(0).standard_normal((32, 8)).astype("float32")
    model.fit(x, np.zeros((32, 16)), epochs=2, verbose=0)
    kernel = to_numpy(sn.layer.kernel)
    low = np.float16 if policy == "mixed_float16" else ml_dtypes.bfloat16
    rounded = kernel.astype(low).astype("float32")
    assert np.mean(kernel != rounded) > 0.9  # the master kernel kept float32 bits
    assert keras.backend.standardize_dtype(model(x).dtype) == "float32"
    assert np.isfinite(to_numpy(model(x))).all()
    # sigma is computed in float32 from the unrounded kernel
    assert float(to_numpy(sn.sigma())) == pytest.approx(top_sv(kernel), rel=1e-3)


def test_eps_guard_does_not_overflow_in_float16():
    keras.config.set_dtype_policy("mixed_float16")
    sn = SpectralNormalization(keras.layers.Dense(4, kernel_initializer="zeros"))
    y = sn(np.ones((2, 3), "float32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert np.isfinite(keras.ops.convert_to_numpy(y)).all()
    sn.layer.kernel.assign(np.full((3, 4), 1e-30, "float32"))
    assert np.isfinite(keras.ops.convert_to_numpy(sn(np.ones((2, 3), "float32"), training=True))).all()


@tensorflow_only
def test_xla_matches_eager():
    import tensorflow as tf

    sn = SpectralNormalization(keras.layers.Conv2D(4, 3, padding="same"), method="operator")
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype("float32")
    sn(x)
    eager_twin = SpectralNormalization.from_config(sn.get_config())
    eager_twin(x)
    eager_twin.set_weights(sn.get_weights())

    @tf.function(jit_compile=True)
    def train_call(inputs):
        return sn(inputs, training=True)

    for _ in range(2):
        got = train_call(x).numpy()
        want = eager_twin(x, training=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(sn.get_weights(), eager_twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def small_critic(method="reshape"):
    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            SpectralNormalization(keras.layers.Conv2D(4, 3, strides=2, padding="same"), method=method),
            keras.layers.LeakyReLU(0.1),
            keras.layers.Flatten(),
            SpectralNormalization(keras.layers.Dense(1), method=method),
        ]
    )


def test_fit_with_jit_compile():
    model = small_critic("operator")
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    x = np.random.default_rng(0).standard_normal((16, 6, 6, 2)).astype("float32")
    history = model.fit(x, np.ones((16, 1)), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for layer in model.layers:
        if isinstance(layer, SpectralNormalization):
            assert float(to_numpy(layer.sigma())) > 0


def test_mirrored_strategy_replicas_agree_with_single_device(mirrored_strategy):
    import tensorflow as tf

    x = np.random.default_rng(0).standard_normal((16, 6, 6, 2)).astype("float32")
    y = np.ones((16, 1), "float32")

    def train(strategy):
        keras.utils.set_random_seed(7)
        with strategy.scope():
            model = small_critic("bidirectional")
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        return model

    mirrored = train(mirrored_strategy)
    single = train(tf.distribute.OneDeviceStrategy(mirrored_strategy.extended.worker_devices[0]))
    for layer in mirrored.layers:
        for variable in layer.non_trainable_weights:
            replicas = [v.numpy() for v in variable.value.values] if hasattr(variable.value, "values") else []
            for other in replicas[1:]:
                np.testing.assert_array_equal(replicas[0], other)
    for a, b in zip(mirrored.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    model = small_critic("operator")
    x = np.random.default_rng(0).standard_normal((5, 6, 6, 2)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((5, 1)), epochs=2, verbose=0)
    expected = to_numpy(model(x, training=False))

    path = tmp_path / "critic.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(restored(x, training=False)), expected)
    sn = restored.layers[0]
    assert isinstance(sn, SpectralNormalization) and sn.method == "operator"


@tensorflow_only
def test_savedmodel_export_serves_the_trained_function(tmp_path):
    import tensorflow as tf

    model = small_critic("operator")
    x = np.random.default_rng(0).standard_normal((5, 6, 6, 2)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((5, 1)), epochs=2, verbose=0)
    expected = to_numpy(model(x, training=False))
    export_dir = str(tmp_path / "critic_savedmodel")
    model.export(export_dir, verbose=False)
    loaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    in_dim=st.integers(1, 8),
    activation=st.sampled_from(["relu", "leaky_relu"]),
    seed=st.integers(0, 2**16),
)
def test_sn_relu_mlp_is_1_lipschitz(widths, in_dim, activation, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((in_dim,))]
    for width in widths:
        layers.append(SpectralNormalization(keras.layers.Dense(width, activation=activation), warmup_iterations=500))
    layers.append(SpectralNormalization(keras.layers.Dense(1), warmup_iterations=500))
    model = keras.Sequential(layers)
    x = np.random.default_rng(seed).standard_normal((256, in_dim)) * 3
    # each output row depends on its own input row only: d sum / d x = per-row gradients
    norms = np.linalg.norm(gradient(lambda z: ops.sum(model(z)), x), axis=1)
    assert norms.max() <= 1.0 + 1e-3


def test_sn_gelu_network_is_not_1_lipschitz():
    """gelu'(x) = Phi(x) + x phi(x) peaks at x = sqrt(2) with value ~1.1289 > 1."""
    model = keras.Sequential(
        [
            keras.Input((1,)),
            SpectralNormalization(keras.layers.Dense(1, activation="gelu", kernel_initializer="ones")),
            SpectralNormalization(keras.layers.Dense(1, kernel_initializer="ones")),
        ]
    )
    grad = float(gradient(lambda z: ops.sum(model(z)), np.array([[math.sqrt(2.0)]]))[0, 0])
    phi = math.exp(-1.0) / math.sqrt(2 * math.pi)
    expected = 0.5 * (1 + math.erf(1.0)) + math.sqrt(2.0) * phi
    assert grad == pytest.approx(expected, rel=1e-4)
    assert grad > 1.1


@pytest.mark.parametrize(
    "layer, message",
    [
        (keras.layers.LSTM(3), "cannot wrap a LSTM.*Supported layer types"),
        (keras.layers.SeparableConv2D(3, 3), "cannot wrap a SeparableConv2D"),
        (keras.layers.BatchNormalization(), "cannot wrap a BatchNormalization"),
    ],
)
def test_unsupported_layers_are_rejected(layer, message):
    with pytest.raises(ValueError, match=message):
        SpectralNormalization(layer)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"power_iterations": 0}, r"power_iterations.*>= 1, received 0"),
        ({"power_iterations": 1.5}, r"power_iterations.*received 1.5"),
        ({"power_iterations": True}, r"power_iterations.*received True"),
        ({"method": "svd"}, r"method.*received 'svd'"),
        ({"scale": 0}, r"scale.*> 0, received 0"),
        ({"scale": -2.0}, r"scale.*received -2.0"),
        ({"scale": float("nan")}, r"scale.*received nan"),
        ({"warmup_iterations": 0}, r"warmup_iterations.*received 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpectralNormalization(keras.layers.Dense(2), **kwargs)


def test_operator_needs_a_fixed_input_size():
    sn = SpectralNormalization(keras.layers.Conv2D(2, 3), method="operator")
    with pytest.raises(ValueError, match=r"fully known input shape.*\(None, None, None, 3\)"):
        keras.Sequential([keras.Input((None, None, 3)), sn])


def test_unbuilt_layer_has_no_sigma():
    with pytest.raises(ValueError, match="needs a built layer"):
        SpectralNormalization(keras.layers.Dense(2)).sigma()


def test_config_round_trip():
    sn = SpectralNormalization(keras.layers.Conv2D(3, 2), power_iterations=2, method="bidirectional", scale=1.5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sn))
    assert (restored.power_iterations, restored.method, restored.scale) == (2, "bidirectional", 1.5)
    assert isinstance(restored.layer, keras.layers.Conv2D) and restored.layer.filters == 3


def test_scale_multiplies_the_normalized_kernel():
    sn = SpectralNormalization(keras.layers.Dense(5), scale=2.5, warmup_iterations=300)
    sn(np.ones((1, 4), "float32"))
    assert top_sv(to_numpy(sn.normalized_kernel())) == pytest.approx(2.5, rel=1e-4)
