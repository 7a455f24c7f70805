"""`import keras_sngan` starts no backend, and still registers the layers for `keras.saving.load_model`.

Each case runs in a fresh interpreter (the import state is the subject), on
the default TensorFlow backend.
"""

import subprocess
import sys

import pytest
from conftest import subprocess_env

SAVE = """
import keras, numpy as np
from keras_sngan import SpectralNormalization
model = keras.Sequential([keras.Input((3,)), SpectralNormalization(keras.layers.Dense(2))])
model.save({path!r})
np.save({path!r} + ".npy", model.predict(np.ones((1, 3), "float32"), verbose=0))
"""

LOAD = {
    "package first": "import keras_sngan\nimport keras\n",
    "keras first": "import keras\nimport keras_sngan\n",
}


def _python(code):
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_starts_no_backend():
    out = _python(
        "import sys, keras_sngan, keras_sngan.poster.judging.claims, keras_sngan.poster.reporting.figures, "
        "keras_sngan.poster.reporting.tables, keras_sngan.poster.judging.agreement\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("order", sorted(LOAD))
def test_saved_model_loads_after_a_bare_package_import(tmp_path, order):
    path = str(tmp_path / "critic.keras")
    _python(SAVE.format(path=path))
    out = _python(
        LOAD[order] + "import numpy as np\n"
        f"model = keras.saving.load_model({path!r})\n"
        f"print(np.allclose(model.predict(np.ones((1, 3), 'float32'), verbose=0), np.load({path!r} + '.npy'), rtol=0, atol=0))\n"
        "print(type(model.layers[0]).__module__)"
    )
    assert out.split() == ["True", "keras_sngan.spectral_normalization"]
