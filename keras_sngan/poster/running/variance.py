"""Initialization variance and signal propagation (poster: "SN as an implicit variance-based model").

Two measurements, both in NumPy (no training, exact spectral norms by SVD):

1. :func:`variance_check`: with ``x_j ~ N(0, 1)`` and ``W_ij ~ N(0, s^2)``
   independent, ``Var((Wx)_i) = n s^2``. Measured on fresh independent draws
   for every ``(n, s^2)``, with the sampling standard error of a variance
   estimate, ``n s^2 sqrt((2 + 6/n) / (N - 1))`` (``(Wx)_i`` has excess
   kurtosis ``6/n``), so a deviation can be read as a z-score.
2. :func:`propagate`: deep fully connected networks (no bias) with ReLU or
   LeakyReLU, initialized with ``s^2 = c / n`` (``c = 1`` LeCun, ``c = 2``
   He), Glorot, or Gaussian weights divided by their exact spectral norm
   (SN, ``reshape``; and BSN with a global scale). For each layer: RMS
   activation norm relative to the input, RMS norm of the backpropagated
   gradient of a random linear read-out relative to the last layer, the
   layer's spectral norm and its gain ``||Wh|| / ||h||`` on typical inputs and
   on the worst input. The SN bound is also checked on non-Gaussian inputs
   (heavy-tailed, one-hot, and the top singular vector of the first layer).

:func:`run` does both and writes CSV + JSON; the figure is drawn by
:mod:`keras_sngan.poster.reporting.figures`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from keras_sngan.poster.plumbing import io

ACTIVATIONS = ("relu", "leaky_relu", "linear")
LEAKY_SLOPE = 0.2
SN_SCHEMES = ("sn", "bsn")


def variance_check(widths, s2_values, samples: int = 100_000, seed: int = 0, chunk: int = 8192) -> pd.DataFrame:
    """Empirical ``Var((Wx)_i)`` against ``n s^2`` on independent draws.

    Args:
        widths: input sizes ``n``.
        s2_values: weight variances ``s^2``.
        samples: independent ``(w, x)`` pairs per cell (each a fresh row of
            ``W`` and a fresh ``x``).
        seed: NumPy seed.
        chunk: pairs drawn at once (memory bound).

    Returns:
        One row per ``(n, s2)``: ``empirical``, ``predicted = n s^2``,
        ``ratio``, ``std_error`` (of the empirical variance under the
        prediction) and ``z = (empirical - predicted) / std_error``.
    """
    samples = io.check_int("variance_check", "samples", samples, 2)
    rng = np.random.default_rng(seed)
    rows = []
    for n in widths:
        n = io.check_int("variance_check", "widths", n, 1)
        for s2 in s2_values:
            s2 = io.check_positive("variance_check", "s2_values", s2)
            total, total_sq, done = 0.0, 0.0, 0
            while done < samples:
                m = min(chunk, samples - done)
                w = rng.standard_normal((m, n)) * math.sqrt(s2)
                x = rng.standard_normal((m, n))
                y = np.einsum("ij,ij->i", w, x)
                total += y.sum()
                total_sq += np.square(y).sum()
                done += m
            mean = total / samples
            empirical = (total_sq - samples * mean**2) / (samples - 1)
            predicted = n * s2
            std_error = predicted * math.sqrt((2.0 + 6.0 / n) / (samples - 1))
            rows.append(
                {
                    "n": n,
                    "s2": s2,
                    "samples": samples,
                    "empirical": empirical,
                    "predicted": predicted,
                    "ratio": empirical / predicted,
                    "std_error": std_error,
                    "z": (empirical - predicted) / std_error,
                }
            )
    return pd.DataFrame(rows)


def _activation(name):
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(z.dtype))
    if name == "leaky_relu":
        return (
            lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
            lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
        )
    if name == "linear":
        return (lambda z: z), (lambda z: np.ones_like(z))
    raise ValueError(f"propagate: `activation` must be one of {list(ACTIVATIONS)}, received {name!r}.")


def scheme_names(c_values, bsn_scale: float) -> list[str]:
    """Names of the initialization schemes, in plotting order."""
    return [f"c={c:g}" for c in c_values] + ["glorot", "sn", f"bsn(scale={bsn_scale:g})"]


def init_weights(scheme: str, width: int, depth: int, rng, c_values=(), bsn_scale: float = 1.0):
    """Square ``width x width`` weight matrices for one scheme.

    ``"c=<c>"``: ``N(0, c / n)``; ``"glorot"``: ``N(0, 2 / (fan_in + fan_out))``
    (equal to LeCun for square layers); ``"sn"``: ``N(0, 1/n)`` divided by
    its exact largest singular value; ``"bsn(scale=...)"``: the same times
    the scale (for dense layers the bidirectional norm equals the reshape
    norm, so BSN differs from SN only by the scale).
    """
    weights = []
    for _ in range(depth):
        w = rng.standard_normal((width, width)) / math.sqrt(width)
        if scheme.startswith("c="):
            w = w * math.sqrt(float(scheme[2:]))
        elif scheme == "glorot":
            w = w * math.sqrt(2.0 * width / (width + width))
        elif scheme == "sn":
            w = w / np.linalg.norm(w, 2)
        elif scheme.startswith("bsn"):
            w = bsn_scale * w / np.linalg.norm(w, 2)
        else:
            raise ValueError(
                f"init_weights: `scheme` must be one of {scheme_names(c_values, bsn_scale)}, received {scheme!r}."
            )
        weights.append(w)
    return weights


def forward_backward(weights, x, activation: str, readout):
    """Activations and backpropagated gradients of ``f = <h_L, readout>``.

    Args:
        weights: list of ``(n, n)`` matrices, ``h_l = phi(W_l h_{l-1})``.
        x: inputs ``(batch, n)``.
        activation: one of :data:`ACTIVATIONS`.
        readout: vector ``(n,)`` of the linear read-out.

    Returns:
        ``(activations, gradients, gains)``: lists over layers ``1..L`` of
        per-sample norms ``||h_l||``, ``||df/dh_{l-1}||`` (the gradient
        reaching layer ``l``'s input) and linear gains ``||W_l h_{l-1}|| / ||h_{l-1}||``.
    """
    phi, dphi = _activation(activation)
    h = x
    pre, norms, gains = [], [], []
    for w in weights:
        z = h @ w.T
        gains.append(np.linalg.norm(z, axis=1) / np.maximum(np.linalg.norm(h, axis=1), 1e-300))
        pre.append(z)
        h = phi(z)
        norms.append(np.linalg.norm(h, axis=1))
    delta = np.broadcast_to(readout, h.shape).copy()
    grads = [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        delta = (delta * dphi(pre[layer])) @ weights[layer]
        grads[layer] = np.linalg.norm(delta, axis=1)
    return norms, grads, gains


def _rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def propagate(depths, activations, c_values, bsn_scale: float, width: int = 256, batch: int = 256, seed: int = 0) -> pd.DataFrame:
    """Per-layer activation and gradient norms for every scheme, depth and activation.

    Returns a long table with columns ``depth, activation, scheme, layer,
    activation_norm, gradient_norm, spectral_norm, typical_gain``:
    ``activation_norm`` is the RMS of ``||h_l||`` over the batch divided by
    the RMS of ``||x||``; ``gradient_norm`` the RMS of ``||df/dh_{l-1}||``
    divided by that at the last layer's input (so the read-out does not
    matter); ``typical_gain`` the mean of ``||W_l h|| / ||h||``.
    """
    width = io.check_int("propagate", "width", width, 2)
    batch = io.check_int("propagate", "batch", batch, 1)
    for name in activations:
        io.check_choice("propagate", "activations", name, ACTIVATIONS)
    rows = []
    for depth in depths:
        depth = io.check_int("propagate", "depths", depth, 1)
        for activation in activations:
            for scheme in scheme_names(c_values, bsn_scale):
                rng = np.random.default_rng([seed, depth, ACTIVATIONS.index(activation)])
                weights = init_weights(scheme, width, depth, rng, c_values, bsn_scale)
                x = rng.standard_normal((batch, width))
                readout = rng.standard_normal(width) / math.sqrt(width)
                norms, grads, gains = forward_backward(weights, x, activation, readout)
                x_norm = _rms(np.linalg.norm(x, axis=1))
                g_last = _rms(grads[-1])
                for layer in range(depth):
                    rows.append(
                        {
                            "depth": depth,
                            "activation": activation,
                            "scheme": scheme,
                            "layer": layer + 1,
                            "activation_norm": _rms(norms[layer]) / x_norm,
                            "gradient_norm": _rms(grads[layer]) / max(g_last, 1e-300),
                            "spectral_norm": float(np.linalg.norm(weights[layer], 2)),
                            "typical_gain": float(np.mean(gains[layer])),
                        }
                    )
    return pd.DataFrame(rows)


def _input_families(first_weight, batch, rng):
    """Non-Gaussian inputs for the distribution-free SN check."""
    n = first_weight.shape[1]
    top = np.linalg.svd(first_weight)[2][0]
    return {
        "gaussian": rng.standard_normal((batch, n)),
        "student_t(df=2.5)": rng.standard_t(2.5, (batch, n)),
        "one_hot": np.eye(n)[rng.integers(n, size=batch)] * 10.0,
        "top_singular_vector": np.outer(rng.choice([-1.0, 1.0], size=batch) * 3.0, top),
    }


def sn_bound_check(depth: int, activations, width: int = 256, batch: int = 256, seed: int = 0) -> pd.DataFrame:
    """Does SN bound every layer's gain by 1 whatever the input distribution?

    For an SN network (``W / sigma_max(W)``, no bias) and each input family,
    the largest per-sample layer gain ``||h_l|| / ||h_{l-1}||`` over all layers
    and samples, and the largest end-to-end ratio ``||h_L|| / ||x||``.
    Both must be ``<= 1`` for a 1-Lipschitz activation with ``phi(0) = 0``.
    """
    rows = []
    for activation in activations:
        io.check_choice("sn_bound_check", "activations", activation, ACTIVATIONS)
        rng = np.random.default_rng([seed, 7, ACTIVATIONS.index(activation)])
        weights = init_weights("sn", width, depth, rng)
        phi, _ = _activation(activation)
        for family, x in _input_families(weights[0], batch, rng).items():
            h, worst, typical = x, 0.0, []
            for w in weights:
                new = phi(h @ w.T)
                ratio = np.linalg.norm(new, axis=1) / np.maximum(np.linalg.norm(h, axis=1), 1e-300)
                worst = max(worst, float(ratio.max()))
                typical.append(float(np.mean(ratio)))
                h = new
            end = np.linalg.norm(h, axis=1) / np.linalg.norm(x, axis=1)
            rows.append(
                {
                    "activation": activation,
                    "input": family,
                    "depth": depth,
                    "max_layer_gain": worst,
                    "mean_layer_gain": float(np.mean(typical)),
                    "max_end_to_end_gain": float(end.max()),
                }
            )
    return pd.DataFrame(rows)


def stability_summary(profile: pd.DataFrame) -> pd.DataFrame:
    """Per-layer growth factors of activation and gradient norms.

    For each ``(depth, activation, scheme)``: the geometric-mean factor per
    layer, ``(norm_L / norm_1)^(1 / (L - 1))`` for activations (and the
    reverse direction for gradients), plus the largest spectral norm and the
    mean typical gain. A factor of 1 is perfectly stable; 0.707 means the
    norm shrinks by sqrt(2) per layer.
    """
    rows = []
    for (depth, activation, scheme), group in profile.groupby(["depth", "activation", "scheme"], sort=False):
        group = group.sort_values("layer")
        steps = max(len(group) - 1, 1)
        a = group["activation_norm"].to_numpy()
        g = group["gradient_norm"].to_numpy()
        rows.append(
            {
                "depth": depth,
                "activation": activation,
                "scheme": scheme,
                "activation_factor_per_layer": float((a[-1] / a[0]) ** (1.0 / steps)) if a[0] > 0 else 0.0,
                "gradient_factor_per_layer": float((g[0] / g[-1]) ** (1.0 / steps)) if g[-1] > 0 else 0.0,
                "final_activation_norm": float(a[-1]),
                "first_layer_gradient_norm": float(g[0]),
                "max_spectral_norm": float(group["spectral_norm"].max()),
                "mean_typical_gain": float(group["typical_gain"].mean()),
            }
        )
    return pd.DataFrame(rows)


def run(out_dir, widths, s2_values, samples, depths, activations, c_values, bsn_scale, width=256, batch=256, seed=0) -> dict:
    """Run the variance experiment and write its files into ``out_dir``.

    Files: ``variance_check.csv``, ``propagation.csv``, ``stability.csv``,
    ``sn_bound.csv`` and ``variance_summary.json`` (the headline numbers and
    plain-language statements of what SN does and does not keep stable).

    Returns:
        The summary dict.
    """
    import os

    for name in activations:
        io.check_choice("variance.run", "activations", name, ACTIVATIONS)
    bsn_scale = io.check_positive("variance.run", "bsn_scale", bsn_scale)
    for c in c_values:
        io.check_positive("variance.run", "c_values", c)
    check = variance_check(widths, s2_values, samples=samples, seed=seed)
    profile = propagate(depths, activations, c_values, bsn_scale, width=width, batch=batch, seed=seed)
    stability = stability_summary(profile)
    bound = sn_bound_check(max(depths), activations, width=width, batch=batch, seed=seed)
    io.write_csv(os.path.join(out_dir, "variance_check.csv"), check)
    io.write_csv(os.path.join(out_dir, "propagation.csv"), profile)
    io.write_csv(os.path.join(out_dir, "stability.csv"), stability)
    io.write_csv(os.path.join(out_dir, "sn_bound.csv"), bound)
    summary = summarize(check, stability, bound, bsn_scale)
    io.write_json(os.path.join(out_dir, "variance_summary.json"), summary)
    return summary


def summarize(check: pd.DataFrame, stability: pd.DataFrame, bound: pd.DataFrame, bsn_scale: float) -> dict:
    """Headline numbers and what SN does / does not keep stable, from the tables."""
    deepest = stability[stability["depth"] == stability["depth"].max()]
    factors = {
        f"{row.activation}/{row.scheme}": {
            "activation_factor_per_layer": row.activation_factor_per_layer,
            "gradient_factor_per_layer": row.gradient_factor_per_layer,
            "final_activation_norm": row.final_activation_norm,
            "max_spectral_norm": row.max_spectral_norm,
            "mean_typical_gain": row.mean_typical_gain,
        }
        for row in deepest.itertuples()
    }
    sn = deepest[deepest["scheme"] == "sn"]
    statements = [
        f"Var((Wx)_i) / (n s^2) ranged over [{check['ratio'].min():.4f}, {check['ratio'].max():.4f}] "
        f"(|z| <= {check['z'].abs().max():.2f}) across {len(check)} (n, s^2) cells.",
        f"SN keeps every layer's spectral norm at {sn['max_spectral_norm'].max():.6f} and no layer gain "
        f"above {bound['max_layer_gain'].max():.6f} for Gaussian, heavy-tailed, one-hot and worst-case inputs: "
        "the bound needs no assumption on the input distribution.",
    ]
    for row in sn.itertuples():
        statements.append(
            f"SN does not keep {row.activation} activations stable at depth {row.depth}: on typical inputs "
            f"a normalized Gaussian layer has gain {row.mean_typical_gain:.3f} (not 1), and the activation norm "
            f"changes by a factor {row.activation_factor_per_layer:.3f} per layer "
            f"(final/first-layer norm {row.final_activation_norm:.2e})."
        )
    for row in deepest[deepest["scheme"].str.startswith("bsn")].itertuples():
        statements.append(
            f"BSN with scale {bsn_scale:g} ({row.activation}, depth {row.depth}): activation factor "
            f"{row.activation_factor_per_layer:.3f} per layer, max spectral norm {row.max_spectral_norm:.3f} "
            "(the scale trades the 1-Lipschitz guarantee for signal propagation)."
        )
    return {
        "variance_check": {
            "cells": int(len(check)),
            "min_ratio": float(check["ratio"].min()),
            "max_ratio": float(check["ratio"].max()),
            "max_abs_z": float(check["z"].abs().max()),
        },
        "deepest": int(stability["depth"].max()),
        "per_layer_factors_at_deepest": factors,
        "sn_bound": {
            "max_layer_gain": float(bound["max_layer_gain"].max()),
            "max_end_to_end_gain": float(bound["max_end_to_end_gain"].max()),
            "inputs": sorted(bound["input"].unique().tolist()),
        },
        "bsn_scale": bsn_scale,
        "statements": statements,
    }
