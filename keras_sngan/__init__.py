"""keras-sngan: spectral normalization done right for Keras 3, and a WGAN to use it.

Modules: ``models`` (toy MLPs, Miyato's standard CNN), ``datasets`` (offline
toy sets and digits, TFDS image sets), ``metrics`` (exact W1, mode coverage,
classifier Frechet distance, critic generalization gap), ``lipschitz``
(per-layer norms and Lipschitz bounds), ``gradient_probe`` (one input-gradient
probe for every method), ``callbacks`` (diagnostics),
``experiments`` (the poster's experiments, run by the Snakemake pipeline).

``import keras_sngan``, :class:`SpectralNormalization` and
:class:`WeightClipping` need only Keras (any backend: TensorFlow, JAX,
PyTorch). ``WGAN`` and the callbacks are imported on first use (they need
TensorFlow), so a JAX- or torch-only environment can use the layer.
"""

import importlib

from keras_sngan.constraints import WeightClipping
from keras_sngan.spectral_normalization import SpectralNormalization
from keras_sngan.version import __version__

# name -> module, imported on first attribute access (PEP 562)
_LAZY = {
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
        if name == "WGAN":  # its module imports TensorFlow: say so clearly if it is missing
            from keras_sngan.tf_required import require_tensorflow

            require_tensorflow("keras_sngan.WGAN", backend=False)
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_sngan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
