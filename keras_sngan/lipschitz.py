"""Lipschitz constants of built Keras models: per-layer norms, an upper and a lower bound.

- :func:`layer_spectral_norms`: the spectral norm of every linear layer, exact
  by SVD for dense kernels (Dense, Embedding) and the true operator norm for
  convolutions (power iteration through the convolution and its adjoint at the
  layer's own input shape, to convergence). For a ``SpectralNormalization``
  layer the norm is that of the kernel it computes with, ``scale * W / sigma``.
- :func:`lipschitz_upper_bound`: a certified upper bound for a feed-forward
  chain, the product of layer norms and activation Lipschitz constants.
- :func:`lipschitz_lower_bound`: an empirical lower bound, the largest slope
  found by gradient ascent from many random starts.

The true Lipschitz constant (w.r.t. the Euclidean norm) lies between the two.
These are analysis tools that run eagerly on the TensorFlow backend.
"""

from __future__ import annotations

import math
from functools import lru_cache

import keras
import numpy as np
from keras import ops

from keras_sngan import linear_maps as lm
from keras_sngan.spectral_normalization import SpectralNormalization
from keras_sngan.validation import check_int


@lru_cache(maxsize=None)
def _gelu_max_slope() -> float:
    # d/dx x Phi(x) = Phi(x) + x phi(x), maximal where phi(x) (2 - x^2) = 0: x = sqrt(2).
    x = math.sqrt(2.0)
    return 0.5 * (1 + math.erf(x / math.sqrt(2))) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@lru_cache(maxsize=None)
def _swish_max_slope() -> float:
    # d/dx x s(x) = s(x) (1 + x (1 - s(x))); its maximum (~1.0998 at x ~ 2.3994).
    from scipy.optimize import minimize_scalar

    def negative_slope(x):
        s = 1.0 / (1.0 + math.exp(-x))
        return -(s * (1 + x * (1 - s)))

    return -minimize_scalar(negative_slope, bounds=(0.0, 10.0), method="bounded").fun


def _selu_max_slope() -> float:
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * max(1.0, alpha)


#: Lipschitz constants of the activations the bound knows (global maximum of |phi'|).
ACTIVATION_LIPSCHITZ = {
    "linear": lambda: 1.0,
    "relu": lambda: 1.0,
    "relu6": lambda: 1.0,
    "leaky_relu": lambda: 1.0,  # keras' default slope 0.2 < 1
    "elu": lambda: 1.0,  # alpha = 1
    "selu": _selu_max_slope,
    "tanh": lambda: 1.0,
    "sigmoid": lambda: 0.25,
    "softplus": lambda: 1.0,
    "softsign": lambda: 1.0,
    "gelu": _gelu_max_slope,
    "silu": _swish_max_slope,
    "swish": _swish_max_slope,
}

# Layers that change shape only (or are the identity at inference): Lipschitz 1.
_SHAPE_ONLY = (
    keras.layers.InputLayer,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.Permute,
)


def activation_lipschitz(activation) -> float:
    """Lipschitz constant of a Keras activation (name or function)."""
    name = activation if isinstance(activation, str) else keras.activations.serialize(activation)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if name not in ACTIVATION_LIPSCHITZ:
        raise ValueError(
            f"Unknown activation {name!r}: its Lipschitz constant is not known. "
            f"Known activations: {sorted(ACTIVATION_LIPSCHITZ)}."
        )
    return float(ACTIVATION_LIPSCHITZ[name]())


def _compiled(fn):
    """``fn`` as a TensorFlow graph function (power iteration runs ~10x faster)."""
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True)


def _layer_input_shape(layer):
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return None


