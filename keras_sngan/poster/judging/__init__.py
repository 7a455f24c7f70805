"""Judging the results: verdict rules decided on the files the runs wrote (never on the code that ran them).

- :mod:`~keras_sngan.poster.judging.claims`: the documented rule of every claim.
- :mod:`~keras_sngan.poster.judging.robustness`: every verdict decided again
  one factor at a time (penalty weight, width, iteration budget, seeds).
- :mod:`~keras_sngan.poster.judging.convergence`: did the long runs converge?
- :mod:`~keras_sngan.poster.judging.agreement`: does a reproduction agree with
  the committed results (verdicts, headline numbers within the seeds' spread)?
"""
