"""Certified upper bounds on the operator norm of (strided, dilated, grouped) convolutions.

Method ("fft-circulant"). A zero-padded convolution is a restriction of a
circular one on a larger grid, and a circular convolution is diagonalised by the
discrete Fourier transform (Sedghi, Gupta & Long, "The Singular Values of
Convolutional Layers", ICLR 2019):

1. **Embedding.** Along each spatial axis, a Keras correlation with kernel size
   ``k``, dilation ``r`` (effective size ``ke = (k - 1) r + 1``), stride ``s``,
   ``m`` outputs and ``pb`` leading zeros of padding (``0 <= pb <= ke - 1`` for
   ``"valid"``, ``"same"``, ``"causal"`` and the adjoints of transposed
   convolutions) computes ``y[j] = sum_t K[t] x[j s + t r - pb]``. Place ``x`` at
   offset ``pb`` in a periodic grid of size
   ``N >= max((m - 1) s + ke, n + ke - 1)``, a multiple of ``s``: no index wraps
   onto the data, so ``y`` is the first ``m`` outputs of the *circular* strided
   correlation on that grid applied to the zero-extended input. Zero-extension is
   an isometry and keeping some outputs is a coordinate projection, so the
   layer's norm is at most the circular operator's norm.
2. **Strides (polyphase).** Writing tap offsets ``q = s u + p`` turns the
   circular correlation with stride ``s`` on ``N`` points into an unstrided
   circular correlation on ``M = N / s`` points with ``s^d * c_in`` input
   channels (the phases ``p`` of the input). Nothing is lost: the norm of this
   operator equals the strided circular one.
3. **Fourier.** An unstrided circular multi-channel correlation is block
   diagonalised by the DFT: its norm is *exactly* the largest singular value of
   the ``(s^d c_in) x c_out`` transfer matrices ``K^(w)`` over the ``M^d``
   frequencies ``w`` (``numpy.fft.rfftn`` + batched ``numpy.linalg.svd``; real
   kernels make ``w`` and ``-w`` conjugate, so half of them suffice).

So the returned number can not fall below the true norm: unlike power
iteration, which approaches the norm from below, every step above is an
inequality in the safe direction or an identity. Groups and depthwise
convolutions are block-diagonal over groups (norm: the maximum over groups);
transposed convolutions are adjoints of strided convolutions (same norm).
Float64 rounding of the FFT and SVD is covered by a margin of
``64 eps_64 (log2 prod(N) + rows + cols)`` relative to the result plus the same
factor times ``sum |K|`` (the largest any transfer-matrix entry can be).

The bound is tight for stride 1 on large inputs; on small inputs or with
strides it can exceed the true norm (the explicit-Jacobian SVD in the tests
shows by how much), never fall below it.

Method ("svd-explicit"). When a convolution or depthwise convolution is small
enough (at most :data:`EXPLICIT_MAX_ENTRIES` matrix entries per group), its
matrix is written out in float64 from the kernel, with Keras' padding rule
(``"valid"``: no padding; ``"same"``: ``max((m - 1) s + ke - n, 0) // 2``
leading zeros; ``"causal"``: ``ke - 1``), and its largest singular value is
exact (plus the SVD margin). The smaller of the two certified numbers is
reported; on the small late layers of a CNN critic the circulant bound is
loose and the explicit one is exact.
"""

from __future__ import annotations

import math

import numpy as np

from keras_sngan import linear_maps as lm

