"""The library installs and works without TensorFlow and without the pipeline's packages.

A real new virtual environment gets what a user types, ``pip install
keras-sngan jax``, with the package as a wheel built from this checkout and
its dependencies resolved by pip (from pip's cache after ``make install``,
else from the package index). There, with ``KERAS_BACKEND=jax``:

- ``import tensorflow`` fails (it is not installed), and so do snakemake,
  pandas, POT, tensorflow-datasets and matplotlib;
- ``import keras_sngan`` imports none of them; the layer trains, `WGAN.fit`
  trains on a built-in toy set and on digits through ``load_dataset``, and
  the Lipschitz bounds are computed.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE_ONLY = ("tensorflow", "snakemake", "pandas", "ot", "tensorflow_datasets", "matplotlib")

SCRIPT = """
import importlib, sys
for name in {pipeline_only!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is importable in the lean environment")

import numpy as np
import keras
import keras_sngan
from keras_sngan import WGAN, SpectralNormalization, datasets, lipschitz, models

assert keras.backend.backend() == "jax"
loaded = {{m.split(".")[0] for m, v in sys.modules.items() if v is not None}}
assert not loaded & set({pipeline_only!r}), loaded & set({pipeline_only!r})

layer_model = keras.Sequential([keras.Input((4,)), SpectralNormalization(keras.layers.Dense(8)), keras.layers.ReLU(),
                                SpectralNormalization(keras.layers.Dense(1))])
layer_model.compile("adam", "mse")
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
layer_model.fit(x, x[:, :1], epochs=1, batch_size=16, verbose=0)
upper = lipschitz.lipschitz_upper_bound(layer_model)["bound"]
lower = lipschitz.lipschitz_lower_bound(layer_model, n_starts=4, steps=5)["bound"]
assert 0 < lower <= upper <= 1.0 + 1e-3, (lower, upper)

toy = datasets.load_dataset("8gaussians", batch_size=32, n_critic=5, seed=0, train_size=640)
gan = WGAN(models.toy_critic(width=16, lipschitz="sn"), models.toy_generator(width=16), latent_dim=2, lipschitz="sn")
gan.compile()
history = gan.fit(toy.train, epochs=2, verbose=0)
assert np.all(np.isfinite(history.history["wasserstein"]))

digits = datasets.load_dataset("digits", batch_size=32, n_critic=5, seed=0)
critic = models.toy_critic(input_dim=64, width=16, lipschitz="gp")
critic = keras.Sequential([keras.Input(digits.sample_shape), keras.layers.Flatten(), critic])
generator = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Reshape(digits.sample_shape)])
gan = WGAN(critic, generator, latent_dim=8, lipschitz="gp")
gan.compile()
history = gan.fit(digits.train, epochs=1, verbose=0)
assert np.all(np.isfinite(history.history["critic_loss"]))
loaded = {{m.split(".")[0] for m, v in sys.modules.items() if v is not None}}
assert not loaded & set({pipeline_only!r}), loaded & set({pipeline_only!r})
print("lean OK")
"""


@pytest.mark.slow
def test_pip_install_keras_sngan_jax_works_without_tensorflow(tmp_path):
    pytest.importorskip("build", reason="`build` comes with the test extra")
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "keras_sngan"):
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    run = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = [str(dist / w) for w in os.listdir(dist) if w.endswith(".whl")]

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    # the jax version the test extra pins, so pip takes it from its cache
    import importlib.metadata

    jax = f"jax=={importlib.metadata.version('jax')}"
    install = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", wheel, jax],
                             capture_output=True, text=True, timeout=900, env=env)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               env=env).stdout.lower()
    for name in ("tensorflow", "snakemake", "pandas", "pot", "tensorflow-datasets", "matplotlib"):
        assert f"\n{name}==" not in "\n" + installed, (name, installed)

    env.update(KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([python, "-c", SCRIPT.format(pipeline_only=PIPELINE_ONLY)], capture_output=True,
                            text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "lean OK" in result.stdout
