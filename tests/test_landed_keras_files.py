""".keras files saved by the landed main (482f3c1, before the package was split) load and compute what they did.

The registered names they hold (``keras_sngan>SpectralNormalization``,
``keras_sngan>WeightClipping``, ``keras_sngan>WGAN``) must keep resolving;
written by ``tests/data/make_landed_keras_files.py`` on TensorFlow, loaded here
on every backend the suite runs (TensorFlow and JAX in ``make test``).
"""

import os

import numpy as np
import pytest

LANDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "landed_main")


@pytest.mark.parametrize("name", ["toy_critic_sn", "toy_critic_sn_operator", "toy_critic_clip", "standard_critic_sn"])
def test_keras_files_saved_by_the_landed_main_load(name):
    import keras

    import keras_sngan  # noqa: F401  (registers the layers)

    reference = np.load(os.path.join(LANDED, "reference.npz"))
    model = keras.saving.load_model(os.path.join(LANDED, f"{name}.keras"))
    x = reference["input_image" if name.startswith("standard") else "input_toy"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), reference[f"output_{name}"], rtol=1e-5, atol=1e-6)


def test_wgan_saved_by_the_landed_main_loads():
    import keras

    from keras_sngan import WGAN

    reference = np.load(os.path.join(LANDED, "reference.npz"))
    gan = keras.saving.load_model(os.path.join(LANDED, "wgan_sn.keras"))
    assert isinstance(gan, WGAN) and gan.get_config()["lipschitz"] == "sn"
    x = reference["input_toy"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gan.critic(x)), reference["output_wgan_sn_critic"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gan.generator(x)), reference["output_wgan_sn_generator"],
                               rtol=1e-5, atol=1e-6)
