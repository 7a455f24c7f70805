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
  (``keras_sngan.poster.running.feature_classifier``). **This is not Inception FID**; the
  values are comparable only between runs that share the classifier weights.
  :func:`inception_fid` computes a real FID when the caller provides local
  InceptionV3 weights.
- :func:`critic_generalization_gap` measures whether the critic's Wasserstein
  estimate on its training samples carries over to held-out real samples
  (Gulrajani et al. 2017, Fig. 5b).

Since issue 9 this is a package with one module per job (``wasserstein``,
``modes``, ``frechet``, ``inception``, ``critic_gap``); every name is
re-exported here, so ``from keras_sngan import metrics; metrics.<name>``
keeps working.
"""

from __future__ import annotations

from keras_sngan.metrics.critic_gap import critic_generalization_gap
from keras_sngan.metrics.frechet import (
    classifier_metrics,
    frechet_distance,
    frechet_distance_from_features,
    label_coverage,
)
from keras_sngan.metrics.inception import inception_feature_extractor, inception_fid
from keras_sngan.metrics.modes import mode_statistics
from keras_sngan.metrics.wasserstein import MAX_W1_POINTS_PRODUCT, wasserstein1, wasserstein1_with_floor

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
