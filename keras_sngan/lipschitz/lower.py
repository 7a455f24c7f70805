"""A lower bound on the Lipschitz constant that is one: certified slopes of realised pairs.

Any pair of inputs gives ``L >= |f(y) - f(x)| / ||y - x||``. The search below
(Adam ascent on the slope of ``n_starts`` pairs, plus central differences
along the input gradient) only *proposes* pairs; a pair counts only through
its certified slope:

- **Realised step.** ``x`` and ``y`` are the float32 arrays the model is
  actually evaluated on, and ``||y - x||`` is computed from them in float64
  (then enlarged by a float64 rounding factor), never from the intended step.
- **Rounding margin.** ``f(x)`` and ``f(y)`` come out of a float32 forward
  pass. Before dividing, ``|f(y) - f(x)|`` is reduced by
  ``ROUNDING_ULPS * eps_32 * (|f(x)| + |f(y)| + G (||x|| + ||y||))``, ``G`` the
  larger input-gradient norm at the two points (at the midpoint for central
  differences): the forward pass's rounding
  error, bounded relative to the size of its output and of the linear part of
  its input (``2^8`` float32 epsilons, about ``3e-5`` relative, well above the
  error of a float32 network of a few dozen layers of width up to a few
  thousand, whose dot products err by at most ``~sqrt(width) eps`` relative
  per layer in practice). A pair whose difference does not clear the margin
  certifies nothing (slope 0).
- **Minimum step from float32 resolution.** Every step is kept at least
  ``2^8 * margin / G`` long (and ``2^12`` float32 ulps of ``||x||_inf``), so the
  margin costs at most ``2^-8`` of a slope and the step is resolved by the
  float32 grid at ``x`` and at ``f(x)``; ``input_scale`` only sets where the
  search starts and its step size.

Input-gradient norms are reported (``max_gradient_norm``) as a diagnostic but
are not part of the bound: float32 autodiff at a ReLU kink can exceed the
constant (``relu(x) - x - relu(-x)`` is 0 everywhere, its autodiff gradient
at 0 is -1).
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_sngan import linear_maps as lm
from keras_sngan.validation import check_int, check_number

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
ROUNDING_ULPS = 2.0**8
"""Assumed bound on a float32 forward pass's error, in float32 epsilons relative
to ``|f(x)| + G ||x||`` (see the module docstring)."""
STEP_FACTOR = 2.0**8
"""Minimum step = ``STEP_FACTOR * margin / G``: the margin costs at most ``1/STEP_FACTOR`` of a slope."""


_COMPILED = weakref.WeakKeyDictionary()  # model -> (scores, gradients) as compiled TensorFlow functions


def _compiled(model):
    """The model's forward pass and input gradient as compiled functions: TensorFlow, JAX (None elsewhere).

    The search calls them a few hundred times per model; eagerly, each call
    cost tens of milliseconds of Python dispatch through the layers. Both read
    the model's variables when called, so a model changed between calls is
    seen as it is. On JAX they are `jax.jit` functions of the model's
    ``stateless_call`` (inference mode: nothing is assigned); on PyTorch the
    eager calls stay.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        if model not in _COMPILED:
            _COMPILED[model] = _jax_compiled(model)
        return _COMPILED[model]
    if backend != "tensorflow":
        return None
    if model not in _COMPILED:
        import tensorflow as tf

        def scores(x):
            return model(x, training=False)

        def gradients(x):
            cotangent = tf.ones((tf.shape(x)[0], 1), dtype="float32")
            return lm.vjp(lambda z: ops.reshape(model(z, training=False), (-1, 1)), x, cotangent)

        _COMPILED[model] = (tf.function(scores, reduce_retracing=True), tf.function(gradients, reduce_retracing=True))
    return _COMPILED[model]


