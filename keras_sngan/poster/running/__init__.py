"""Running the poster's experiments: the work that trains or measures models and writes its files.

- :mod:`~keras_sngan.poster.running.spec`: :class:`~keras_sngan.poster.running.spec.RunSpec`,
  every setting of one WGAN training run, validated in one place.
- :mod:`~keras_sngan.poster.running.training`: train the seeds of a
  ``RunSpec`` with per-iteration diagnostics (resumable), and evaluate them.
- :mod:`~keras_sngan.poster.running.gradient_probe`: one input-gradient
  probe for every method (claim 1).
- :mod:`~keras_sngan.poster.running.feature_classifier`: the cached digits
  feature classifier of the Frechet distance.
- :mod:`~keras_sngan.poster.running.overfitting`: can a critic overfit a
  fixed small training set (claim 2b)?
- :mod:`~keras_sngan.poster.running.variance`: initialization variance and
  signal propagation (claim 5).
- :mod:`~keras_sngan.poster.running.lipschitz_activations`: certified vs
  searched Lipschitz bounds of SN networks (claim 4).

Every function writes its files atomically (:mod:`keras_sngan.poster.plumbing.io`).
"""
