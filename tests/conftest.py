"""Test set-up shared by every module.

The CPU is split into two logical devices before TensorFlow initializes, so
``tf.distribute.MirroredStrategy`` tests run two replicas on one machine.
Everything else keeps running on the first device.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a known seed and the float32 dtype policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy for the whole session.

    TensorFlow's collective ops keep per-process instance keys: several
    MirroredStrategy objects in one process can collide ("Shape mismatch in
    the collective instance ..."), so every test shares this one.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest must split the CPU into 2 logical devices"
    return tf.distribute.MirroredStrategy(devices)
