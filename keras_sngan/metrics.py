"""Honest generator metrics: exact W1, mode coverage, Frechet distance, critic gap.

Every metric here comes with its own reference value so that a number can be
read without guessing:

- :func:`wasserstein1` is the *exact* Wasserstein-1 distance between two
  empirical samples (POT's network-simplex solver, Euclidean ground cost).
  Between two finite samples of the same distribution it is not zero, so
  :func:`wasserstein1_with_floor` also reports the real-vs-real value, the
  finite-sample floor no generator can beat at that sample size.
- :func:`mode_statistics` implements the VEEGAN / PacGAN high-quality-sample
  and modes-covered counts for the 8- and 25-Gaussian toy mixtures.
- :func:`frechet_distance` and :func:`classifier_metrics` compare images in
  the feature space of a small classifier trained on the same data
  (``keras_sngan.feature_classifier``). **This is not Inception FID**; the
  values are comparable only between runs that share the classifier weights.
  :func:`inception_fid` computes a real FID when the caller provides local
  InceptionV3 weights.
- :func:`critic_generalization_gap` measures whether the critic's Wasserstein
  estimate on its training samples carries over to held-out real samples
  (Gulrajani et al. 2017, Fig. 5b).
"""

from __future__ import annotations

import math

import numpy as np

MAX_W1_POINTS_PRODUCT = 5000 * 5000
"""Largest ``len(x) * len(y)`` :func:`wasserstein1` accepts (memory and time)."""


# ---------------------------------------------------------------------------
# Wasserstein-1
# ---------------------------------------------------------------------------


def _as_matrix(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty array of samples (n, ...), received shape {x.shape}."
        )
    return x.reshape(len(x), -1)


def wasserstein1(x, y, *, num_iter_max: int = 10_000_000) -> float:
    """Exact Wasserstein-1 distance between two empirical distributions.

    Solves the optimal transport problem between uniform weights on ``x`` and
    on ``y`` with the Euclidean cost ``M_ij = ||x_i - y_j||_2`` (``ot.dist``
    with ``metric="euclidean"``; note that ``ot.dist`` defaults to the
    *squared* Euclidean cost, which would give W2^2 instead). Images are
    flattened to vectors.

    The solver is exact but cubic-ish in the sample size: 1000 points take
    about 0.1 s, 2000 points about 0.5 s on one CPU core. Use 1000-2000 points
    and compare against :func:`wasserstein1_with_floor`'s floor at the same
    size, since the empirical W1 is biased upwards for finite samples.

    Args:
        x: samples, array of shape ``(n, ...)`` (1-D arrays are read as
            ``n`` scalars).
        y: samples, array of shape ``(m, ...)`` with the same trailing size.
        num_iter_max: iteration cap of the network-simplex solver.

    Returns:
        W1 as a Python float.

    Raises:
        ValueError: empty inputs, mismatched dimensions or too many points.
        RuntimeError: the solver stopped before reaching the optimum.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 2))
        >>> round(wasserstein1(x, x + [3.0, 4.0]), 6)
        5.0

    Reference:
        Flamary et al., "POT: Python Optimal Transport", JMLR 2021;
        Villani, "Optimal Transport: Old and New", 2009 (Kantorovich-Rubinstein
        duality, the quantity a WGAN critic estimates).
    """
    import ot

    x = _as_matrix("x", x)
    y = _as_matrix("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"wasserstein1: `x` and `y` must have the same sample size, received "
            f"{x.shape[1]} and {y.shape[1]} values per sample."
        )
    if len(x) * len(y) > MAX_W1_POINTS_PRODUCT:
        raise ValueError(
            f"wasserstein1: {len(x)} x {len(y)} points exceed the limit of "
            f"{MAX_W1_POINTS_PRODUCT} pairs; subsample to about 2000 points each."
        )
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    cost = ot.dist(x, y, metric="euclidean")
    value, log = ot.emd2(a, b, cost, numItermax=int(num_iter_max), log=True)
    if log.get("warning"):
        raise RuntimeError(f"wasserstein1: the exact OT solver did not converge: {log['warning']}")
    return float(value)


