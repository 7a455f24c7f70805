"""The poster's experiments as ordinary functions, one module each.

- :mod:`~keras_sngan.experiments.variance`: initialization variance and signal
  propagation through deep networks (claim 5).
- :mod:`~keras_sngan.experiments.lipschitz_activations`: certified vs searched
  Lipschitz constants of spectrally normalized networks (claim 4).
- :mod:`~keras_sngan.experiments.training`: one WGAN training run (clip / GP /
  SN) with per-iteration diagnostics, resumable; and its evaluation.
- :mod:`~keras_sngan.experiments.gradient_flow`: per-layer weight-gradient
  norms of a deep critic (Gulrajani et al. Fig. 1b).
- :mod:`~keras_sngan.experiments.overfitting`: can a critic overfit a fixed
  small training set, and does GP's more (claim 2b)?
- :mod:`~keras_sngan.experiments.figures`: the figures.
- :mod:`~keras_sngan.experiments.tables`: compact curves and final-metric tables.
- :mod:`~keras_sngan.experiments.claims`: the verdict rules;
  :mod:`~keras_sngan.experiments.claims_report` computes and renders them.
- :mod:`~keras_sngan.experiments.convergence`: did the long runs converge
  (a stated criterion on their sample-quality records)?
- :mod:`~keras_sngan.experiments.robustness`: every verdict decided again one
  factor at a time (penalty weight, width, iteration budget, seeds).
- :mod:`~keras_sngan.experiments.agreement`: does a reproduction agree with
  the committed results (verdicts, headline numbers within the seeds' spread)?

Every function writes its files atomically (see :mod:`.io`), so an
interrupted run never leaves a half-written result behind. The Snakemake
pipeline calls them through the ``keras-sngan`` command line.
"""
