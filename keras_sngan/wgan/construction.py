"""Checks a WGAN runs at construction and compile time, before any training.

Every error names the argument (or model), the value received and what is
allowed.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.model_layers import (
    find_batch_normalization_layers,
    find_spectral_normalization_layers,
)
from keras_sngan.validation import check_int, check_number

LIPSCHITZ_METHODS = ("clip", "gp", "sn", "none")

#: Keras backends the WGAN trains on (they have automatic differentiation).
TRAINING_BACKENDS = ("tensorflow", "jax", "torch")


def check_backend():
    """The WGAN needs gradients: refuse Keras' inference-only backends (numpy, openvino)."""
    backend = keras.backend.backend()
    if backend not in TRAINING_BACKENDS:
        raise RuntimeError(
            f"WGAN trains on the {', '.join(TRAINING_BACKENDS)} backends, but Keras is using the "
            f"{backend!r} backend, which has no automatic differentiation. Set KERAS_BACKEND to one "
            "of them before Python imports keras (e.g. KERAS_BACKEND=jax)."
        )


def check_arguments(lipschitz, critic, generator, latent_dim, n_critic, gp_weight, clip_value):
    """Validate the scalar arguments and model types; return the cleaned numbers."""
    if lipschitz not in LIPSCHITZ_METHODS:
        raise ValueError(
            f"WGAN: `lipschitz` must be one of {LIPSCHITZ_METHODS}, received {lipschitz!r}."
        )
    if not isinstance(critic, keras.Model):
        raise ValueError(f"WGAN: `critic` must be a keras.Model, received {critic!r}.")
    if not isinstance(generator, keras.Model):
        raise ValueError(f"WGAN: `generator` must be a keras.Model, received {generator!r}.")
    return (
        check_int("latent_dim", latent_dim, 1, owner="WGAN"),
        check_int("n_critic", n_critic, 1, owner="WGAN"),
        check_number("gp_weight", gp_weight, 0.0, strict=False, owner="WGAN"),
        check_number("clip_value", clip_value, 0.0, owner="WGAN"),
    )


def check_models(critic, generator, latent_dim):
    """The generator takes ``latent_dim`` noise and the critic scores its samples."""
    inputs = getattr(generator, "inputs", None)
    if inputs:
        got = inputs[0].shape[-1]
        if got is not None and got != latent_dim:
            raise ValueError(
                f"WGAN: `latent_dim`={latent_dim} does not match the generator "
                f"{generator.name!r}, whose input is {tuple(inputs[0].shape)}; "
                f"pass latent_dim={got}."
            )
    try:
        fake = generator(ops.zeros((2, latent_dim)), training=False)
    except Exception as error:
        raise ValueError(
            f"WGAN: the generator {generator.name!r} cannot be called on noise of "
            f"shape (batch, latent_dim={latent_dim}): {error}"
        ) from None
    try:
        scores = critic(fake, training=False)
    except Exception as error:
        raise ValueError(
            f"WGAN: the critic {critic.name!r} cannot be called on generator "
            f"samples of shape {tuple(fake.shape)}: {error}"
        ) from None
    if tuple(scores.shape) not in ((2, 1), (2,)):
        raise ValueError(
            f"WGAN: the critic must output one score per sample, shape (batch, 1) or "
            f"(batch,), but critic {critic.name!r} returns shape "
            f"{tuple(scores.shape)[1:]} per batch (got {tuple(scores.shape)} for a "
            "batch of 2)."
        )


def check_critic_for_method(critic, lipschitz):
    """The critic's layers must suit the Lipschitz method."""
    if lipschitz == "sn" and not find_spectral_normalization_layers(critic):
        raise ValueError(
            "WGAN: lipschitz='sn' needs a critic containing SpectralNormalization "
            f"layers, but critic {critic.name!r} has none. Wrap its linear layers "
            "(e.g. keras_sngan.models.toy_critic(lipschitz='sn')) or choose "
            f"lipschitz from {LIPSCHITZ_METHODS}."
        )
    if lipschitz == "gp":
        batch_norms = find_batch_normalization_layers(critic)
        if batch_norms:
            names = [layer.name for layer in batch_norms]
            raise ValueError(
                f"WGAN: lipschitz='gp' penalizes each sample's input gradient, which is not "
                f"defined for a critic with BatchNormalization (it mixes the samples of a "
                f"batch), but critic {critic.name!r} contains BatchNormalization layers "
                f"{names}. Use LayerNormalization (as Gulrajani et al. suggest) or no "
                "normalization in the critic, or another `lipschitz` method."
            )


def check_compile_kwargs(kwargs, lipschitz="sn"):
    """Refuse the `keras.Model.compile` arguments a WGAN does not use (or cannot use on this backend)."""
    if lipschitz == "gp" and kwargs.get("jit_compile") is True and keras.backend.backend() == "torch":
        raise ValueError(
            "WGAN.compile: jit_compile=True on the torch backend compiles the step with "
            "torch.compile, whose aot_autograd cannot differentiate twice, and "
            "lipschitz='gp' differentiates the critic's input gradient. Use jit_compile=False "
            "(or 'auto') on torch, or the JAX backend for a compiled (XLA) gradient-penalty step."
        )
    for key in ("optimizer", "loss", "metrics", "weighted_metrics", "loss_weights"):
        if kwargs.get(key) is not None:
            raise ValueError(
                f"WGAN.compile: `{key}` is not supported; pass `critic_optimizer` and "
                f"`generator_optimizer` (the WGAN losses are fixed). Received {key}={kwargs[key]!r}."
            )
        kwargs.pop(key, None)
    return kwargs


def make_optimizer(name, optimizer, model, lipschitz, auto_scale_loss):
    """Resolve an optimizer argument; wrap it for loss scaling under mixed_float16.

    Default: ``RMSprop(5e-5)`` for ``"clip"`` (Arjovsky et al.), otherwise
    ``Adam(1e-4, beta_1=0.5, beta_2=0.9)`` (Gulrajani et al.).
    """
    if optimizer is None:
        if lipschitz == "clip":
            optimizer = keras.optimizers.RMSprop(5e-5)
        else:
            optimizer = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)
    try:
        optimizer = keras.optimizers.get(optimizer)
    except Exception:
        raise ValueError(
            f"WGAN.compile: `{name}` must be a keras optimizer, its name or its config, "
            f"received {optimizer!r}."
        ) from None
    if (
        auto_scale_loss
        and model.dtype_policy.name == "mixed_float16"
        and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    ):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
