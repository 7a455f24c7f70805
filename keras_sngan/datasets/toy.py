"""The WGAN-GP toy sets, sampled exactly as in Gulrajani et al.'s ``gan_toy.py``."""

from __future__ import annotations

import numpy as np

from keras_sngan.validation import check_int

TOY_DATASETS = ("8gaussians", "25gaussians", "swissroll")
"""Names of the built-in 2-D toy sets (infinite-sample generators)."""

DEFAULT_TOY_TRAIN_SIZE = 100_000
"""Toy training-set size; ``gan_toy.py`` uses a fixed 100,000-point 25gaussians set."""

DEFAULT_TOY_HELDOUT_SIZE = 2_000
"""Toy held-out size; exact W1 (see ``keras_sngan.metrics``) is fast up to ~2000 points."""

_TOY_SCALE = {"8gaussians": 1.414, "25gaussians": 2.828, "swissroll": 7.5}
_TOY_NOISE = {"8gaussians": 0.02, "25gaussians": 0.05, "swissroll": 0.25}



def gaussian_mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """Mode centers and per-coordinate std of a toy Gaussian mixture.

    Both are given in the scale of the samples (after ``gan_toy.py``'s final
    division), so they can be fed directly to
    ``keras_sngan.metrics.mode_statistics``.

    Args:
        name: ``"8gaussians"`` or ``"25gaussians"``.

    Returns:
        ``(centers, std)``: ``centers`` is a float64 array of shape ``(8, 2)``
        or ``(25, 2)``; ``std`` is the isotropic per-coordinate standard
        deviation of every mode (``0.02 / 1.414`` and ``0.05 / 2.828``).

    Example:
        >>> centers, std = gaussian_mixture_modes("8gaussians")
        >>> centers.shape, round(std, 5)
        ((8, 2), 0.01414)
    """
    if name == "8gaussians":
        d = 1.0 / np.sqrt(2.0)
        unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)]
        centers = 2.0 * np.asarray(unit, dtype=np.float64)
    elif name == "25gaussians":
        centers = np.asarray(
            [(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)], dtype=np.float64
        )
    else:
        raise ValueError(
            "gaussian_mixture_modes: `name` must be '8gaussians' or '25gaussians', "
            f"received {name!r}."
        )
    scale = _TOY_SCALE[name]
    return centers / scale, _TOY_NOISE[name] / scale


def sample_toy(name: str, n: int, seed: int | None = None) -> np.ndarray:
    """Draw ``n`` i.i.d. points from a WGAN-GP toy distribution.

    Same recipe, noise and scaling as ``inf_train_gen`` in Gulrajani et al.'s
    ``gan_toy.py`` (verified against the original source):

    - ``"8gaussians"``: a uniformly chosen center among the 4 axis points and
      4 diagonal points of the unit circle, scaled by 2, plus N(0, 0.02^2)
      noise per coordinate; then everything divided by 1.414.
    - ``"25gaussians"``: a uniformly chosen center of the grid
      ``{-4, -2, 0, 2, 4}^2`` (``2 * {-2..2}``), plus N(0, 0.05^2) noise per
      coordinate; then divided by 2.828. As in ``gan_toy.py`` (which builds
      a fixed 100,000-point set), every center gets the same number of points
      (``n // 25``; the ``n % 25`` left over go to distinct random centers)
      and the points are shuffled.
    - ``"swissroll"``: ``sklearn.datasets.make_swiss_roll(noise=0.25)``,
      columns ``[0, 2]``, divided by 7.5.

    Args:
        name: one of :data:`TOY_DATASETS`.
        n: number of points, ``>= 1``.
        seed: seed of the NumPy generator (``None``: fresh entropy).

    Returns:
        float32 array of shape ``(n, 2)``.

    Example:
        >>> sample_toy("swissroll", 1000, seed=0).shape
        (1000, 2)

    Reference:
        Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. "Improved Training of
        Wasserstein GANs", NeurIPS 2017 (code: ``improved_wgan_training/gan_toy.py``).
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"sample_toy: `name` must be one of {TOY_DATASETS}, received {name!r}.")
    n = check_int("n", n, 1, owner="sample_toy")
    rng = np.random.default_rng(seed)
    if name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        # make_swiss_roll takes a legacy RandomState seed; derive it from rng.
        points, _ = make_swiss_roll(
            n_samples=n, noise=_TOY_NOISE[name], random_state=int(rng.integers(2**31 - 1))
        )
        points = points[:, [0, 2]]
    else:
        centers, _ = gaussian_mixture_modes(name)
        centers = centers * _TOY_SCALE[name]  # back to the unscaled centers
        if name == "25gaussians":  # equal counts per center, as gan_toy.py
            k = len(centers)
            idx = np.concatenate(
                [np.repeat(np.arange(k), n // k), rng.choice(k, n % k, replace=False)]
            )
            idx = rng.permutation(idx)
        else:  # gan_toy.py: random.choice(centers) for every point
            idx = rng.integers(len(centers), size=n)
        points = centers[idx] + _TOY_NOISE[name] * rng.standard_normal((n, 2))
    return (points / _TOY_SCALE[name]).astype(np.float32)
