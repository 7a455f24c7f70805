"""Keras' own layer conformance suite, run on our SpectralNormalization.

``keras.src.testing.TestCase.run_layer_test`` is how Keras tests its layers
(and its own ``SpectralNormalization``): config round trip, build, symbolic and
eager calls, weight counts, a ``model.fit`` training step (jit_compile="auto")
and a mixed-precision check with ``dtype="mixed_float16"`` given to the layer
itself (every float weight must stay float32, the output must be float16).
It runs here the way Keras' ``spectral_normalization_test.py`` calls it, with
the training and mixed-precision checks on, on whichever backend the process
uses (Keras itself skips the mixed-precision check on torch without CUDA).

The two places where our layer differs from Keras' on purpose are stated by
``test_deliberate_differences_from_keras_layer``.
"""

import numpy as np
import pytest

import keras
from keras.src import testing
from keras_sngan import SpectralNormalization

RNG = np.random.default_rng(0)

# name: (wrapped-layer factory, input data, expected output shape)
CASES = {
    "dense-rank3": (lambda: keras.layers.Dense(2), RNG.uniform(size=(10, 3, 4)), (10, 3, 2)),
    "embedding": (lambda: keras.layers.Embedding(10, 4), RNG.integers(0, 10, size=(10,)), (10, 4)),
    "conv1d": (lambda: keras.layers.Conv1D(3, 2), RNG.uniform(size=(4, 6, 2)), (4, 5, 3)),
    "conv2d": (lambda: keras.layers.Conv2D(3, 2, padding="same"), RNG.uniform(size=(4, 5, 5, 2)), (4, 5, 5, 3)),
    "conv2d_transpose": (
        lambda: keras.layers.Conv2DTranspose(3, 2, strides=2),
        RNG.uniform(size=(4, 3, 3, 2)),
        (4, 6, 6, 3),
    ),
    "depthwise_conv2d": (
        lambda: keras.layers.DepthwiseConv2D(2, depth_multiplier=2),
        RNG.uniform(size=(4, 5, 5, 2)),
        (4, 4, 4, 4),
    ),
}
# Every layer with the default method; the other two methods on the layers
# where they compute something else (two reshapes; the true convolution norm).
PARAMS = [(name, "reshape") for name in CASES] + [
    ("conv2d", "bidirectional"),
    ("conv2d_transpose", "bidirectional"),
    ("conv2d", "operator"),
    ("depthwise_conv2d", "operator"),
]


# Keras' harness itself warns (a plain keras.layers.Dense too): its
# run_training_step feeds fit a generator with the default shuffle=True.
@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")
@pytest.mark.parametrize("name, method", PARAMS, ids=[f"{n}-{m}" for n, m in PARAMS])
def test_keras_run_layer_test(name, method):
    factory, data, output_shape = CASES[name]
    inner = factory()
    testing.TestCase().run_layer_test(
        SpectralNormalization,
        # One wrapped instance shared by every layer the suite builds, as in
        # Keras' own test of its SpectralNormalization.
        init_kwargs={"layer": inner, "method": method, "warmup_iterations": 5},
        input_data=data.astype("int32" if name == "embedding" else "float32"),
        expected_output_shape=output_shape,
        # the wrapped layer's own weights (kernel, bias) stay its only trainable ones;
        # one (u, v) pair of float32 vectors per operator
        expected_num_trainable_weights=1 if name == "embedding" else 2,
        expected_num_non_trainable_weights=4 if method == "bidirectional" else 2,
        expected_num_seed_generators=0,
        expected_num_losses=0,
        supports_masking=name == "dense-rank3",  # as the wrapped layer: Dense passes masks on
        run_training_check=True,
        run_mixed_precision_check=True,
    )


def test_deliberate_differences_from_keras_layer():
    """Where our layer differs from keras.layers.SpectralNormalization on purpose.

    1. The kernel is never overwritten: a training call leaves our raw kernel
       as it was; Keras' layer assigns ``W / sigma`` into it.
    2. Inference uses the stored vectors: after training, our inference output
       is ``x @ (W / sigma(u, v)) + b`` with the vectors stored by the last
       training call; Keras' layer runs the (overwritten) kernel as it stands.
    """
    x = np.random.default_rng(1).standard_normal((5, 3)).astype("float32")
    ours = SpectralNormalization(keras.layers.Dense(4), warmup_iterations=1)
    theirs = keras.layers.SpectralNormalization(keras.layers.Dense(4))
    ours(x)
    theirs(x)
    theirs.layer.kernel.assign(ours.layer.kernel.value)
    kernel = keras.ops.convert_to_numpy(ours.layer.kernel.value).copy()

    ours(x, training=True)
    theirs(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours.layer.kernel.value), kernel)
    overwritten = keras.ops.convert_to_numpy(theirs.layer.kernel.value)
    assert not np.allclose(overwritten, kernel)

    u, v = (keras.ops.convert_to_numpy(w.value) for w in ours.non_trainable_weights)
    sigma = float(np.sum(v * (u @ kernel)))  # <v, u W>: the estimate from the stored vectors
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x, training=False)), x @ (kernel / sigma), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(theirs(x, training=False)), x @ overwritten, rtol=1e-5, atol=1e-6
    )
