"""Weight clipping, the Lipschitz baseline of the original WGAN (Arjovsky et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.validation import check_number


@keras.saving.register_keras_serializable(package="keras_sngan")
class WeightClipping(keras.constraints.Constraint):
    """Clamp every entry of a weight to ``[-clip_value, clip_value]``.

    Keras applies a constraint after each optimizer update of the variable it
    is attached to (``kernel_constraint=`` / ``bias_constraint=``), which is
    exactly WGAN's "clip after every critic update".

    Args:
        clip_value: positive float ``c``; weights are clamped to ``[-c, c]``.
            Arjovsky et al. use ``c = 0.01``.

    Example:
        >>> layer = keras.layers.Dense(64, kernel_constraint=WeightClipping(0.01))

    Reference:
        Arjovsky, Chintala, Bottou. "Wasserstein GAN", ICML 2017.
    """

    def __init__(self, clip_value: float = 0.01):
        self.clip_value = check_number("clip_value", clip_value, owner="WeightClipping")

    def __call__(self, w):
        return ops.clip(w, -self.clip_value, self.clip_value)

    def get_config(self):
        return {"clip_value": self.clip_value}
