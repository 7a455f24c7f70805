"""VEEGAN / PacGAN mode statistics of the Gaussian-mixture toy sets."""

from __future__ import annotations

import numpy as np

from keras_sngan.metrics.wasserstein import _as_matrix


def mode_statistics(samples, centers, std: float, *, n_std: float = 3.0, min_count: int = 1) -> dict:
    """High-quality fraction and modes covered for a Gaussian mixture.

    Definitions of VEEGAN (Srivastava et al. 2017), also used by PacGAN
    (Lin et al. 2018):

    - a sample is **high quality** if its Euclidean distance to the nearest
      mode center is at most ``n_std`` standard deviations (default 3);
    - a mode is **covered** if at least ``min_count`` high-quality samples
      have it as their nearest mode. VEEGAN counts a mode with one such
      sample (``min_count=1``, the default); PacGAN declares a mode lost when
      it gets fewer than 20 of 2,500 samples (1/5 of its expected count on
      the 25-mode grid), i.e. ``min_count=20`` for 2,500 samples.

    For reference, exact samples of an isotropic 2-D mode lie within 3 std
    with probability ``1 - exp(-9/2) = 0.989``, so real data scores about
    0.989, not 1.

    Args:
        samples: array ``(n, d)``.
        centers: mode centers ``(k, d)`` (see
            ``keras_sngan.datasets.gaussian_mixture_modes``).
        std: per-coordinate standard deviation of every mode.
        n_std: quality radius in standard deviations.
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``{"high_quality_fraction": float, "modes_covered": int,
        "num_modes": int, "counts": int array (k,)}`` with the number of
        high-quality samples per mode.

    Example:
        >>> from keras_sngan.datasets import gaussian_mixture_modes
        >>> centers, std = gaussian_mixture_modes("8gaussians")
        >>> mode_statistics(centers[:3], centers, std)["modes_covered"]
        3

    Reference:
        Srivastava, Valkov, Russell, Gutmann, Sutton. "VEEGAN: Reducing Mode
        Collapse in GANs using Implicit Variational Learning", NeurIPS 2017.
        Lin, Khetan, Fanti, Oh. "PacGAN: The power of two samples in
        generative adversarial networks", NeurIPS 2018.
    """
    samples = _as_matrix("samples", samples)
    centers = _as_matrix("centers", centers)
    if samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"mode_statistics: `samples` have {samples.shape[1]} coordinates but `centers` "
            f"have {centers.shape[1]}."
        )
    if not std > 0:
        raise ValueError(f"mode_statistics: `std` must be > 0, received {std!r}.")
    if not n_std > 0:
        raise ValueError(f"mode_statistics: `n_std` must be > 0, received {n_std!r}.")
    if int(min_count) < 1:
        raise ValueError(f"mode_statistics: `min_count` must be >= 1, received {min_count!r}.")
    distances = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)
    nearest = np.argmin(distances, axis=1)
    high_quality = distances[np.arange(len(samples)), nearest] <= n_std * std
    counts = np.bincount(nearest[high_quality], minlength=len(centers))
    return {
        "high_quality_fraction": float(np.mean(high_quality)),
        "modes_covered": int(np.sum(counts >= int(min_count))),
        "num_modes": int(len(centers)),
        "counts": counts,
    }
