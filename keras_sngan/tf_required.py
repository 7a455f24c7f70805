"""The one place that says which parts of keras-sngan need TensorFlow.

The spectral-normalization layer, the weight-clipping constraint, the WGAN
and the Lipschitz tools run on every Keras backend that can train. The TFDS
image datasets need TensorFlow installed, and the reproduction's gradient
probe the TensorFlow backend. They call :func:`require_tensorflow` before
doing any work, so a user on another backend gets one clear message instead of
an obscure import error deep inside a call.
"""

from __future__ import annotations

import importlib.util

import keras

_INSTALL = (
    "install TensorFlow with the package's 'cpu' or 'gpu' extra "
    "(pip install 'keras-sngan[cpu]' or 'keras-sngan[gpu]')"
)


def require_tensorflow(feature: str, backend: bool = True) -> None:
    """Raise a clear error unless TensorFlow (and, if ``backend``, its Keras backend) is in use.

    Args:
        feature: what the caller is, named in the message (e.g. ``"WGAN"``).
        backend: also require ``keras.backend.backend() == "tensorflow"``.
            ``False`` for parts that only use ``tf.data`` / TFDS and can feed
            a model on any backend.

    Raises:
        ImportError: TensorFlow is not installed.
        RuntimeError: Keras runs on another backend and ``backend`` is set.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            f"{feature} needs TensorFlow, which is not installed (Keras backend: "
            f"{keras.backend.backend()!r}); {_INSTALL}."
        )
    if backend and keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{feature} runs on the TensorFlow backend only, but Keras is using the "
            f"{keras.backend.backend()!r} backend. Set KERAS_BACKEND=tensorflow before "
            f"Python imports keras (and {_INSTALL} if it is missing). "
            "SpectralNormalization, WeightClipping and keras_sngan.lipschitz work on every backend."
        )
