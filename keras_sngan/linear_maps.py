"""The linear part of the layers that spectral normalization supports.

One place that knows, for each supported Keras layer type, where its kernel
lives, how the kernel is laid out, and how to apply the layer's linear map
(and its adjoint) to a vector. Both :class:`~keras_sngan.SpectralNormalization`
and the Lipschitz tools in :mod:`keras_sngan.lipschitz` use it, so a norm
reported by the tools is the norm the layer normalizes by.

Kernel layouts in Keras 3 (``channels_last`` or not, the kernel is the same):

============================  ==========================  =======================
layer                         kernel shape                fan-in matrix
============================  ==========================  =======================
Dense                         ``(in, out)``               the kernel
Conv1D/2D/3D                  ``(*k, in/groups, out)``    ``(-1, out)``
Conv1D/2D/3DTranspose         ``(*k, out, in)``           ``(*k, in, out) -> (-1, out)``
DepthwiseConv1D/2D            ``(*k, in, multiplier)``    ``(-1, in * multiplier)``
Embedding                     ``(vocab, dim)``            the table
============================  ==========================  =======================

The *fan-in* matrix has one column per output feature holding every weight
that feeds it (Miyato et al.'s reshape); the *fan-out* matrix has one column
per input feature holding every weight it feeds (the second reshape of
bidirectional SN, Lin et al. 2021).
"""

from __future__ import annotations

import keras
from keras import ops

EPSILON = 1e-12  # float32 norm guard; all norm arithmetic runs in float32

DENSE, EMBEDDING, CONV, CONV_TRANSPOSE, DEPTHWISE = (
    "dense",
    "embedding",
    "conv",
    "conv_transpose",
    "depthwise",
)
CONVOLUTIONS = (CONV, CONV_TRANSPOSE, DEPTHWISE)

SUPPORTED_LAYERS = (
    "Dense, Conv1D, Conv2D, Conv3D, Conv1DTranspose, Conv2DTranspose, "
    "Conv3DTranspose, DepthwiseConv1D, DepthwiseConv2D, Embedding"
)


def layer_kind(layer) -> str | None:
    """Return the kind of linear layer (``"dense"``, ``"conv"``, ...) or None."""
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv

    if isinstance(layer, keras.layers.Dense):
        return DENSE
    if isinstance(layer, keras.layers.Embedding):
        return EMBEDDING
    if isinstance(layer, BaseConv):
        return CONV
    if isinstance(layer, BaseConvTranspose):
        return CONV_TRANSPOSE
    if isinstance(layer, BaseDepthwiseConv):
        return DEPTHWISE
    return None


def kernel_variable(layer):
    """The raw (float32 master) kernel variable of a built supported layer."""
    for name in ("_kernel", "kernel", "_embeddings"):
        variable = getattr(layer, name, None)
        if isinstance(variable, keras.Variable):
            return variable
    raise ValueError(
        f"Layer {layer.name!r} ({type(layer).__name__}) has no kernel variable; "
        "is it built?"
    )


def fan_in_matrix(kernel, kind: str):
    """Kernel reshaped to ``(fan_in, out_features)`` (Miyato et al.)."""
    if kind in (DENSE, EMBEDDING):
        return kernel
    if kind == CONV:
        return ops.reshape(kernel, (-1, kernel.shape[-1]))
    if kind == CONV_TRANSPOSE:
        rank = len(kernel.shape)
        perm = (*range(rank - 2), rank - 1, rank - 2)
        return ops.reshape(ops.transpose(kernel, perm), (-1, kernel.shape[-2]))
    if kind == DEPTHWISE:
        return ops.reshape(kernel, (-1, kernel.shape[-2] * kernel.shape[-1]))
    raise ValueError(f"Unknown layer kind {kind!r}.")