def wasserstein1_with_floor(fake, real, real_reference) -> dict:
    """W1 of generated samples, next to the real-vs-real floor.

    ``floor = W1(real_reference, real)`` where ``real_reference`` is a second
    real sample, independent of ``real`` and of the same size as ``fake``: the
    value a perfect generator would get at this sample size.

    Args:
        fake: generated samples, ``(n, ...)``.
        real: real samples, ``(m, ...)``.
        real_reference: independent real samples, ``(n, ...)``.

    Returns:
        ``{"w1": W1(fake, real), "floor": W1(real_reference, real),
        "excess": w1 - floor, "n": n}``.

    Example:
        >>> from keras_sngan.datasets import sample_toy
        >>> fake = sample_toy("8gaussians", 1000, seed=1)
        >>> r = wasserstein1_with_floor(fake, sample_toy("8gaussians", 1000, seed=2),
        ...                             sample_toy("8gaussians", 1000, seed=3))
        >>> abs(r["excess"]) < 0.05
        True
    """
    fake = _as_matrix("fake", fake)
    real_reference = _as_matrix("real_reference", real_reference)
    if len(fake) != len(real_reference):
        raise ValueError(
            "wasserstein1_with_floor: `fake` and `real_reference` must have the same number "
            f"of samples (the empirical W1 depends on it), received {len(fake)} and "
            f"{len(real_reference)}."
        )
    w1 = wasserstein1(fake, real)
    floor = wasserstein1(real_reference, real)
    return {"w1": w1, "floor": floor, "excess": w1 - floor, "n": len(fake)}


