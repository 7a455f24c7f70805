"""Lipschitz constants of built Keras models: per-layer norms, a certified upper and lower bound.

- :func:`layer_spectral_norms` / :func:`linear_layer_norm`: a certified bound
  on the spectral norm of every linear layer, exact by SVD for dense kernels
  (Dense, Embedding), an upper bound by the FFT of the circular convolution
  that contains it for convolutions (:mod:`~keras_sngan.lipschitz.conv_norms`).
  For a ``SpectralNormalization`` layer the norm is that of the kernel it
  computes with, ``scale * W / sigma``. :func:`power_iteration_norm` is the
  power-iteration *estimate* (from below), kept as a diagnostic.
- :func:`lipschitz_upper_bound`: a certified upper bound for a feed-forward
  chain, the product over layer uses of per-factor bounds, each naming the
  method that bounded it (:mod:`~keras_sngan.lipschitz.upper`).
- :func:`lipschitz_lower_bound`: a certified lower bound, the largest slope of
  a realised input pair after a float32 rounding margin, found by search
  (:mod:`~keras_sngan.lipschitz.lower`).

The true Lipschitz constant (w.r.t. the Euclidean norm) of the function the
float32 model computes lies between the two. Everything here runs on any Keras
backend (numpy / scipy / ``keras.ops``; autodiff through the backend's own).
"""

from keras_sngan.lipschitz.activations import ACTIVATION_LIPSCHITZ, activation_lipschitz
from keras_sngan.lipschitz.conv_norms import circulant_norm_bound, convolution_norm_bound
from keras_sngan.lipschitz.lower import certified_slopes, lipschitz_lower_bound
from keras_sngan.lipschitz.upper import (
    layer_kernel,
    layer_spectral_norms,
    layer_uses,
    linear_layer_norm,
    linear_layer_norm_report,
    lipschitz_upper_bound,
    pooling_factor,
    power_iteration_norm,
)

__all__ = [
    "ACTIVATION_LIPSCHITZ",
    "activation_lipschitz",
    "certified_slopes",
    "circulant_norm_bound",
    "convolution_norm_bound",
    "layer_kernel",
    "layer_spectral_norms",
    "layer_uses",
    "linear_layer_norm",
    "linear_layer_norm_report",
    "lipschitz_lower_bound",
    "lipschitz_upper_bound",
    "pooling_factor",
    "power_iteration_norm",
]