def fan_out_matrix(kernel, kind: str):
    """Kernel reshaped to ``(fan_out, in_features)`` (Lin et al.'s second reshape)."""
    if kind in (DENSE, EMBEDDING):
        return ops.transpose(kernel)
    rank = len(kernel.shape)
    if kind == CONV_TRANSPOSE:
        return ops.reshape(kernel, (-1, kernel.shape[-1]))
    if kind in (CONV, DEPTHWISE):
        perm = (*range(rank - 2), rank - 1, rank - 2)
        return ops.reshape(ops.transpose(kernel, perm), (-1, kernel.shape[-2]))
    raise ValueError(f"Unknown layer kind {kind!r}.")


def _swap_last_two(rank):
    return (*range(rank - 2), rank - 1, rank - 2)


def fan_in_to_kernel(matrix, kind: str, kernel_shape):
    """Inverse of :func:`fan_in_matrix`: a ``(fan_in, out)`` matrix back in kernel layout."""
    kernel_shape = tuple(kernel_shape)
    if kind in (DENSE, EMBEDDING):
        return matrix
    if kind in (CONV, DEPTHWISE):
        return ops.reshape(matrix, kernel_shape)
    if kind == CONV_TRANSPOSE:  # kernel (*k, out, in), matrix rows (*k, in)
        swapped = (*kernel_shape[:-2], kernel_shape[-1], kernel_shape[-2])
        return ops.transpose(ops.reshape(matrix, swapped), _swap_last_two(len(kernel_shape)))
    raise ValueError(f"Unknown layer kind {kind!r}.")


def fan_out_to_kernel(matrix, kind: str, kernel_shape):
    """Inverse of :func:`fan_out_matrix`: a ``(fan_out, in)`` matrix back in kernel layout."""
    kernel_shape = tuple(kernel_shape)
    if kind in (DENSE, EMBEDDING):
        return ops.transpose(matrix)
    if kind == CONV_TRANSPOSE:
        return ops.reshape(matrix, kernel_shape)
    if kind in (CONV, DEPTHWISE):
        swapped = (*kernel_shape[:-2], kernel_shape[-1], kernel_shape[-2])
        return ops.transpose(ops.reshape(matrix, swapped), _swap_last_two(len(kernel_shape)))
    raise ValueError(f"Unknown layer kind {kind!r}.")


