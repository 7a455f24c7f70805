"""Does spectral normalization make a network 1-Lipschitz? (poster: "Main Result").

For spectrally normalized MLPs with ReLU, LeakyReLU, GELU and Swish at
several depths, and in three states:

- ``"init"``: freshly initialized;
- ``"trained"``: after a short regression onto the steep linear target
  ``y = target_slope * x_1`` (the network is pushed to be as steep as its
  constraint allows);
- ``"worst_case"``: a width-1 chain whose weights have spectral norm exactly 1
  and whose biases place every pre-activation at the activation's point of
  largest slope (the construction that makes the product bound tight).

we record the certified upper bound (product of layer norms and activation
Lipschitz constants, :func:`keras_sngan.lipschitz.lipschitz_upper_bound`) and
the certified lower bound (largest rounding-safe slope of a realised input
pair found by search, :func:`keras_sngan.lipschitz.lipschitz_lower_bound`).
Both are certified, so the true Lipschitz constant lies between them and no
row can have ``lower_bound > upper_bound``. A 1-Lipschitz guarantee holds if
the upper bound is <= 1; it is violated in fact if the lower bound exceeds 1.
``upper_bound_methods`` / ``lower_bound_method`` name how each was certified.

For convolutions, a standard CNN critic with ``"reshape"`` (Miyato) vs
``"operator"`` normalization: per layer the power-iteration estimate of the
operator norm (``operator_norm``, from below) and its certified upper bound
(``certified_norm``, ``norm_method``), and the whole-network bounds.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from keras_sngan.poster.plumbing import io

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "swish")
STATES = ("init", "trained", "worst_case")

CERTIFY_TOL = 0.05
"""Slack on "upper bound <= 1" in the ``certified_1_lipschitz`` column: SN
divides by a power-iteration *estimate* of sigma (one step per training call),
which lags the true sigma of a kernel that is being trained; the exact SVD of
the normalized kernel can then exceed 1 by a few percent. The excess is
reported in ``upper_bound``, the tolerance only names it."""

VIOLATION_TOL = 0.02
"""Slack on "lower bound > 1" in the ``violates_1_lipschitz`` column. The lower
bound is certified (rounding margin, realised steps), so any value above 1 is a
real violation; the slack only keeps the flag for clear violations."""

LOWER_BOUND_METHOD = "certified-slope"
"""How ``lower_bound`` is certified: a realised float32 input pair's slope after
the float32 rounding margin (:mod:`keras_sngan.lipschitz.lower`)."""


def _max_slope_point(activation: str) -> float:
    """Pre-activation where the activation's slope is largest (any x > 0 for ReLU-type)."""
    if activation in ("relu", "leaky_relu"):
        return 1.0
    import keras
    from scipy.optimize import minimize_scalar

    fn = keras.activations.get("gelu" if activation == "gelu" else "silu")

    def negative_slope(x, h=1e-3):
        values = keras.ops.convert_to_numpy(fn(np.array([x - h, x + h], "float64")))
        return -float(values[1] - values[0]) / (2 * h)

    return float(minimize_scalar(negative_slope, bounds=(0.0, 4.0), method="bounded").x)


def _worst_case_chain(activation: str, depth: int):
    """Width-1 SN chain with every pre-activation at the max-slope point."""
    import keras

    from keras_sngan import models

    critic = models.toy_critic(input_dim=1, width=1, depth=depth, lipschitz="sn", activation=activation, name="chain")
    point = _max_slope_point(activation)
    act = keras.activations.get({"gelu": "gelu", "swish": "silu"}.get(activation, activation))
    if activation == "leaky_relu":
        act_value = point  # positive side of LeakyReLU is the identity
    else:
        act_value = float(keras.ops.convert_to_numpy(act(np.array([point], "float32")))[0])
    previous = 0.0  # input x = 0 reaches the first layer
    for layer in critic.layers:
        if hasattr(layer, "normalized_kernel"):
            inner = layer.layer
            inner.kernel.assign(np.ones(inner.kernel.shape, "float32"))
            is_last = layer.name == "score"
            inner.bias.assign(np.full(inner.bias.shape, 0.0 if is_last else point - previous, "float32"))
            previous = act_value
    for _ in range(3):  # re-converge the stored power-iteration vectors to the new kernels
        critic(np.zeros((1, 1), "float32"), training=True)
    return critic


