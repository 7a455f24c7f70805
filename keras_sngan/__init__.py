"""keras-sngan: spectral normalization done right for Keras 3, and a WGAN to use it."""

from keras_sngan.constraints import WeightClipping
from keras_sngan.spectral_normalization import SpectralNormalization
from keras_sngan.version import __version__

__all__ = ["SpectralNormalization", "WeightClipping", "__version__"]