def apply_linear(layer, kind: str, x, kernel):
    """The layer's linear map (no bias, no activation) with ``kernel``, on ``x``."""
    if kind == CONV:
        padding = layer.padding
        if padding == "causal":  # Conv1D: left-pad, then a valid convolution
            x = ops.pad(x, layer._compute_causal_padding())
            padding = "valid"
        return ops.conv(
            x,
            kernel,
            strides=list(layer.strides),
            padding=padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    if kind == CONV_TRANSPOSE:
        return ops.conv_transpose(
            x,
            kernel,
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    if kind == DEPTHWISE:
        return ops.depthwise_conv(
            x,
            kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    return ops.matmul(x, fan_in_matrix(kernel, kind))


def vjp(fn, x, cotangent):
    """``J_fn(x)^T cotangent`` for a function of one tensor, on the active backend.

    ``keras.ops`` has no vector-Jacobian product, so this is the one place that
    speaks each backend's autodiff. For a linear ``fn`` it is the adjoint map.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x, output_gradients=cotangent)
    if backend == "jax":
        import jax

        _, pullback = jax.vjp(fn, x)
        return pullback(cotangent)[0]
    if backend == "torch":
        import torch

        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y = fn(x)
            # a plain tensor, not a Parameter (a variable's value): torch.compile
            # rejects a Parameter as a tangent
            cotangent = torch.as_tensor(cotangent).detach()
            return torch.autograd.grad(y, x, grad_outputs=cotangent)[0]
    raise ValueError(
        f"Operator-norm power iteration needs autodiff; backend {backend!r} is not "
        "supported (use tensorflow, jax or torch)."
    )


def compiled(fn, static_argnums=()):
    """``fn`` compiled for the active backend: a TensorFlow graph function,
    ``jax.jit`` (``static_argnums`` as in JAX), or ``fn`` itself on torch
    (whose eager ops are cheap). Loops inside ``fn`` should be
    ``keras.ops.fori_loop`` so that compiling does not unroll them.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn, static_argnums=static_argnums)
    return fn


def l2_normalize(x):
    """``x / max(||x||, eps)`` over all entries, in the dtype of ``x`` (float32 here)."""
    norm = ops.sqrt(ops.sum(ops.square(x)))
    return x / ops.maximum(norm, EPSILON)


def _normalize_with_norm(x):
    """``(x / max(||x||, eps), ||x||, 1 / max(||x||, eps))`` with one reduction (float32)."""
    squared = ops.sum(ops.square(x))
    inverse = ops.rsqrt(ops.maximum(squared, EPSILON * EPSILON))
    return x * inverse, squared * inverse, inverse


def matmul_transposed(y, matrix):
    """``y @ matrix^T`` for a row vector ``y`` of shape ``(1, n)``, without a transposed copy of ``matrix``.

    TensorFlow: one ``MatMul`` with ``transpose_b`` (a graph op costs
    executor time). Elsewhere ``(matrix @ y^T)^T``: reshaping the vector is
    free, while a transpose of the matrix copies it in eager JAX.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.linalg.matmul(y, matrix, transpose_b=True)
    rows, cols = matrix.shape
    return ops.reshape(ops.matmul(matrix, ops.reshape(y, (cols, 1))), (1, rows))


def outer(u, v):
    """``u^T v`` for row vectors ``u`` of shape ``(1, m)`` and ``v`` of shape ``(1, n)``: ``(m, n)``."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.linalg.matmul(u, v, transpose_a=True)
    return ops.matmul(ops.reshape(u, (u.shape[-1], 1)), v)


class LinearOperator:
    """A linear map ``x -> A(kernel) x`` with its adjoint, for power iteration.

    ``u_shape`` is the shape of the input-side vector, ``v_shape`` the shape of
    the output-side vector (both with a leading batch axis of 1).
    ``direction(u, v)``, when given, returns ``d <v, A(kernel) u> / d kernel``
    in kernel layout (a constant: the estimate is linear in the kernel); it
    lets :class:`~keras_sngan.SpectralNormalization` write the gradient of
    ``W / sigma(W)`` in closed form instead of differentiating through sigma.
    """

    def __init__(self, forward, adjoint, u_shape, v_shape, direction=None):
        self.forward = forward
        self.adjoint = adjoint
        self.direction = direction
        self._compiled_loop = None
        self.u_shape = tuple(u_shape)
        self.v_shape = tuple(v_shape)

    def iterate_loop(self, kernel, u, v, iterations: int):
        """:meth:`iterate` as one ``fori_loop``: inside a traced function, a loop op, not ``iterations`` copies."""

        def body(_, state):
            u, v = state
            u = l2_normalize(self.adjoint(v, kernel, u))
            return u, l2_normalize(self.forward(u, kernel))

        return ops.fori_loop(0, iterations, body, (u, v))

    def iterate_compiled(self, kernel, u, v, iterations: int):
        """:meth:`iterate_loop`, compiled: for long eager runs (warm-up, norms)."""
        if self._compiled_loop is None:
            self._compiled_loop = compiled(self.iterate_loop, static_argnums=(3,))
        return self._compiled_loop(kernel, u, v, iterations)

    def iterate_with_sigma(self, kernel, u, v, iterations: int):
        """Like :meth:`iterate`, also returning ``sigma = ||A u||`` for the new ``u`` and ``1 / max(sigma, eps)``.

        ``||A u|| = <v, A u>`` for the returned pair, i.e. :meth:`sigma` at no
        extra cost (its value only: it is not differentiable in ``kernel``).
        """
        sigma = inverse = None
        for _ in range(iterations):
            u, _, _ = _normalize_with_norm(self.adjoint(v, kernel, u))
            v, sigma, inverse = _normalize_with_norm(self.forward(u, kernel))
        return u, v, sigma, inverse

    def iterate(self, kernel, u, v, iterations: int):
        """``iterations`` power-iteration steps from ``(u, v)``; returns the new pair.

        Each step is ``u <- normalize(A^T v)``, ``v <- normalize(A u)``, so the
        returned ``v`` is the image of the returned ``u``.
        """
        for _ in range(iterations):
            u = l2_normalize(self.adjoint(v, kernel, u))
            v = l2_normalize(self.forward(u, kernel))
        return u, v

    def sigma(self, kernel, u, v):
        """``<v, A(kernel) u>``: the spectral-norm estimate, differentiable in ``kernel``."""
        return ops.sum(v * self.forward(u, kernel))


_TO_KERNEL = {fan_in_matrix: fan_in_to_kernel, fan_out_matrix: fan_out_to_kernel}


def matrix_operator(to_matrix, kernel_shape, kind: str) -> LinearOperator:
    """Row-vector map ``x -> x @ M`` where ``M = to_matrix(kernel, kind)``."""
    rows, cols = to_matrix(ops.zeros(kernel_shape), kind).shape
    to_kernel = _TO_KERNEL[to_matrix]
    if to_matrix is fan_out_matrix and kind in (DENSE, EMBEDDING):
        # M = W^T: use W as it is stored (no transposed copy per call).
        return LinearOperator(
            lambda x, kernel: matmul_transposed(x, kernel),
            lambda y, kernel, _x: ops.matmul(y, kernel),
            (1, rows), (1, cols),
            lambda u, v: outer(v, u),  # <v, u W^T> = <v^T u, W>
        )

    def forward(x, kernel):
        return ops.matmul(x, to_matrix(kernel, kind))

    def adjoint(y, kernel, _x):
        return matmul_transposed(y, to_matrix(kernel, kind))

    def direction(u, v):
        # <v, u M> = <u^T v, M>: the outer product, put back in kernel layout.
        return to_kernel(outer(u, v), kind, kernel_shape)

    return LinearOperator(forward, adjoint, (1, rows), (1, cols), direction)


def convolution_operator(layer, kind: str, input_shape) -> LinearOperator:
    """The layer's convolution as a linear map on inputs of ``input_shape``.

    ``input_shape`` must be fully known apart from the batch axis: the operator
    norm of a convolution depends on the input size, strides, padding and
    dilation, all of which are taken from ``layer``.
    """
    u_shape = (1, *input_shape[1:])
    v_shape = tuple(layer.compute_output_shape(u_shape))

    def forward(x, kernel):
        return apply_linear(layer, kind, x, kernel)

    def adjoint(y, kernel, x):
        return vjp(lambda z: apply_linear(layer, kind, z, kernel), x, y)

    return LinearOperator(forward, adjoint, u_shape, v_shape)


def operators_for(layer, kind: str, method: str, input_shape=None):
    """The operators whose mean spectral norm is the normalizer of ``method``.

    ``"reshape"``: the fan-in matrix. ``"bidirectional"``: the fan-in and the
    fan-out matrices (their norms are averaged). ``"operator"``: the layer's
    true linear map for convolutions; for Dense and Embedding the map acts
    row by row, so its operator norm *is* the matrix norm.
    """
    shape = tuple(kernel_variable(layer).shape)
    if method == "reshape":
        return [matrix_operator(fan_in_matrix, shape, kind)]
    if method == "bidirectional":
        return [
            matrix_operator(fan_in_matrix, shape, kind),
            matrix_operator(fan_out_matrix, shape, kind),
        ]
    if method == "operator":
        if kind in CONVOLUTIONS:
            return [convolution_operator(layer, kind, input_shape)]
        return [matrix_operator(fan_in_matrix, shape, kind)]
    raise ValueError(f"Unknown method {method!r}.")
