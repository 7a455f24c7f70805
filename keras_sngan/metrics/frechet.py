"""Frechet distance in a classifier's feature space and classifier-based class coverage."""

from __future__ import annotations

import math

import numpy as np

from keras_sngan.metrics.wasserstein import _as_matrix


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Frechet (2-Wasserstein) distance squared between two Gaussians.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1^{1/2} sigma2 sigma1^{1/2})^{1/2})``
    (Dowson & Landau). The trace of the root is the sum of the square roots
    of the eigenvalues of the symmetric matrix ``sigma1^{1/2} sigma2
    sigma1^{1/2}`` (``numpy.linalg.eigh``), which equals
    ``Tr((sigma1 sigma2)^{1/2})`` of the usual FID code and stays exact when
    the covariances are singular (features with dead units, a collapsed
    generator), where ``scipy.linalg.sqrtm`` of the product warns and the
    reference code's diagonal offset biases the result by about ``-2 d eps``.

    Args:
        mu1: mean vector ``(d,)`` of the first Gaussian.
        sigma1: its covariance matrix ``(d, d)``, symmetric positive
            semi-definite.
        mu2: mean vector ``(d,)`` of the second Gaussian.
        sigma2: its covariance matrix ``(d, d)``, symmetric positive
            semi-definite.
        eps: relative tolerance for round-off: eigenvalues down to ``-eps``
            times the largest are read as zero; more negative ones mean the
            matrices are not covariances (``ValueError``).

    Returns:
        The distance as a float (the "FID" convention: squared, no root).

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
        4.0

    Reference:
        Dowson & Landau, "The Frechet distance between multivariate normal
        distributions", J. Multivariate Anal. 1982; Heusel et al., "GANs
        Trained by a Two Time-Scale Update Rule Converge to a Local Nash
        Equilibrium", NeurIPS 2017.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            "frechet_distance: shapes must be mu (d,), sigma (d, d); received "
            f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}."
        )
    values1, vectors1 = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors1 * np.sqrt(_nonnegative(values1, eps, "sigma1"))) @ vectors1.T
    _nonnegative(np.linalg.eigvalsh((sigma2 + sigma2.T) / 2), eps, "sigma2")
    middle = root1 @ sigma2 @ root1
    trace_root = float(np.sqrt(_nonnegative(np.linalg.eigvalsh((middle + middle.T) / 2), eps, "the product")).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def _nonnegative(values, eps, name):
    """Eigenvalues with round-off negatives set to 0; a clearly negative one is an error."""
    floor = -eps * max(float(np.max(np.abs(values))), 1e-300)
    if values.min() < floor:
        raise ValueError(
            f"frechet_distance: {name} has the eigenvalue {values.min():.3g} < 0; "
            "covariance matrices must be symmetric positive semi-definite."
        )
    return np.clip(values, 0.0, None)


def frechet_distance_from_features(features_a, features_b) -> float:
    """:func:`frechet_distance` of Gaussians fitted to two feature sets.

    Args:
        features_a: array ``(n, d)``, ``n >= 2``. Use well over ``d``
            samples: with fewer the covariance is singular and the estimate
            is strongly biased.
        features_b: array ``(m, d)``, ``m >= 2``; the same advice.

    Returns:
        The Frechet distance between ``N(mean_a, cov_a)`` and
        ``N(mean_b, cov_b)`` (unbiased sample covariances).
    """
    a = _as_matrix("features_a", features_a)
    b = _as_matrix("features_b", features_b)
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            "frechet_distance_from_features: need >= 2 samples each with the same feature "
            f"size, received shapes {a.shape} and {b.shape}."
        )
    return frechet_distance(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )


