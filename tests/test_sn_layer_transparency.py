"""Apart from the kernel, a wrapped layer behaves as if it were not wrapped.

Every check compares with an independent numpy oracle (``x @ W / sigma_svd + b``
and friends) and runs on whichever Keras backend the process uses.
"""

import numpy as np
import pytest

import keras
from keras import ops
from keras_sngan import SpectralNormalization

X = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")


def top_sv(matrix):
    return np.linalg.svd(np.asarray(matrix, dtype="float64"), compute_uv=False)[0]


def numpy_dense(x, kernel, bias):
    """The oracle: a Dense layer with the SVD-normalized kernel."""
    return x.astype("float64") @ (kernel / top_sv(kernel)) + bias


def dense_model(**dense_kwargs):
    sn = SpectralNormalization(keras.layers.Dense(2, **dense_kwargs), warmup_iterations=300)
    return keras.Sequential([keras.Input((3,)), sn]), sn


def test_stateless_call_uses_every_mapped_variable():
    """model.stateless_call (the JAX trainer's path) must see the mapped bias."""
    model, sn = dense_model()
    kernel = ops.convert_to_numpy(sn.layer.kernel.value)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    index = [i for i, v in enumerate(model.trainable_variables) if v is sn.layer.bias][0]
    outputs = {}
    for bias in (0.0, 100.0):
        values = list(trainable)
        values[index] = ops.full((2,), bias)
        y, _ = model.stateless_call(values, non_trainable, X)
        outputs[bias] = ops.convert_to_numpy(y)
        np.testing.assert_allclose(outputs[bias], numpy_dense(X, kernel, bias), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[100.0] - outputs[0.0], 100.0, rtol=1e-5)
    # and the stored bias was not touched
    np.testing.assert_array_equal(ops.convert_to_numpy(sn.layer.bias.value), 0.0)


def test_stateless_call_maps_the_kernel_too():
    """A kernel given to stateless_call is the one normalized (vectors held as stored)."""
    model, sn = dense_model()
    new_kernel = 3.0 * ops.convert_to_numpy(sn.layer.kernel.value)  # same singular vectors
    values = [new_kernel if v is sn.layer.kernel else v.value for v in model.trainable_variables]
    y, _ = model.stateless_call(values, [v.value for v in model.non_trainable_variables], X)
    # sigma is linear in W: sigma(3 W) = 3 sigma(W), so the output is unchanged
    np.testing.assert_allclose(ops.convert_to_numpy(y), numpy_dense(X, new_kernel, 0.0), rtol=1e-4, atol=1e-4)


def test_activity_regularizer_reaches_model_losses():
    model, sn = dense_model(activity_regularizer=keras.regularizers.L2(0.5))
    y = ops.convert_to_numpy(model(X))
    # Keras divides an activity-regularizer loss by the batch size
    expected = 0.5 * np.sum(y.astype("float64") ** 2) / len(X)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-5)
    # ... and in a stateless call, as losses returned to the caller
    _, _, losses = model.stateless_call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        X,
        return_losses=True,
    )
    assert len(losses) == 1 and float(losses[0]) == pytest.approx(expected, rel=1e-5)


def test_activity_regularizer_enters_the_training_loss():
    """fit's loss = mse + the wrapped layer's activity loss (SGD with lr 0: no update)."""
    model, _ = dense_model(activity_regularizer=keras.regularizers.L2(0.5))
    target = np.zeros((len(X), 2), "float32")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    y = ops.convert_to_numpy(model(X, training=False)).astype("float64")
    loss = model.fit(X, target, batch_size=len(X), epochs=1, verbose=0, shuffle=False).history["loss"][0]
    mse = np.mean(y**2)
    assert loss == pytest.approx(mse + 0.5 * np.sum(y**2) / len(X), rel=1e-3)


LOW = {"float16": "float16", "bfloat16": "bfloat16", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.mark.parametrize("policy", sorted(LOW))
@pytest.mark.parametrize("how", ["given", "inherited"])
def test_dtype_policy_decides_compute_dtype(policy, how):
    if how == "given":
        sn = SpectralNormalization(keras.layers.Dense(2), dtype=policy, warmup_iterations=300)
    else:
        keras.config.set_dtype_policy(policy)
        sn = SpectralNormalization(keras.layers.Dense(2), warmup_iterations=300)
    compute = LOW[policy]
    for training in (False, True):
        y = sn(X, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == compute
    assert sn.compute_dtype == sn.layer.compute_dtype == compute
    # sigma and the vectors stay float32; mixed policies keep a float32 master kernel
    assert [w.dtype for w in sn.non_trainable_weights] == ["float32", "float32"]
    assert keras.backend.standardize_dtype(sn.sigma().dtype) == "float32"
    assert sn.layer.kernel.dtype == ("float32" if policy.startswith("mixed") else compute)
    kernel = ops.convert_to_numpy(ops.cast(sn.layer.kernel.value, "float32"))
    got = ops.convert_to_numpy(ops.cast(sn(X), "float32"))
    np.testing.assert_allclose(got, numpy_dense(X, kernel, 0.0), rtol=0.05, atol=0.05)


def test_masks_pass_through():
    """Embedding(mask_zero=True) wrapped: the padding mask still reaches a masked average."""
    tokens = np.array([[3, 5, 0, 0], [7, 0, 0, 0]])
    sn = SpectralNormalization(keras.layers.Embedding(10, 4, mask_zero=True), warmup_iterations=300)
    model = keras.Sequential([keras.Input((4,), dtype="int32"), sn, keras.layers.GlobalAveragePooling1D()])
    got = ops.convert_to_numpy(model(tokens))
    table = ops.convert_to_numpy(sn.layer.embeddings.value)
    table = table / top_sv(table)
    expected = [table[row[row != 0]].mean(axis=0) for row in tokens]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(sn.compute_mask(tokens)), tokens != 0)


class RecordingDense(keras.layers.Dense):
    """A Dense that records the ``training`` flag and mask it is called with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def call(self, inputs, training=None, mask=None):
        self.seen.append((training, None if mask is None else ops.convert_to_numpy(mask).tolist()))
        return super().call(inputs)


def test_training_and_mask_reach_the_wrapped_layer():
    inner = RecordingDense(2)
    sn = SpectralNormalization(inner)
    sn(X, training=True)
    sn(X, training=False)
    mask = np.array([True, False, True, True])
    sn(X, mask=mask)
    assert inner.seen[-3:] == [(True, None), (False, None), (None, mask.tolist())]