def linear_layer_norm(layer, input_shape=None, iterations: int = 2000, tol: float = 1e-7) -> float:
    """Spectral norm of a (possibly spectrally normalized) linear layer.

    Dense and Embedding kernels: exact, by SVD. Convolutions: operator norm of
    the convolution at ``input_shape`` (default: the shape the layer was called
    on in its model), by power iteration until the estimate changes by less
    than ``tol`` (relative) or ``iterations`` steps.
    """
    inner = layer.layer if isinstance(layer, SpectralNormalization) else layer
    kind = lm.layer_kind(inner)
    if kind is None:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) is not a linear layer.")
    if isinstance(layer, SpectralNormalization):
        kernel = ops.convert_to_numpy(layer.normalized_kernel()).astype("float32")
    else:
        kernel = ops.convert_to_numpy(lm.kernel_variable(inner).value).astype("float32")
    if kind not in lm.CONVOLUTIONS:
        return float(np.linalg.svd(kernel.astype("float64"), compute_uv=False)[0])
    input_shape = input_shape or _layer_input_shape(layer)
    if input_shape is None or any(d is None for d in tuple(input_shape)[1:]):
        raise ValueError(
            f"The operator norm of convolution {layer.name!r} depends on its input size; "
            f"pass `input_shape` (received {input_shape})."
        )
    (operator,) = lm.operators_for(inner, kind, "operator", tuple(input_shape))
    iterate = _compiled(operator.iterate)
    rng = np.random.default_rng(0)
    u = lm.l2_normalize(ops.convert_to_tensor(rng.standard_normal(operator.u_shape), "float32"))
    v = lm.l2_normalize(operator.forward(u, kernel))
    sigma = float(operator.sigma(kernel, u, v))
    for _ in range(iterations // 10):
        u, v = iterate(kernel, u, v, 10)
        new_sigma = float(operator.sigma(kernel, u, v))
        if abs(new_sigma - sigma) <= tol * max(new_sigma, 1e-30):
            return new_sigma
        sigma = new_sigma
    return sigma


def _flatten_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flatten_layers(layer)
        else:
            yield layer


def layer_spectral_norms(model) -> list[dict]:
    """Spectral norm of every linear layer of a built model, in order.

    Returns a list of ``{"name", "type", "norm", "method"}`` where ``method``
    is ``"svd"`` (exact) or ``"operator"`` (power iteration through the conv).
    """
    rows = []
    for layer in _flatten_layers(model):
        inner = layer.layer if isinstance(layer, SpectralNormalization) else layer
        kind = lm.layer_kind(inner)
        if kind is None:
            continue
        rows.append(
            {
                "name": layer.name,
                "type": type(inner).__name__,
                "norm": linear_layer_norm(layer),
                "method": "operator" if kind in lm.CONVOLUTIONS else "svd",
            }
        )
    return rows


def _pooling_factor(layer):
    """Lipschitz constant of pooling layers the bound supports, or None."""
    pool = getattr(layer, "pool_size", None)
    strides = getattr(layer, "strides", None)
    if isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)):
        return 1.0 if all(s >= p for s, p in zip(strides, pool)) else None
    if isinstance(layer, (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D)):
        # Non-overlapping windows of size a: each output is a mean of a inputs, norm 1/sqrt(a).
        return 1.0 / math.sqrt(float(np.prod(pool))) if all(s >= p for s, p in zip(strides, pool)) else None
    if isinstance(
        layer,
        (
            keras.layers.GlobalAveragePooling1D,
            keras.layers.GlobalAveragePooling2D,
            keras.layers.GlobalAveragePooling3D,
        ),
    ):
        shape = _layer_input_shape(layer)
        if shape is None or any(d is None for d in shape[1:]):
            return 1.0
        spatial = shape[1:-1] if layer.data_format == "channels_last" else shape[2:]
        return 1.0 / math.sqrt(float(np.prod(spatial)))
    return None


def lipschitz_upper_bound(model) -> dict:
    """Certified upper bound on the Lipschitz constant of a feed-forward chain.

    The product, over the model's layers in order, of each linear layer's
    spectral norm (see :func:`linear_layer_norm`) and each activation's
    Lipschitz constant (:data:`ACTIVATION_LIPSCHITZ`). Shape-only layers count
    1, non-overlapping pooling its exact factor. Any other layer (a residual
    ``Add``, batch normalization in training mode, an unknown activation)
    raises ``ValueError`` naming it, rather than returning a bound that does
    not hold.

    Returns:
        ``{"bound": float, "factors": [{"name", "kind", "factor"}, ...]}``.
    """
    factors = []
    for layer in _flatten_layers(model):
        inner = layer.layer if isinstance(layer, SpectralNormalization) else layer
        if lm.layer_kind(inner) is not None:
            factors.append({"name": layer.name, "kind": "linear", "factor": linear_layer_norm(layer)})
            activation = getattr(inner, "activation", None)
            if activation is not None:
                factors.append(
                    {"name": layer.name, "kind": "activation", "factor": activation_lipschitz(activation)}
                )
        elif isinstance(layer, _SHAPE_ONLY):
            continue
        elif isinstance(layer, keras.layers.Activation):
            factors.append({"name": layer.name, "kind": "activation", "factor": activation_lipschitz(layer.activation)})
        elif isinstance(layer, keras.layers.ReLU):
            slope = max(1.0, abs(float(layer.negative_slope)))
            factors.append({"name": layer.name, "kind": "activation", "factor": slope})
        elif isinstance(layer, keras.layers.LeakyReLU):
            factors.append({"name": layer.name, "kind": "activation", "factor": max(1.0, abs(float(layer.negative_slope)))})
        elif _pooling_factor(layer) is not None:
            factors.append({"name": layer.name, "kind": "pooling", "factor": _pooling_factor(layer)})
        else:
            raise ValueError(
                f"lipschitz_upper_bound does not know layer {layer.name!r} ({type(layer).__name__}). "
                "It handles linear layers (Dense, Conv*, Conv*Transpose, DepthwiseConv*, Embedding, "
                "optionally in SpectralNormalization), Activation/ReLU/LeakyReLU with activations "
                f"{sorted(ACTIVATION_LIPSCHITZ)}, non-overlapping pooling, and shape-only layers."
            )
    bound = float(np.prod([f["factor"] for f in factors])) if factors else 1.0
    return {"bound": bound, "factors": factors}


