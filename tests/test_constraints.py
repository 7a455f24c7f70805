import numpy as np
import pytest

import keras
from keras_sngan import WeightClipping


def test_clamps_to_interval():
    w = np.array([-1.0, -0.01, -0.005, 0.0, 0.003, 0.02, 5.0], dtype="float32")
    clipped = keras.ops.convert_to_numpy(WeightClipping(0.01)(w))
    expected = np.array([-0.01, -0.01, -0.005, 0.0, 0.003, 0.01, 0.01], dtype="float32")
    np.testing.assert_array_equal(clipped, expected)


def test_applied_after_every_optimizer_update():
    layer = keras.layers.Dense(3, kernel_constraint=WeightClipping(0.05))
    model = keras.Sequential([keras.Input((4,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    model.fit(np.random.randn(16, 4), np.random.randn(16, 3) * 100, epochs=1, verbose=0)
    kernel = layer.kernel.numpy()
    assert np.abs(kernel).max() <= 0.05 + 1e-7
    assert np.isclose(np.abs(kernel).max(), 0.05)  # the huge step really hit the bound


def test_serializes():
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(WeightClipping(0.2))
    )
    assert isinstance(restored, WeightClipping) and restored.clip_value == 0.2


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "big", None])
def test_bad_clip_value(bad):
    with pytest.raises(ValueError, match="clip_value"):
        WeightClipping(bad)
