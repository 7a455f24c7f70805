"""keras-sngan: spectral normalization done right for Keras 3, and a WGAN to use it.

The library: ``models`` (toy MLPs, Miyato's standard CNN), ``datasets``
(offline toy sets and digits, TFDS image sets), ``metrics`` (exact W1, mode
coverage, classifier Frechet distance, critic generalization gap),
``lipschitz`` (per-layer norms and Lipschitz bounds), ``callbacks``
(diagnostics), ``wgan``, ``distribute`` and ``runtime`` (threads and seeds).
The reproduction of the poster, which the Snakemake pipeline runs, is the
subpackage ``keras_sngan.poster``: built on the library, never imported by it.

``import keras_sngan``, :class:`SpectralNormalization`,
:class:`WeightClipping`, ``WGAN``, the callbacks, the Lipschitz tools and
the built-in datasets need only Keras and a backend that can train
(TensorFlow, JAX or PyTorch). What needs TensorFlow itself (``tf.distribute``
in ``distribute``, the TFDS image sets, SavedModel export) says so with a
clear error on the other backends.

``import keras_sngan`` itself imports no Keras: every name above is imported
on first use (PEP 562), so a command that only reads tables and draws
figures (``keras-sngan figure``, ``claims``, ...) does not start a deep
learning backend. The layers are still registered with Keras whenever Keras
is imported, before or after this package (a post-import hook), so
``import keras_sngan`` followed by ``keras.saving.load_model(path)`` of a
model holding a ``SpectralNormalization`` works as it always did.
"""

import importlib

import wrapt

from keras_sngan.version import __version__

# name -> module, imported on first attribute access (PEP 562)
_LAZY = {
    "SpectralNormalization": "keras_sngan.spectral_normalization",
    "WeightClipping": "keras_sngan.constraints",
    "WGAN": "keras_sngan.wgan",
    "LayerDiagnostics": "keras_sngan.callbacks",
    "TerminateOnNonFinite": "keras_sngan.callbacks",
}

__all__ = [
    "SpectralNormalization",
    "WeightClipping",
    "WGAN",
    "LayerDiagnostics",
    "TerminateOnNonFinite",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_sngan' has no attribute {name!r}")


def _register_layers(_keras):
    """Register the package's serializable Keras objects (they register on import)."""
    importlib.import_module("keras_sngan.constraints")
    importlib.import_module("keras_sngan.spectral_normalization")


# Runs at once if Keras is imported already, else right after its import.
wrapt.register_post_import_hook(_register_layers, "keras")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
