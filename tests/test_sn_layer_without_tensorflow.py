"""The layer, the constraint and the package import work with TensorFlow absent.

A subprocess runs on the JAX backend with ``import tensorflow`` blocked
(``sys.modules["tensorflow"] = None`` makes every import of it fail), as in
an environment where TensorFlow is not installed.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

BLOCK_TF = textwrap.dedent(
    """
    import sys
    sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
    """
)


def run_without_tensorflow(code):
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TF + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax installed")


def test_layer_and_constraint_train_without_tensorflow():
    result = run_without_tensorflow(
        """
        import numpy as np
        import keras
        import keras_sngan
        from keras_sngan import SpectralNormalization, WeightClipping
        assert keras.backend.backend() == "jax"
        model = keras.Sequential([
            keras.Input((4,)),
            SpectralNormalization(keras.layers.Dense(8, activation="relu")),
            keras.layers.Dense(1, kernel_constraint=WeightClipping(0.01)),
        ])
        model.compile("adam", "mse")
        x = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
        model.fit(x, np.zeros((16, 1)), epochs=1, verbose=0)
        assert np.abs(keras.ops.convert_to_numpy(model.layers[-1].kernel.value)).max() <= 0.01
        assert "tensorflow" not in {m.split(".")[0] for m, v in sys.modules.items() if v is not None}
        print("OK")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_tensorflow_only_parts_say_what_to_install():
    """The WGAN and the built-in datasets need no TensorFlow; the TFDS image sets say what to install."""
    result = run_without_tensorflow(
        """
        import keras_sngan
        from keras_sngan import datasets
        assert keras_sngan.WGAN.__name__ == "WGAN"
        data = datasets.load_dataset("8gaussians", batch_size=4, n_critic=2, train_size=64)
        (batch,) = data.train[0]
        assert batch.shape == (8, 2) and type(data.train).__name__ == "ShuffledBatches"
        for call in (lambda: datasets.load_dataset("mnist", batch_size=4),
                     lambda: datasets.tfds_builder("mnist")):
            try:
                call()
            except (ImportError, datasets.DatasetNotAvailableError) as error:
                print("ERROR:", error)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    message = result.stdout
    assert "ERROR: dataset 'mnist' is not built in" in message
    assert "needs TensorFlow, and it is not installed" in message
    assert "keras-sngan prepare-images --dataset mnist --out DIR/mnist.npz" in message
    assert "ERROR: datasets.tfds_builder (TFDS image datasets) needs TensorFlow" in message
