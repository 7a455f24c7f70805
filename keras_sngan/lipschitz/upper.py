"""Certified upper bound on the Lipschitz constant of a feed-forward Keras chain.

Every factor of the product is an upper bound on the Lipschitz constant (in the
Euclidean norm) of one use of one layer, computed by a method that cannot fall
below the truth; each factor says which method bounded it:

==========================  ================================================================
``method``                  factor
==========================  ================================================================
``"svd"``                   Dense / Embedding: largest singular value of the kernel (float64
                            SVD of the float32 kernel, plus a float64 rounding margin)
``"fft-circulant"``         convolutions: the norm of the circular convolution that contains
                            the layer (:mod:`keras_sngan.lipschitz.conv_norms`)
``"svd-explicit"``          small convolutions: exact SVD of the layer's explicit float64 matrix
                            (used where it is below the circulant bound)
``"activation-constant"``   global maximum of ``|phi'|`` (:data:`ACTIVATION_LIPSCHITZ`)
``"pooling-average-svd"``   average pooling: exact norm of the (separable) averaging map at the
                            layer's input size, border windows averaging fewer elements
``"pooling-max-overlap"``   max pooling: ``sqrt`` of the largest number of windows that share an
                            input element (``|max a - max b| <= ||a - b||`` per window)
``"pooling-global-average"`` global average pooling: ``1 / sqrt(#positions)`` (exact)
``"pooling-global-max"``    global max pooling: 1
==========================  ================================================================

Shape-only layers (Flatten, Reshape, Permute, Dropout and Identity at
inference) are isometries and contribute nothing. A layer used ``k`` times
contributes ``k`` factors (one per use, each at the input size of that use).
Anything else (a residual ``Add`` or other branching graph, batch
normalization, an unknown activation, ``ReLU(threshold != 0)`` which jumps)
raises ``ValueError`` naming it rather than returning a bound that does not
hold.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_sngan import linear_maps as lm
from keras_sngan.lipschitz.activations import ACTIVATION_LIPSCHITZ, activation_lipschitz
from keras_sngan.lipschitz.conv_norms import EPS64, convolution_norm_report
from keras_sngan.spectral_normalization import SpectralNormalization

# Layers that change shape only (or are the identity at inference): isometries.
_SHAPE_ONLY = (
    keras.layers.InputLayer,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.Permute,
)
_AVERAGE_POOLING = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D)
_MAX_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)
_GLOBAL_AVERAGE = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
_GLOBAL_MAX = (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D)


def layer_kernel(layer) -> np.ndarray:
    """The float32 kernel a linear layer computes with at inference, as numpy.

    For a :class:`~keras_sngan.SpectralNormalization` layer this is
    ``normalized_kernel()`` (``scale * W / sigma``), else the raw kernel.
    """
    if isinstance(layer, SpectralNormalization):
        return ops.convert_to_numpy(layer.normalized_kernel()).astype("float32")
    return ops.convert_to_numpy(ops.copy(lm.kernel_variable(layer).value)).astype("float32")


def _layer_input_shape(layer):
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return None


def _inner(layer):
    return layer.layer if isinstance(layer, SpectralNormalization) else layer


def _svd_bound(kernel) -> float:
    matrix = np.asarray(kernel, dtype=np.float64)
    sigma = float(np.linalg.svd(matrix, compute_uv=False)[0]) if matrix.size else 0.0
    # LAPACK's SVD is backward stable: error <= p(n) eps ||A||; margin 64 eps (rows + cols) ||A||_F.
    return sigma + 64 * EPS64 * sum(matrix.shape) * float(np.linalg.norm(matrix))


def linear_layer_norm_report(layer, input_shape=None) -> tuple[float, str]:
    """``(certified norm, method)`` of a (possibly spectrally normalized) linear layer.

    Dense and Embedding: ``"svd"`` (exact). Convolutions: ``"fft-circulant"``
    at ``input_shape`` (default: the shape the layer was called on).
    """
    inner = _inner(layer)
    kind = lm.layer_kind(inner)
    if kind is None:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) is not a linear layer.")
    kernel = layer_kernel(layer)
    if kind not in lm.CONVOLUTIONS:
        return _svd_bound(lm.fan_in_matrix(kernel, kind)), "svd"
    input_shape = tuple(input_shape) if input_shape is not None else _layer_input_shape(layer)
    if input_shape is None or any(d is None for d in input_shape[1:]):
        raise ValueError(
            f"The operator norm of convolution {layer.name!r} depends on its input size; "
            f"pass `input_shape` (received {input_shape})."
        )
    return convolution_norm_report(inner, kind, kernel, input_shape)


def linear_layer_norm(layer, input_shape=None) -> float:
    """Certified upper bound on the spectral norm of a linear layer (exact for dense).

    See :func:`linear_layer_norm_report` for the method.
    """
    return linear_layer_norm_report(layer, input_shape)[0]


def power_iteration_norm(layer, input_shape=None, iterations: int = 2000, tol: float = 1e-7) -> float:
    """Power-iteration *estimate* of a linear layer's operator norm (float32).

    ``||A u||`` for a unit vector ``u`` never exceeds ``||A||`` (up to float32
    rounding), so this approaches the norm from below: it is a diagnostic, not
    a certificate (use :func:`linear_layer_norm`). Stops when the estimate
    changes by less than ``tol`` (relative) over 10 steps or after ``iterations``.
    """
    inner = _inner(layer)
    kind = lm.layer_kind(inner)
    if kind is None:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) is not a linear layer.")
    kernel = layer_kernel(layer)
    if kind not in lm.CONVOLUTIONS:
        return float(np.linalg.svd(lm.fan_in_matrix(kernel, kind).astype("float64"), compute_uv=False)[0])
    input_shape = tuple(input_shape) if input_shape is not None else _layer_input_shape(layer)
    (operator,) = lm.operators_for(inner, kind, "operator", input_shape)
    kernel = ops.convert_to_tensor(kernel)
    rng = np.random.default_rng(0)
    u = lm.l2_normalize(ops.convert_to_tensor(rng.standard_normal(operator.u_shape).astype("float32")))
    v = lm.l2_normalize(operator.forward(u, kernel))
    sigma = float(operator.sigma(kernel, u, v))
    for _ in range(max(1, iterations // 10)):
        u, v = operator.iterate(kernel, u, v, 10)
        new_sigma = float(operator.sigma(kernel, u, v))
        if abs(new_sigma - sigma) <= tol * max(new_sigma, 1e-30):
            return new_sigma
        sigma = new_sigma
    return sigma


def layer_uses(model):
    """``(layer, input_shape)`` for every use of every layer of a chain, in order.

    Walks the model's graph (nested models are entered), so a layer applied
    twice appears twice. Raises ``ValueError`` for graphs that are not a chain
    (several inputs, branches, merges) and for subclassed models.
    """
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        raise ValueError(
            f"Model {model.name!r} ({type(model).__name__}) has no layer graph to walk: build it "
            "(a Sequential with an Input, or a functional model); subclassed models are not supported."
        )
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        nodes = graph._nodes_by_depth[depth]
        if len(nodes) != 1 or len(nodes[0].input_tensors) > 1:
            names = [n.operation.name for n in nodes]
            raise ValueError(
                f"Model {model.name!r} is not a chain: {names} run side by side (or merge inputs). "
                "The product bound holds only for a sequence of layers each fed by the previous one."
            )
        node = nodes[0]
        layer = node.operation
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            yield from layer_uses(layer)
            continue
        yield layer, tuple(node.input_tensors[0].shape)


def _average_matrix(n: int, pool: int, stride: int, padding: str) -> np.ndarray:
    """Explicit 1-D averaging matrix (outputs x inputs) with Keras' border rule."""
    if padding == "valid":
        m, before = (n - pool) // stride + 1, 0
    else:
        m = -(-n // stride)
        before = max((m - 1) * stride + pool - n, 0) // 2
    matrix = np.zeros((max(m, 0), n))
    for j in range(max(m, 0)):
        lo, hi = max(j * stride - before, 0), min(j * stride - before + pool, n)
        matrix[j, lo:hi] = 1.0 / (hi - lo)  # "same": border windows average fewer (valid) elements
    return matrix


def _spatial(shape, data_format):
    return tuple(shape[2:]) if data_format == "channels_first" else tuple(shape[1:-1])


def pooling_factor(layer, input_shape):
    """``(factor, method)`` for a pooling layer at ``input_shape``, or None if not pooling."""
    if isinstance(layer, (*_AVERAGE_POOLING, *_MAX_POOLING, *_GLOBAL_AVERAGE)):
        spatial = _spatial(input_shape, layer.data_format)
        if any(d is None for d in spatial):
            raise ValueError(f"Pooling layer {layer.name!r} needs a fixed input size, got {input_shape}.")
    if isinstance(layer, _AVERAGE_POOLING):
        # The map is a Kronecker product of per-axis averaging matrices (identity over
        # channels): its norm is the product of their norms, computed exactly.
        norms = [
            _svd_bound(_average_matrix(n, p, s, layer.padding))
            for n, p, s in zip(spatial, layer.pool_size, layer.strides)
        ]
        return float(np.prod(norms)) * (1 + 8 * len(norms) * EPS64), "pooling-average-svd"
    if isinstance(layer, _MAX_POOLING):
        share = np.prod([-(-p // s) for p, s in zip(layer.pool_size, layer.strides)])
        return math.sqrt(float(share)) * (1 + 4 * EPS64), "pooling-max-overlap"
    if isinstance(layer, _GLOBAL_AVERAGE):
        return 1.0 / math.sqrt(float(np.prod(spatial))) * (1 + 4 * EPS64), "pooling-global-average"
    if isinstance(layer, _GLOBAL_MAX):
        return 1.0, "pooling-global-max"
    return None


def _activation_factor(layer):
    """Lipschitz constant of an activation layer, or None if ``layer`` is not one."""
    if isinstance(layer, keras.layers.Activation):
        return activation_lipschitz(layer.activation)
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.threshold) != 0.0:
            raise ValueError(
                f"ReLU layer {layer.name!r} has threshold={layer.threshold}: it jumps at the threshold "
                "and has no Lipschitz constant."
            )
        return max(1.0, abs(float(layer.negative_slope)))
    if isinstance(layer, keras.layers.LeakyReLU):
        return max(1.0, abs(float(layer.negative_slope)))
    return None


def _factors_of_use(layer, input_shape):
    inner = _inner(layer)
    if lm.layer_kind(inner) is not None:
        norm, method = linear_layer_norm_report(layer, input_shape)
        yield {"name": layer.name, "kind": "linear", "factor": norm, "method": method}
        activation = getattr(inner, "activation", None)
        if activation is not None and activation is not keras.activations.linear:
            yield {
                "name": layer.name,
                "kind": "activation",
                "factor": activation_lipschitz(activation),
                "method": "activation-constant",
            }
        return
    if isinstance(layer, _SHAPE_ONLY):
        return
    factor = _activation_factor(layer)
    if factor is not None:
        yield {"name": layer.name, "kind": "activation", "factor": factor, "method": "activation-constant"}
        return
    pooled = pooling_factor(layer, input_shape)
    if pooled is not None:
        yield {"name": layer.name, "kind": "pooling", "factor": pooled[0], "method": pooled[1]}
        return
    raise ValueError(
        f"lipschitz_upper_bound does not know layer {layer.name!r} ({type(layer).__name__}). "
        "It handles linear layers (Dense, Conv*, Conv*Transpose, DepthwiseConv*, Embedding, "
        "optionally in SpectralNormalization), Activation/ReLU/LeakyReLU with activations "
        f"{sorted(ACTIVATION_LIPSCHITZ)}, average/max/global pooling, and shape-only layers."
    )


def layer_spectral_norms(model) -> list[dict]:
    """Certified norm of every use of every linear layer of a built chain, in order.

    Returns a list of ``{"name", "type", "norm", "method"}``, ``method`` being
    ``"svd"`` (dense, exact) or ``"fft-circulant"`` (convolutions, upper bound).
    """
    rows = []
    for layer, input_shape in layer_uses(model):
        inner = _inner(layer)
        if lm.layer_kind(inner) is None:
            continue
        norm, method = linear_layer_norm_report(layer, input_shape)
        rows.append({"name": layer.name, "type": type(inner).__name__, "norm": norm, "method": method})
    return rows


def lipschitz_upper_bound(model) -> dict:
    """Certified upper bound on the Lipschitz constant of a feed-forward chain.

    The product over every layer use of a factor bounding that use (see the
    module docstring for the method of each kind of layer), with a float64
    rounding margin on the product.

    Returns:
        ``{"bound": float, "factors": [{"name", "kind", "factor", "method"}, ...]}``.
    """
    factors = [f for layer, shape in layer_uses(model) for f in _factors_of_use(layer, shape)]
    bound = float(np.prod([f["factor"] for f in factors])) if factors else 1.0
    return {"bound": bound * (1 + 4 * (len(factors) + 1) * EPS64), "factors": factors}
