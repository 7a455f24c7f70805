"""Per-layer weight-gradient norms of the critic (``track_layer_stats=True``)."""

from __future__ import annotations

from keras import ops

from keras_sngan.model_layers import kernel_layers
from keras_sngan.wgan import distribution


def tracked_layers(critic):
    """``[(layer_name, index into critic.trainable_variables)]`` of its linear layers."""
    index = {id(v): i for i, v in enumerate(critic.trainable_variables)}
    return [
        (name, index[id(kernel)])
        for name, _, kernel in kernel_layers(critic)
        if id(kernel) in index
    ]


def layer_gradient_norms(layers, grads, scale, num_replicas):
    """``{"layer_grad_norm/<name>": ||dL/dW||}`` of the gradients an update applied.

    ``grads`` are one replica's gradients of ``scale * loss / num_replicas``;
    they are summed across replicas (the gradient the optimizer applies) and
    divided by the loss ``scale`` that was used for them (read before
    ``apply_gradients``). On a step the loss-scale optimizer skipped because
    the scaled gradients overflowed, the norm is not finite (``inf`` or ``nan``).
    """
    if not layers:
        return {}
    selected = [ops.cast(grads[index], "float32") for _, index in layers]
    selected = distribution.replica_sum(selected, num_replicas)
    out = {}
    for (name, _), grad in zip(layers, selected):
        if scale is not None:
            grad = grad / ops.cast(scale, "float32")
        out[f"layer_grad_norm/{name}"] = ops.sqrt(ops.sum(ops.square(grad)))
    return out