# ---------------------------------------------------------------------------
# Gaussian-mixture mode coverage
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Frechet distance and classifier-based coverage
# ---------------------------------------------------------------------------


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Frechet (2-Wasserstein) distance squared between two Gaussians.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``, with
    the matrix square root from ``scipy.linalg.sqrtm``. If the product is
    singular, ``eps`` is added to both diagonals (as in the reference FID
    code); tiny imaginary parts from round-off are dropped.

    Args:
        mu1, mu2: mean vectors ``(d,)``.
        sigma1, sigma2: covariance matrices ``(d, d)``.
        eps: diagonal offset used only when the square root is not finite.

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
    from scipy import linalg

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
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(d)
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                "frechet_distance: the matrix square root has a large imaginary part "
                f"({np.max(np.abs(covmean.imag)):.3g}); the covariances are not valid."
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features_a, features_b) -> float:
    """:func:`frechet_distance` of Gaussians fitted to two feature sets.

    Args:
        features_a, features_b: arrays ``(n, d)`` and ``(m, d)``, ``n, m >= 2``.
            Use well over ``d`` samples: with fewer the covariance is singular
            and the estimate is strongly biased.

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
    ``keras_sngan.feature_classifier.FeatureClassifier`` trained on the same
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


def inception_feature_extractor(weights_path: str, *, batch_size: int = 32):
    """Pool-3 features of InceptionV3 loaded from local weights.

    Images in ``[-1, 1]`` (the range InceptionV3's own preprocessing
    produces) are resized to 299x299 bilinearly, and grayscale images are
    repeated to 3 channels.

    Args:
        weights_path: path to InceptionV3 weights **without** the top
            classifier, e.g. Keras' ImageNet file
            ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``. Note
            these Keras ImageNet weights differ from the TF-slim graph used by
            the reference FID code, so values are close to but not identical
            with published FIDs.
        batch_size: images per forward pass.

    Returns:
        A function ``images -> float64 array (n, 2048)``.
    """
    import os

    import keras

    if not os.path.exists(weights_path):
        raise FileNotFoundError(
            f"inception_feature_extractor: no weights file at {weights_path!r}; pass a local "
            "copy of the InceptionV3 no-top weights (this package never downloads them)."
        )
    model = keras.applications.InceptionV3(
        include_top=False, weights=weights_path, pooling="avg", input_shape=(299, 299, 3)
    )

    def extract(images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "inception_feature_extractor: images must be (n, h, w, 1 or 3), received "
                f"shape {images.shape}."
            )
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = keras.ops.image.resize(images[start : start + batch_size], (299, 299))
            if batch.shape[-1] == 1:
                batch = keras.ops.repeat(batch, 3, axis=-1)
            outputs.append(keras.ops.convert_to_numpy(model(batch, training=False)))
        return np.concatenate(outputs).astype(np.float64)

    return extract


def inception_fid(generated, real, weights_path: str, *, batch_size: int = 32) -> float:
    """Real FID (Heusel et al. 2017) from local InceptionV3 weights.

    Use at least 2048 images per side (the feature size) for a meaningful
    value; 10,000 or more is the usual practice.

    Args:
        generated: generated images ``(n, h, w, c)`` in ``[-1, 1]``.
        real: real images in ``[-1, 1]``.
        weights_path: see :func:`inception_feature_extractor`.
        batch_size: images per forward pass.

    Returns:
        FID as a float.

    Reference:
        Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge
        to a Local Nash Equilibrium", NeurIPS 2017.
    """
    extract = inception_feature_extractor(weights_path, batch_size=batch_size)
    return frechet_distance_from_features(extract(generated), extract(real))


# ---------------------------------------------------------------------------
# Critic generalisation
# ---------------------------------------------------------------------------


def _predict(model, x, batch_size: int) -> np.ndarray:
    import keras

    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if isinstance(model, keras.Layer):
            out = model(batch, training=False)
        else:
            out = model(batch)
        outputs.append(np.asarray(keras.ops.convert_to_numpy(out)))
    return np.concatenate(outputs)


def critic_generalization_gap(
    critic,
    generator,
    train_real,
    heldout_real,
    latent_dim: int,
    *,
    n: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
) -> dict:
    """The critic's Wasserstein estimate on training vs held-out real data.

    ``w_train = mean f(x_train) - mean f(G(z1))`` and
    ``w_heldout = mean f(x_heldout) - mean f(G(z2))`` with independent fresh
    latents ``z1, z2 ~ N(0, I)``; ``gap = w_train - w_heldout``. A critic that
    memorises its training samples scores them higher than unseen real
    samples, so a large positive gap means overfitting (Gulrajani et al. 2017,
    Fig. 5b, where the gap grows under the gradient penalty on small data).
    ``n`` samples are drawn without replacement from each real set (at most
    the smaller set's size, the same count for both).

    Args:
        critic: callable ``x -> (n,)`` or ``(n, 1)`` scores; Keras layers and
            models are called with ``training=False``.
        generator: callable ``z -> samples``, same convention.
        train_real: real samples the critic was trained on ``(N, ...)``.
        heldout_real: real samples it never saw ``(M, ...)``.
        latent_dim: size of the generator's standard-normal latent vector.
        n: samples per estimate.
        seed: seed of the subsampling and of the latents.
        batch_size: batch size for the forward passes.

    Returns:
        ``{"w_train", "w_heldout", "gap", "n"}``.

    Example:
        >>> import keras
        >>> critic = keras.layers.Dense(1)
        >>> generator = keras.layers.Dense(2)
        >>> r = critic_generalization_gap(critic, generator, np.ones((8, 2)),
        ...                               np.zeros((8, 2)), latent_dim=4)
        >>> sorted(r)
        ['gap', 'n', 'w_heldout', 'w_train']

    Reference:
        Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. "Improved Training of
        Wasserstein GANs", NeurIPS 2017, Section 5 and Fig. 5b.
    """
    train_real = np.asarray(train_real, np.float32)
    heldout_real = np.asarray(heldout_real, np.float32)
    if len(train_real) == 0 or len(heldout_real) == 0:
        raise ValueError(
            "critic_generalization_gap: `train_real` and `heldout_real` must be non-empty, "
            f"received {len(train_real)} and {len(heldout_real)} samples."
        )
    if train_real.shape[1:] != heldout_real.shape[1:]:
        raise ValueError(
            "critic_generalization_gap: `train_real` and `heldout_real` must have the same "
            f"sample shape, received {train_real.shape[1:]} and {heldout_real.shape[1:]}."
        )
    for param, value in (("latent_dim", latent_dim), ("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"critic_generalization_gap: `{param}` must be an integer >= 1, received {value!r}."
            )
    n = int(min(n, len(train_real), len(heldout_real)))
    rng = np.random.default_rng(seed)
    x_train = train_real[rng.choice(len(train_real), n, replace=False)]
    x_heldout = heldout_real[rng.choice(len(heldout_real), n, replace=False)]
    z = rng.standard_normal((2, n, int(latent_dim))).astype(np.float32)

    def score(x):
        return float(np.mean(_predict(critic, x, batch_size)))

    fake_train = _predict(generator, z[0], batch_size).astype(np.float32)
    fake_heldout = _predict(generator, z[1], batch_size).astype(np.float32)
    w_train = score(x_train) - score(fake_train)
    w_heldout = score(x_heldout) - score(fake_heldout)
    return {"w_train": w_train, "w_heldout": w_heldout, "gap": w_train - w_heldout, "n": n}


__all__ = [
    "classifier_metrics",
    "critic_generalization_gap",
    "frechet_distance",
    "frechet_distance_from_features",
    "inception_feature_extractor",
    "inception_fid",
    "label_coverage",
    "mode_statistics",
    "wasserstein1",
    "wasserstein1_with_floor",
]
