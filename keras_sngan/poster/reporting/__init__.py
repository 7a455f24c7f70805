"""Reporting: the verdicts, figures and tables people read.

- :mod:`~keras_sngan.poster.reporting.claims_report`: decide every claim and
  write ``claims.md`` / ``.json`` / ``.html``.
- :mod:`~keras_sngan.poster.reporting.figures`: the figures.
- :mod:`~keras_sngan.poster.reporting.tables`: compact curves and final-metric tables.
- :mod:`~keras_sngan.poster.reporting.gradient_flow`: per-layer gradient-norm
  table of deep-critic runs (Gulrajani et al. Fig. 1b).
"""
