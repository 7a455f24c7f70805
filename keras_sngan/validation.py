"""Argument checks shared by the package: one message format everywhere.

Errors name the owner (``"WGAN"``, ``"load_dataset"``, ...), the parameter,
what is allowed and the value received, e.g.
``WGAN: `n_critic` must be an integer >= 1, received 0.``
"""

from __future__ import annotations

import math
import numbers


def _prefix(owner):
    return f"{owner}: " if owner else ""


def check_int(name: str, value, minimum: int, owner: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be an integer >= {minimum}, received {value!r}."
        )
    return int(value)


def check_number(name: str, value, minimum: float = 0, *, strict: bool = True, owner: str | None = None) -> float:
    """``value`` as a ``float`` if it is a finite number (not a bool) ``> minimum`` (``>=`` unless strict)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    ok = number > minimum if strict else number >= minimum
    if not ok or math.isinf(number) or isinstance(value, bool):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be a finite number {bound}, received {value!r}."
        )
    return number
