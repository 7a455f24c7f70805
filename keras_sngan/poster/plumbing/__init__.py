"""Plumbing shared by the reproduction's jobs; imports nothing above it.

- :mod:`~keras_sngan.poster.plumbing.io`: atomic files, argument checks.
- :mod:`~keras_sngan.poster.plumbing.locks`: one process per checkpoint
  directory; stale Snakemake locks after ``kill -9``.
- :mod:`~keras_sngan.poster.plumbing.timing`: each job's timing record.
- :mod:`~keras_sngan.poster.plumbing.checkpoints`: crash-safe checkpoints and
  the run fingerprint that guards them.
- :mod:`~keras_sngan.poster.plumbing.runs`: the files of many runs as tidy tables.
- :mod:`~keras_sngan.poster.plumbing.data_stream`: the training data order, a
  pure function of (seed, step).
"""
