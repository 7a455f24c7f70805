"""Threads and seeds of this process: how many cores a job may use, and where its random numbers start.

:func:`limit_threads` caps the BLAS / OpenMP pools; :func:`configure_tensorflow`
also sizes TensorFlow's own pools (before its first op) and seeds Python,
NumPy and the backend. `keras_sngan.distribute` and the pipeline's jobs call
them first thing, so ``snakemake --cores N`` means at most N busy threads.
"""

from __future__ import annotations

import os

import numpy as np

# Thread counts of the numerical libraries below TensorFlow / NumPy (OpenMP, OpenBLAS,
# MKL, Accelerate, numexpr), for libraries loaded later and for child processes.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def limit_threads(threads: int) -> None:
    """Cap this process's BLAS / OpenMP thread pools at ``threads``.

    NumPy's OpenBLAS starts one worker per core at import, whatever Snakemake
    granted the job; `threadpoolctl` resizes the pools already loaded and the
    environment variables cover the ones loaded later. TensorFlow's own pools are
    set by `configure_tensorflow`.

    Args:
        threads: integer >= 1.
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"`threads` must be an integer >= 1, received {threads!r}.")
    for name in _THREAD_ENV:
        os.environ[name] = str(int(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads))


def configure_tensorflow(threads: int | None = None, seed: int | None = None) -> None:
    """Limit TensorFlow's CPU threads (before any op runs) and seed everything.

    Args:
        threads: compute threads of this process: TensorFlow's intra-op pool
            gets ``threads``, its inter-op pool 1 (ops run one at a time, each on
            at most ``threads`` threads), and BLAS / OpenMP ``threads``
            (`limit_threads`). ``None`` keeps the libraries' defaults. Pipeline
            jobs pass their Snakemake ``threads`` so ``--cores N`` means at most
            N busy threads in all.
        seed: passed to `keras.utils.set_random_seed` (Python, NumPy, backend).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads is not None:
        limit_threads(threads)
    import tensorflow as tf

    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            # TensorFlow ran an op already, so its pools are fixed: fine if they are
            # the ones asked for (a second call in one process), an error otherwise,
            # never a silent run on more threads than the job was granted.
            current = (tf.config.threading.get_intra_op_parallelism_threads(),
                       tf.config.threading.get_inter_op_parallelism_threads())
            if current != (threads, 1):
                raise RuntimeError(
                    f"configure_tensorflow: cannot set `threads`={threads}: TensorFlow is already initialized "
                    f"with intra-op / inter-op threads {current} (0 = one per core). Call it before any "
                    "TensorFlow op, e.g. before building a model or an optimizer."
                ) from None
    if seed is not None:
        import keras

        keras.utils.set_random_seed(int(seed))
