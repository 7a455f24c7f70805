"""The reproduction of the poster "Stabilizing GANs: A Case for Spectral Normalization".

Built on the library (``keras_sngan``: the layer, the WGAN, the Lipschitz
tools, metrics and datasets), never imported by it. The Snakemake workflow
runs it through the ``keras-sngan`` command; each subcommand calls one
function here. Grouped by job, each group importing only the groups below it
(checked by ``tests/test_house.py``):

- :mod:`~keras_sngan.poster.command`: the ``keras-sngan`` console script (warm
  start, else :mod:`~keras_sngan.poster.cli`).
- :mod:`~keras_sngan.poster.warm_start`: commands forked from a process that
  has imported the backend once.
- :mod:`~keras_sngan.poster.cli`: the subcommands, one library call each.
- :mod:`~keras_sngan.poster.reporting`: claims report, figures, tables,
  gradient-flow table.
- :mod:`~keras_sngan.poster.judging`: the verdict rules, robustness,
  convergence, agreement with the committed results.
- :mod:`~keras_sngan.poster.running`: the experiments that train or measure
  (training runs from a :class:`~keras_sngan.poster.running.spec.RunSpec`,
  overfitting, variance, Lipschitz activations).
- :mod:`~keras_sngan.poster.plumbing`: atomic files, locks, timing records,
  checkpoints, run tables, the data order.

``judging`` and ``running`` never import each other: a verdict reads the
files the runs wrote, not the code that wrote them.

Nothing is imported here: ``import keras_sngan.poster`` starts no backend.
"""