def _fit_steep(critic, input_dim: int, slope: float, steps: int, seed: int):
    import keras

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4096, input_dim)).astype("float32")
    y = (slope * x[:, :1]).astype("float32")
    critic.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    critic.fit(x, y, batch_size=256, epochs=max(1, steps // 16), steps_per_epoch=16, verbose=0)


def mlp_bounds(activations, depths, width: int = 64, input_dim: int = 2, target_slope: float = 3.0, train_steps: int = 200, n_starts: int = 32, search_steps: int = 100, seed: int = 0) -> pd.DataFrame:
    """Upper and lower Lipschitz bounds of SN MLPs (see module docstring).

    Returns:
        One row per ``(activation, depth, state)`` with ``upper_bound``,
        ``lower_bound``, ``upper_bound_methods`` (the certification methods of
        its factors), ``lower_bound_method``, ``activation_lipschitz``
        ``certified_1_lipschitz`` (upper bound <= 1 + :data:`CERTIFY_TOL`) and
        ``violates_1_lipschitz`` (lower bound > 1 + :data:`VIOLATION_TOL`).
    """
    import keras

    from keras_sngan import lipschitz, models

    for name in activations:
        io.check_choice("mlp_bounds", "activations", name, ACTIVATIONS)
    width = io.check_int("mlp_bounds", "width", width, 1)
    n_starts = io.check_int("mlp_bounds", "n_starts", n_starts, 1)
    search_steps = io.check_int("mlp_bounds", "search_steps", search_steps, 0)
    train_steps = io.check_int("mlp_bounds", "train_steps", train_steps, 1)
    rows = []
    for activation in activations:
        for depth in depths:
            depth = io.check_int("mlp_bounds", "depths", depth, 1)
            for state in STATES:
                keras.utils.set_random_seed(seed + depth)
                if state == "worst_case":
                    critic = _worst_case_chain(activation, depth)
                    dim = 1
                else:
                    critic = models.toy_critic(input_dim=input_dim, width=width, depth=depth, lipschitz="sn", activation=activation)
                    if state == "trained":
                        _fit_steep(critic, input_dim, target_slope, train_steps, seed)
                    dim = input_dim
                upper = lipschitz.lipschitz_upper_bound(critic)
                # The worst-case chain has its steepest slope at the input 0: start a search there too.
                starts = np.zeros((1, dim)) if state == "worst_case" else None
                lower = lipschitz.lipschitz_lower_bound(
                    critic, n_starts=n_starts, steps=search_steps, seed=seed, starts=starts
                )
                rows.append(
                    {
                        "activation": activation,
                        "depth": depth,
                        "state": state,
                        "width": 1 if state == "worst_case" else width,
                        "upper_bound": upper["bound"],
                        "lower_bound": lower["bound"],
                        "upper_bound_methods": _methods(upper),
                        "lower_bound_method": LOWER_BOUND_METHOD,
                        "activation_lipschitz": lipschitz.activation_lipschitz(
                            "leaky_relu" if activation == "leaky_relu" else activation
                        ),
                        "certified_1_lipschitz": bool(upper["bound"] <= 1.0 + CERTIFY_TOL),
                        "violates_1_lipschitz": bool(lower["bound"] > 1.0 + VIOLATION_TOL),
                    }
                )
                keras.backend.clear_session()
    return pd.DataFrame(rows)


def _methods(upper: dict) -> str:
    """The distinct certification methods of an upper bound's factors, in order, ``+``-joined."""
    return "+".join(dict.fromkeys(f["method"] for f in upper["factors"]))


def conv_bounds(image_size: int = 16, channels: int = 3, base_channels: int = 16, methods=("reshape", "operator"), n_starts: int = 8, search_steps: int = 50, power_iterations: int = 2000, seed: int = 0):
    """Per-layer operator norms and whole-network bounds of SN conv critics.

    Returns:
        ``(layers, networks)``: per-layer rows ``method, layer, type,
        operator_norm`` (power-iteration estimate, capped at
        ``power_iterations`` steps; from below), ``certified_norm`` and
        ``norm_method`` (certified upper bound and how); per-network rows
        ``method, upper_bound, lower_bound, max_layer_norm`` (largest
        certified layer norm), ``upper_bound_methods``, ``lower_bound_method``.
    """
    import keras

    from keras_sngan import linear_maps as lm
    from keras_sngan import lipschitz, models

    power_iterations = io.check_int("conv_bounds", "power_iterations", power_iterations, 10)
    layer_rows, network_rows = [], []
    for method in methods:
        io.check_choice("conv_bounds", "methods", method, ("reshape", "bidirectional", "operator"))
        keras.utils.set_random_seed(seed)
        critic = models.standard_critic(
            image_size=image_size, channels=channels, base_channels=base_channels, lipschitz="sn", sn_method=method
        )
        upper = lipschitz.lipschitz_upper_bound(critic)
        norms = []
        for layer, input_shape in lipschitz.layer_uses(critic):
            inner = getattr(layer, "layer", layer)
            if lm.layer_kind(inner) is None:
                continue
            certified, norm_method = lipschitz.linear_layer_norm_report(layer, input_shape)
            norms.append(
                {
                    "layer": layer.name,
                    "type": type(inner).__name__,
                    "operator_norm": lipschitz.power_iteration_norm(layer, input_shape, iterations=power_iterations),
                    "certified_norm": certified,
                    "norm_method": norm_method,
                }
            )
        layer_rows += [{"method": method, **row} for row in norms]
        lower = lipschitz.lipschitz_lower_bound(critic, n_starts=n_starts, steps=search_steps, seed=seed)
        network_rows.append(
            {
                "method": method,
                "image_size": image_size,
                "base_channels": base_channels,
                "upper_bound": upper["bound"],
                "lower_bound": lower["bound"],
                "max_layer_norm": max(r["certified_norm"] for r in norms),
                "upper_bound_methods": _methods(upper),
                "lower_bound_method": LOWER_BOUND_METHOD,
            }
        )
        keras.backend.clear_session()
    return pd.DataFrame(layer_rows), pd.DataFrame(network_rows)


def run(out_dir, activations, depths, width=64, target_slope=3.0, train_steps=200, n_starts=32, search_steps=100, conv=None, seed=0) -> dict:
    """Run the Lipschitz experiment and write ``mlp_bounds.csv``,
    ``conv_layers.csv``, ``conv_networks.csv`` and ``lipschitz_summary.json``.

    Args:
        conv: dict of :func:`conv_bounds` keyword arguments (``image_size``,
            ``channels``, ``base_channels``, ``n_starts``, ``search_steps``,
            ``power_iterations``).
    """
    conv = dict(conv or {})
    mlp = mlp_bounds(activations, depths, width, 2, target_slope, train_steps, n_starts, search_steps, seed)
    layers, networks = conv_bounds(seed=seed, **conv)
    io.write_csv(os.path.join(out_dir, "mlp_bounds.csv"), mlp)
    io.write_csv(os.path.join(out_dir, "conv_layers.csv"), layers)
    io.write_csv(os.path.join(out_dir, "conv_networks.csv"), networks)
    summary = {
        "activation_lipschitz": {a: float(mlp[mlp.activation == a]["activation_lipschitz"].iloc[0]) for a in mlp.activation.unique()},
        "max_upper_bound": {a: float(g["upper_bound"].max()) for a, g in mlp[mlp.state != "worst_case"].groupby("activation")},
        "max_lower_bound": {
            f"{a}/{s}": float(g["lower_bound"].max()) for (a, s), g in mlp.groupby(["activation", "state"])
        },
        "conv": networks.to_dict(orient="records"),
        "expected_worst_case": {
            a: float(mlp[mlp.activation == a]["activation_lipschitz"].iloc[0]) ** int(max(depths))
            for a in mlp.activation.unique()
        },
    }
    io.write_json(os.path.join(out_dir, "lipschitz_summary.json"), summary)
    return summary


__all__ = ["ACTIVATIONS", "CERTIFY_TOL", "LOWER_BOUND_METHOD", "STATES", "VIOLATION_TOL", "conv_bounds", "mlp_bounds", "run"]
