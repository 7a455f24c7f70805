"""keras-sngan: spectral normalization done right for Keras 3, and a WGAN to use it.

Modules: ``models`` (toy MLPs, Miyato's standard CNN), ``datasets`` (offline
toy sets and digits, TFDS image sets), ``metrics`` (exact W1, mode coverage,
classifier Frechet distance, critic generalization gap), ``lipschitz``
(per-layer norms and Lipschitz bounds), ``gradient_probe`` (one input-gradient
probe for every method), ``callbacks`` (diagnostics),
``experiments`` (the poster's experiments, run by the Snakemake pipeline).
"""

from keras_sngan.callbacks import LayerDiagnostics, TerminateOnNonFinite
from keras_sngan.constraints import WeightClipping
from keras_sngan.spectral_normalization import SpectralNormalization
from keras_sngan.version import __version__
from keras_sngan.wgan import WGAN

__all__ = [
    "SpectralNormalization",
    "WeightClipping",
    "WGAN",
    "LayerDiagnostics",
    "TerminateOnNonFinite",
    "__version__",
]