def label_coverage(labels, num_classes: int, *, min_fraction: float = 0.2) -> dict:
    """How evenly generated images spread over the classes.

    Given the labels a classifier predicts for generated images:

    - ``kl_to_uniform`` = KL(p_hat || uniform) = log K - H(p_hat), 0 when
      every class is equally frequent, log K (2.30 for 10 classes) when all
      images fall in one class;
    - ``classes_covered`` = classes predicted at least ``min_count`` times,
      ``min_count = max(1, ceil(min_fraction * n / K))``: with the default
      0.2 a class must get a fifth of its expected count under a uniform
      distribution (PacGAN's threshold for a lost mode), so scattered
      misclassifications do not count as coverage.

    The real data's own value (predictions on held-out real images) is the
    reference: class frequencies are not exactly uniform and the classifier
    is not perfect.

    Args:
        labels: int array ``(n,)`` of predicted classes.
        num_classes: number of classes ``K``.
        min_fraction: fraction of the expected per-class count needed to
            count a class as covered.

    Returns:
        ``{"kl_to_uniform", "classes_covered", "num_classes", "min_count",
        "counts"}``.

    Example:
        >>> label_coverage(np.array([0, 0, 1, 1]), 2)["kl_to_uniform"]
        0.0

    Reference:
        Lin et al., "PacGAN", NeurIPS 2018 (mode-lost threshold);
        Metz et al., "Unrolled GANs", ICLR 2017 (stacked-MNIST mode counts).
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    num_classes = int(num_classes)
    if num_classes < 1 or len(labels) == 0:
        raise ValueError(
            f"label_coverage: need `num_classes` >= 1 and at least one label, received "
            f"num_classes={num_classes} and {len(labels)} labels."
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"label_coverage: labels must lie in [0, {num_classes}), received values in "
            f"[{labels.min()}, {labels.max()}]."
        )
    if not 0 < min_fraction <= 1:
        raise ValueError(f"label_coverage: `min_fraction` must be in (0, 1], received {min_fraction!r}.")
    counts = np.bincount(labels, minlength=num_classes)
    p = counts / counts.sum()
    nonzero = p > 0
    kl = float(np.sum(p[nonzero] * np.log(p[nonzero] * num_classes)))
    min_count = max(1, math.ceil(min_fraction * len(labels) / num_classes))
    return {
        "kl_to_uniform": kl,
        "classes_covered": int(np.sum(counts >= min_count)),
        "num_classes": num_classes,
        "min_count": int(min_count),
        "counts": counts,
    }


def classifier_metrics(classifier, generated, real, *, real_reference=None) -> dict:
    """Frechet distance and class coverage in a small classifier's feature space.

    **Not Inception FID**: the features come from the
    ``keras_sngan.poster.running.feature_classifier.FeatureClassifier`` trained on the same
    dataset, so values are comparable only between runs sharing its weights.
    When ``real_reference`` (real images independent of ``real``, same count
    as ``generated``) is given, the real-vs-real value is reported as the
    finite-sample floor.

    Args:
        classifier: a ``FeatureClassifier`` (``features``, ``predict_labels``,
            ``num_classes``, ``test_accuracy``).
        generated: generated images ``(n, h, w, c)`` in ``[-1, 1]``.
        real: real images, e.g. the held-out split.
        real_reference: optional second real sample for the floors.

    Returns:
        ``{"frechet_distance", "kl_to_uniform", "classes_covered",
        "num_classes", "classifier_test_accuracy"}`` plus
        ``"frechet_distance_floor"`` and ``"kl_to_uniform_real"`` when
        ``real_reference`` is given.
    """
    real_features = classifier.features(real)
    result = {
        "frechet_distance": frechet_distance_from_features(
            classifier.features(generated), real_features
        ),
    }
    coverage = label_coverage(classifier.predict_labels(generated), classifier.num_classes)
    result.update(
        kl_to_uniform=coverage["kl_to_uniform"],
        classes_covered=coverage["classes_covered"],
        num_classes=coverage["num_classes"],
        classifier_test_accuracy=float(classifier.test_accuracy),
    )
    if real_reference is not None:
        result["frechet_distance_floor"] = frechet_distance_from_features(
            classifier.features(real_reference), real_features
        )
        result["kl_to_uniform_real"] = label_coverage(
            classifier.predict_labels(real_reference), classifier.num_classes
        )["kl_to_uniform"]
    return result