def _jax_compiled(model):
    import jax
    import jax.numpy as jnp

    from keras_sngan.wgan.autodiff import compiled_inference

    def pure_gradients(trainable, non_trainable, x):
        def total(z):
            return jnp.sum(model.stateless_call(trainable, non_trainable, z, training=False)[0].astype(jnp.float32))

        return jax.grad(total)(x)

    gradients_jit = jax.jit(pure_gradients)
    return compiled_inference(model), lambda x: gradients_jit(
        [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x)


def _scores(model, x32) -> np.ndarray:
    compiled = _compiled(model)
    out = ops.convert_to_numpy(model(x32, training=False) if compiled is None else compiled[0](x32))
    if out.ndim == 1 or int(np.prod(out.shape[1:])) != 1:
        raise ValueError(f"`model` must return one score per sample (shape (batch, 1)), got shape {out.shape}.")
    return out.reshape(-1).astype("float64")


def _gradients(model, x32) -> np.ndarray:
    """Per-sample input gradients of the score, on the active backend (float32)."""
    compiled = _compiled(model)
    if compiled is not None:
        return ops.convert_to_numpy(compiled[1](ops.convert_to_tensor(x32))).astype("float64")
    x = ops.convert_to_tensor(x32)
    cotangent = ops.ones((x32.shape[0], 1), dtype="float32")
    grads = lm.vjp(lambda z: ops.reshape(model(z, training=False), (x32.shape[0], 1)), x, cotangent)
    return ops.convert_to_numpy(grads).astype("float64")


def _row_norms(a) -> np.ndarray:
    return np.sqrt(np.sum(np.reshape(a, (a.shape[0], -1)) ** 2, axis=1))


def _row_inf(a) -> np.ndarray:
    return np.max(np.abs(np.reshape(a, (a.shape[0], -1))), axis=1)


def _margin(fx, fy, grad_scale, x32, y32) -> np.ndarray:
    scale = np.abs(fx) + np.abs(fy) + grad_scale * (_row_norms(x32) + _row_norms(y32))
    return ROUNDING_ULPS * EPS32 * scale


def _certify(fx, fy, x32, y32, grad_scale) -> np.ndarray:
    """Certified slopes of pairs whose float32 scores ``fx``, ``fy`` are known."""
    step = _row_norms(y32.astype(np.float64) - x32.astype(np.float64)) * (1 + 8 * EPS64)
    gain = np.abs(fy - fx) - _margin(fx, fy, grad_scale, x32, y32)
    ok = (step > 0) & (gain > 0)
    return np.where(ok, np.maximum(gain, 0.0) / np.where(step > 0, step, 1.0), 0.0)


def certified_slopes(model, x32, y32, gx=None, gy=None) -> np.ndarray:
    """Slopes ``|f(y) - f(x)| / ||y - x||`` that are lower bounds despite rounding.

    ``x32``, ``y32``: float32 arrays of pairs (the inputs the model sees).
    ``gx``, ``gy``: input gradients at them (computed if omitted), which only
    scale the rounding margin (module docstring).
    """
    x32 = np.asarray(x32, dtype=np.float32)
    y32 = np.asarray(y32, dtype=np.float32)
    gx = _gradients(model, x32) if gx is None else gx
    gy = _gradients(model, y32) if gy is None else gy
    grad_scale = np.maximum(_row_norms(gx), _row_norms(gy))
    return _certify(_scores(model, x32), _scores(model, y32), x32, y32, grad_scale)


def _min_step(fx, grad_norm, x32) -> np.ndarray:
    """Shortest step that float32 resolves at ``x`` and at ``f(x)`` (see module docstring).

    Where the gradient vanishes only the input grid counts (any pair there whose
    gain does not clear the margin certifies nothing, which is safe); steps are
    capped at 1e18 so float32 inputs stay finite.
    """
    flat = ~(grad_norm > 0)
    g = np.where(flat, 1.0, grad_norm)
    output = np.where(flat, 0.0, STEP_FACTOR * 2 * ROUNDING_ULPS * EPS32 * (np.abs(fx) / g + 2 * _row_norms(x32)))
    grid = 2.0**12 * np.spacing(_row_inf(x32).astype(np.float32)).astype(np.float64)
    return np.clip(np.maximum(output, grid), 1e-30, 1e18)


def _clamp(d, min_step):
    norms = np.maximum(_row_norms(d), 1e-300)
    factor = np.maximum(1.0, min_step / norms)
    return d * factor.reshape((-1,) + (1,) * (d.ndim - 1))


def lipschitz_lower_bound(
    model,
    n_starts: int = 64,
    steps: int = 200,
    learning_rate: float = 0.05,
    input_scale: float = 1.0,
    seed: int = 0,
    starts=None,
) -> dict:
    """A certified lower bound: the largest certified slope of the pairs a search visits.

    From ``n_starts`` random pairs ``(x, x + d)`` (``x ~ N(0, input_scale^2)``,
    plus any ``starts`` given), Adam ascends the slope ``|f(x) - f(x + d)| / ||d||``
    (step size ``learning_rate * input_scale``); at every step (including the
    first, with ``d`` already clamped to the minimum step) the pair and a
    central difference along the input gradient at ``x`` are certified by
    :func:`certified_slopes`. Every number returned is at most the true
    Lipschitz constant of the function the float32 model computes, for any
    model, offset and input scale (module docstring).

    Args:
        model: a model returning one score per sample, with a fixed input shape.
        starts: optional array ``(k, *input_shape)`` of extra starting points
            (e.g. a point known to have the steepest slope).

    Returns:
        ``{"bound", "max_slope", "max_gradient_norm", "pair"}``: ``bound`` =
        ``max_slope`` (certified), ``max_gradient_norm`` the largest float32
        input-gradient norm seen (a diagnostic, not part of the bound), ``pair``
        the ``(x, y)`` that certified ``bound`` (float32 arrays) or None.
    """
    owner = "lipschitz_lower_bound"
    n_starts = check_int("n_starts", n_starts, 1, owner=owner)
    steps = check_int("steps", steps, 0, owner=owner)
    learning_rate = check_number("learning_rate", learning_rate, 0, owner=owner)
    input_scale = check_number("input_scale", input_scale, 0, owner=owner)
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"{owner} needs a fixed input shape, model has {model.input_shape}.")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_starts, *shape)) * input_scale
    if starts is not None:
        starts = np.asarray(starts, dtype=np.float64)
        if starts.shape[1:] != shape:
            raise ValueError(f"{owner}: `starts` must have shape (k, *{shape}), got {starts.shape}.")
        x = np.concatenate([x, starts])
    d = rng.standard_normal(x.shape) * 0.1 * input_scale
    axes = (-1,) + (1,) * len(shape)
    step_size = learning_rate * input_scale
    moments = [np.zeros_like(x), np.zeros_like(d), np.zeros_like(x), np.zeros_like(d)]
    best = {"bound": 0.0, "max_slope": 0.0, "max_gradient_norm": 0.0, "pair": None}

    def record(slopes, xa, xb):
        i = int(np.argmax(slopes))
        if slopes[i] > best["bound"]:
            best.update(bound=float(slopes[i]), max_slope=float(slopes[i]), pair=(xa[i].copy(), xb[i].copy()))

    for t in range(steps + 1):
        x32 = x.astype(np.float32)
        fx, gx = _scores(model, x32), _gradients(model, x32)
        gx_norm = _row_norms(gx)
        min_step = _min_step(fx, gx_norm, x32)
        # Central difference along the gradient at x, over the shortest resolved step,
        # and the searched pair, its step clamped before it is measured.
        direction = gx / np.maximum(gx_norm, 1e-300).reshape(axes)
        half = (min_step / 2).reshape(axes) * direction
        a32, b32 = (x - half).astype(np.float32), (x + half).astype(np.float32)
        d = _clamp(d, min_step)
        y32 = (x + d).astype(np.float32)
        fa, fb, fy = np.split(_scores(model, np.concatenate([a32, b32, y32])), 3)
        gy = _gradients(model, y32)
        gy_norm = _row_norms(gy)
        best["max_gradient_norm"] = max(best["max_gradient_norm"], float(gx_norm.max()), float(gy_norm.max()))
        record(_certify(fa, fb, a32, b32, gx_norm), a32, b32)  # G: the gradient at the midpoint
        record(_certify(fx, fy, x32, y32, np.maximum(gx_norm, gy_norm)), x32, y32)
        realised = y32.astype(np.float64) - x32.astype(np.float64)
        if t == steps:
            break
        # Ascend the (float32) slope s = |f(x + d) - f(x)| / ||d|| in x and d.
        norm = np.maximum(_row_norms(realised), 1e-300)
        sign = np.sign(fy - fx).reshape(axes)
        slope = (np.abs(fy - fx) / norm).reshape(axes)
        grad_x = sign * (gy - gx) / norm.reshape(axes)
        grad_d = sign * gy / norm.reshape(axes) - slope * realised / (norm**2).reshape(axes)
        for k, (value, grad) in enumerate(((x, grad_x), (d, grad_d))):
            m, v = moments[k], moments[k + 2]
            m[...] = 0.9 * m + 0.1 * grad
            v[...] = 0.999 * v + 0.001 * grad**2
            update = step_size * (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-8 * max(input_scale, 1e-30))
            value += update
    return best