def lipschitz_lower_bound(
    model,
    n_starts: int = 64,
    steps: int = 200,
    learning_rate: float = 0.05,
    input_scale: float = 1.0,
    seed: int = 0,
) -> dict:
    """Empirical lower bound: the largest slope of ``model`` found by search.

    From ``n_starts`` random pairs ``(x, x + d)`` (``x ~ N(0, input_scale^2)``)
    Adam ascends the slope ``|f(x) - f(x + d)| / ||d||`` (with ``||d||`` kept
    above ``0.01 * input_scale`` so float32 rounding cannot inflate it); every step also
    records the input-gradient norm ``||grad f(x)||`` at both points. Each is
    a valid lower bound on the Lipschitz constant, so their maximum is too.
    (Ascending the slope of a pair works for piecewise-linear ReLU networks,
    whose gradient norm is piecewise constant and gives no ascent direction.)

    ``model`` must return one score per sample.

    Returns:
        ``{"bound", "max_gradient_norm", "max_slope"}``.
    """
    import tensorflow as tf

    check_int("n_starts", n_starts, 1, owner="lipschitz_lower_bound")
    check_int("steps", steps, 0, owner="lipschitz_lower_bound")
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"lipschitz_lower_bound needs a fixed input shape, model has {model.input_shape}.")
    rng = np.random.default_rng(seed)
    x = keras.Variable(rng.standard_normal((n_starts, *shape)).astype("float32") * input_scale)
    d = keras.Variable(rng.standard_normal((n_starts, *shape)).astype("float32") * 0.1 * input_scale)
    min_step = 1e-2 * input_scale
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build([x, d])
    axes = list(range(1, len(shape) + 1))

    @tf.function
    def step(apply: bool):
        with tf.GradientTape(persistent=True) as tape:
            xv, dv = tf.identity(x.value), tf.identity(d.value)
            tape.watch([xv, dv])
            fx = tf.reshape(model(xv, training=False), (n_starts, -1))
            fy = tf.reshape(model(xv + dv, training=False), (n_starts, -1))
            if fx.shape[-1] != 1:
                raise ValueError(f"`model` must return one score per sample, got shape {fx.shape}.")
            diff = tf.abs(fx[:, 0] - fy[:, 0])
            slope = diff / tf.maximum(tf.norm(tf.reshape(dv, (n_starts, -1)), axis=1), 1e-12)
            sum_fx = tf.reduce_sum(fx)
            sum_fy = tf.reduce_sum(fy)
            objective = -tf.reduce_sum(slope)
        grad_x = tape.gradient(sum_fx, xv)
        grad_y = tape.gradient(sum_fy, dv)  # d f(x + d) / dd = grad f at x + d
        objective_grads = tape.gradient(objective, [xv, dv])
        del tape
        if apply:
            optimizer.apply_gradients(zip(objective_grads, [x, d]))
            # Keep ||d|| >= min_step: in float32, f(x) - f(x + d) over a tiny
            # ||d|| is rounding noise and could report a slope above the truth.
            flat = tf.reshape(d.value, (n_starts, -1))
            norms = tf.maximum(tf.norm(flat, axis=1, keepdims=True), 1e-30)
            d.assign(tf.reshape(flat * tf.maximum(1.0, min_step / norms), tf.shape(d.value)))
        norms = tf.concat(
            [tf.sqrt(tf.reduce_sum(grad_x**2, axis=axes)), tf.sqrt(tf.reduce_sum(grad_y**2, axis=axes))], 0
        )
        return tf.reduce_max(slope), tf.reduce_max(norms)

    best_slope, best_grad = 0.0, 0.0
    for i in range(steps + 1):
        slope, grad = step(i < steps)
        best_slope = max(best_slope, float(slope))
        best_grad = max(best_grad, float(grad))
    return {"bound": max(best_slope, best_grad), "max_gradient_norm": best_grad, "max_slope": best_slope}