EPS64 = float(np.finfo(np.float64).eps)
EXPLICIT_MAX_ENTRIES = 2**22
"""Largest per-group matrix (rows x columns) written out for the exact ``"svd-explicit"`` norm."""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def circulant_norm_bound(kernel, in_sizes, out_sizes, strides, dilations) -> float:
    """Upper bound on the norm of a zero-padded correlation, for one or more groups.

    Args:
        kernel: ``(groups, *k, c_in, c_out)`` array (a group axis of 1 for an
            ordinary convolution).
        in_sizes: spatial sizes of the input (per axis).
        out_sizes: spatial sizes of the output (per axis).
        strides: per axis.
        dilations: per axis.

    Returns:
        ``max`` over groups of the circular operator's norm (see module docstring).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    groups, *taps, c_in, c_out = kernel.shape
    rank = len(taps)
    grid, phases = [], []
    for k, n, m, s, r in zip(taps, in_sizes, out_sizes, strides, dilations):
        ke = (k - 1) * r + 1
        grid.append(_round_up(max((m - 1) * s + ke, n + ke - 1), s))
        phases.append(s)
    dilated = np.zeros((groups, *grid, c_in, c_out))
    index = (slice(None), *(slice(0, (k - 1) * r + 1, r) for k, r in zip(taps, dilations)))
    dilated[index] = kernel
    # Polyphase: axis of length N = M s -> (M, s), phases moved next to c_in.
    split = [groups]
    for n, s in zip(grid, phases):
        split += [n // s, s]
    poly = dilated.reshape(*split, c_in, c_out)
    order = [0, *(1 + 2 * i for i in range(rank)), *(2 + 2 * i for i in range(rank)), 1 + 2 * rank, 2 + 2 * rank]
    rows = int(np.prod(phases)) * c_in
    poly = poly.transpose(order).reshape(groups, *(n // s for n, s in zip(grid, phases)), rows, c_out)
    transfer = np.fft.rfftn(poly, axes=tuple(range(1, rank + 1)))
    sigma = float(np.linalg.svd(transfer, compute_uv=False).max(initial=0.0))
    factor = 64 * EPS64 * (math.log2(max(float(np.prod(grid)), 2.0)) + rows + c_out)
    return sigma * (1 + factor) + factor * float(np.abs(kernel).sum())


def _leading_padding(padding: str, n: int, m: int, s: int, ke: int) -> int:
    if padding == "valid":
        return 0
    if padding == "causal":
        return ke - 1
    return max((m - 1) * s + ke - n, 0) // 2


def explicit_norm(kernel, in_sizes, out_sizes, strides, dilations, padding: str) -> float:
    """Exact norm of a zero-padded correlation from its explicit float64 matrix, max over groups.

    ``kernel``: ``(groups, *k, c_in, c_out)`` as in :func:`circulant_norm_bound`.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    groups, *taps, c_in, c_out = kernel.shape
    lead = [_leading_padding(padding, n, m, s, (k - 1) * r + 1)
            for k, n, m, s, r in zip(taps, in_sizes, out_sizes, strides, dilations)]
    out_index = np.indices(out_sizes).reshape(len(taps), -1).T  # (M, rank)
    rows, cols = int(np.prod(out_sizes)), int(np.prod(in_sizes))
    best = 0.0
    for g in range(groups):
        matrix = np.zeros((rows, c_out, cols, c_in))
        for tap in np.ndindex(*taps):
            source = out_index * np.array(strides) + np.array(tap) * np.array(dilations) - np.array(lead)
            inside = np.all((source >= 0) & (source < np.array(in_sizes)), axis=1)
            flat = np.ravel_multi_index(source[inside].T, in_sizes) if inside.any() else np.array([], int)
            matrix[np.flatnonzero(inside), :, flat, :] += kernel[(g, *tap)].T
        sigma = float(np.linalg.svd(matrix.reshape(rows * c_out, cols * c_in), compute_uv=False)[0])
        best = max(best, sigma + 64 * EPS64 * (rows * c_out + cols * c_in) * float(np.linalg.norm(matrix)))
    return best


def _spatial(shape, data_format):
    return tuple(shape[2:]) if data_format == "channels_first" else tuple(shape[1:-1])


def convolution_norm_report(layer, kind: str, kernel, input_shape) -> tuple[float, str]:
    """``(certified upper bound, method)`` on the operator norm of a Keras convolution layer.

    Args:
        layer: the (inner) ``Conv*``, ``Conv*Transpose`` or ``DepthwiseConv*`` layer.
        kind: ``linear_maps.layer_kind(layer)``.
        kernel: numpy kernel in the layer's layout (e.g. a spectrally normalized one).
        input_shape: the full input shape ``(batch, ...)`` the layer is applied to.

    Returns the smaller of the ``"fft-circulant"`` bound and, for convolutions
    and depthwise convolutions small enough, the exact ``"svd-explicit"`` norm.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    output_shape = tuple(layer.compute_output_shape(tuple(input_shape)))
    fmt = getattr(layer, "data_format", "channels_last")
    n_in, n_out = _spatial(input_shape, fmt), _spatial(output_shape, fmt)
    strides, dilations = tuple(layer.strides), tuple(layer.dilation_rate)
    if kind == lm.CONV_TRANSPOSE:
        # y = A^T x, A the strided correlation with kernel (*k, filters, in) from
        # the transposed layer's output (size n_out) to its input (size n_in).
        return circulant_norm_bound(kernel[None], n_out, n_in, strides, dilations), "fft-circulant"
    if kind == lm.CONV:
        groups = int(getattr(layer, "groups", 1) or 1)
        c_out = kernel.shape[-1] // groups
        blocks = np.stack([kernel[..., g * c_out : (g + 1) * c_out] for g in range(groups)])
    elif kind == lm.DEPTHWISE:
        # (*k, c_in, multiplier): channel c feeds only its own `multiplier` outputs.
        blocks = np.moveaxis(kernel, -2, 0)[..., None, :]
    else:
        raise ValueError(f"convolution_norm_report: layer kind {kind!r} is not a convolution.")
    bound = circulant_norm_bound(blocks, n_in, n_out, strides, dilations)
    entries = int(np.prod(n_in)) * int(np.prod(n_out)) * blocks.shape[-1] * blocks.shape[-2]
    if entries <= EXPLICIT_MAX_ENTRIES:
        exact = explicit_norm(blocks, n_in, n_out, strides, dilations, layer.padding)
        if exact < bound:
            return exact, "svd-explicit"
    return bound, "fft-circulant"


def convolution_norm_bound(layer, kind: str, kernel, input_shape) -> float:
    """Certified upper bound on a convolution layer's operator norm (see :func:`convolution_norm_report`)."""
    return convolution_norm_report(layer, kind, kernel, input_shape)[0]
