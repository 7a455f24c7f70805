"""Lipschitz constants of Keras activations (global maximum of ``|phi'|``)."""

from __future__ import annotations

import math
from functools import lru_cache

import keras


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

    result = minimize_scalar(negative_slope, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10})
    # The maximiser is found to ~1e-10, so the maximum to ~1e-20: the margin keeps it an upper bound.
    return -result.fun * (1 + 1e-12)


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


def activation_lipschitz(activation) -> float:
    """Lipschitz constant of a Keras activation (name or function).

    Raises ``ValueError`` for an activation whose constant is not known.
    """
    name = activation if isinstance(activation, str) else keras.activations.serialize(activation)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if name not in ACTIVATION_LIPSCHITZ:
        raise ValueError(
            f"Unknown activation {name!r}: its Lipschitz constant is not known. "
            f"Known activations: {sorted(ACTIVATION_LIPSCHITZ)}."
        )
    return float(ACTIVATION_LIPSCHITZ[name]())
