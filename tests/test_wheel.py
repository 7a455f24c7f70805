"""The wheel works outside the checkout.

`python -m build` turns a copy of the package sources into a wheel and an sdist
(no build isolation: setuptools and build come with the ``test`` extra, so
nothing is downloaded), with no setuptools deprecation warning. The wheel is
then installed into a new virtual environment outside the repository, and
`import keras_sngan`, a small `SpectralNormalization` fit and
`keras-sngan --help` run there, from a directory that is not the checkout and
with no ``PYTHONPATH``.

The new environment reuses the dependencies the tests run with instead of
downloading them again: a ``.pth`` file lists the site-packages directories
of this interpreter (a venv's ``--system-site-packages`` would give the base
interpreter's, not the ones of the venv `make test` runs in). Directories
listed in a ``.pth`` file are appended to ``sys.path`` after the new
environment's own site-packages, and the ``.pth`` files inside them are not
run, so the checkout's editable install (a ``.pth`` import hook) cannot
shadow the wheel: the test checks that ``keras_sngan.__file__`` lies in the
new environment.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Built from a copy of what the sdist needs, so the checkout gets no build/ or *.egg-info.
SOURCES = ["pyproject.toml", "README.md", "keras_sngan"]

FIT_SCRIPT = """
import os, sys
import numpy as np
import keras, keras_sngan
from keras_sngan import SpectralNormalization

venv = os.path.realpath(sys.prefix)
assert os.path.realpath(keras_sngan.__file__).startswith(venv + os.sep), keras_sngan.__file__
model = keras.Sequential([keras.Input((4,)), SpectralNormalization(keras.layers.Dense(8)),
                          keras.layers.ReLU(), SpectralNormalization(keras.layers.Dense(1))])
model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
history = model.fit(x, x[:, :1], epochs=2, batch_size=16, verbose=0)
assert np.all(np.isfinite(history.history["loss"]))
sigma = float(keras.ops.convert_to_numpy(model.layers[0].sigma()))
print("fitted", keras_sngan.__version__, keras_sngan.__file__, sigma)
"""


def _clean_env(venv):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def _run(cmd, **kwargs):
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert run.returncode == 0, f"{cmd}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    pytest.importorskip("build", reason="`build` comes with the test extra: pip install -e '.[cpu,test]'")
    src, dist, venv, elsewhere = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    src.mkdir()
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)

    build = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                 env={**os.environ, "PYTHONWARNINGS": "default"})
    output = build.stdout + build.stderr
    deprecated = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert not deprecated, deprecated
    wheels = [b for b in os.listdir(dist) if b.endswith(".whl")]
    sdists = [b for b in os.listdir(dist) if b.endswith(".tar.gz")]
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(dist)
    wheel = str(dist / wheels[0])

    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    venv_python = str(venv / "bin" / "python")
    purelib = _run([venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   env=_clean_env(str(venv))).stdout.strip()
    ours = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    with open(os.path.join(purelib, "_test_reuse_dependencies.pth"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(dict.fromkeys(ours)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", venv_python, "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "--quiet", wheel])

    elsewhere.mkdir()
    env = _clean_env(str(venv))
    fit = _run([venv_python, "-c", FIT_SCRIPT], cwd=elsewhere, env=env)
    assert "fitted" in fit.stdout and str(venv.resolve()) in fit.stdout, fit.stdout
    cli = _run([str(venv / "bin" / "keras-sngan"), "--help"], cwd=elsewhere, env=env)
    assert "usage: keras-sngan" in cli.stdout and "train" in cli.stdout
