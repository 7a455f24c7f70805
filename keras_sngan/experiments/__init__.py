"""The poster's experiments as ordinary functions, one module each.

- :mod:`~keras_sngan.experiments.variance`: initialization variance and signal
  propagation through deep networks (claim 5).
- :mod:`~keras_sngan.experiments.lipschitz_activations`: certified vs searched
  Lipschitz constants of spectrally normalized networks (claim 4).
- :mod:`~keras_sngan.experiments.training`: one WGAN training run (clip / GP /
  SN) with per-iteration diagnostics, resumable; and its evaluation.
- :mod:`~keras_sngan.experiments.gradient_flow`: per-layer weight-gradient
  norms of a deep critic (Gulrajani et al. Fig. 1b).
- :mod:`~keras_sngan.experiments.figures`: the figures.
- :mod:`~keras_sngan.experiments.claims`: summary tables and the verdicts.

Every function writes its files atomically (see :mod:`.io`), so an
interrupted run never leaves a half-written result behind. The Snakemake
pipeline calls them through the ``keras-sngan`` command line.
"""
