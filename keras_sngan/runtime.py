"""Threads and seeds of this process: how many cores a job may use, and where its random numbers start.

:func:`limit_threads` caps the BLAS / OpenMP pools; :func:`configure` also
sizes the Keras backend's own pools (before its first op) and seeds Python,
NumPy and the backend: TensorFlow's intra-op pool (:func:`configure_tensorflow`),
XLA's CPU pool on JAX (:func:`configure_jax`), PyTorch's intra-op pool.
`keras_sngan.distribute` and the pipeline's jobs call it first thing, so
``snakemake --cores N`` means at most N busy threads on every backend.
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


def configure(threads: int | None = None, seed: int | None = None) -> None:
    """Limit the Keras backend's CPU threads (before its first op) and seed everything.

    Dispatches on ``keras.backend.backend()``: :func:`configure_tensorflow`,
    :func:`configure_jax`, or for PyTorch ``torch.set_num_threads``. The
    arguments are those of :func:`configure_tensorflow`.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        configure_tensorflow(threads, seed)
        return
    if backend == "jax":
        configure_jax(threads)
    else:
        if threads is not None:
            limit_threads(threads)
        if backend == "torch" and threads is not None:
            import torch

            torch.set_num_threads(int(threads))
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


def configure_jax(threads: int | None = None) -> None:
    """Cap JAX's CPU compute at ``threads`` threads (with BLAS / OpenMP), before JAX's first op.

    XLA's CPU client sizes its compute pool from the CPUs this process may
    run on when the client starts, and (JAX 0.10) ignores ``XLA_FLAGS``'
    ``intra_op_parallelism_threads``: measured on this project's 2-core
    machine, a 2048 x 2048 matmul used 1.9-2.0 cores with those flags set to
    1. So the client is started here with the process pinned to ``threads``
    of its CPUs, and then every thread of the process is given all of them
    back: the pool keeps ``threads`` workers (measured: 1.00 core), which the
    kernel may still place on any CPU, so jobs that share a machine do not
    pile onto the same core. Linux only (``os.sched_setaffinity``); elsewhere
    only BLAS / OpenMP are capped.

    Raises:
        RuntimeError: JAX's backends already started with more threads than
            ``threads``: call this before any JAX computation.
    """
    if threads is None:
        return
    limit_threads(threads)
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    if _jax_started():
        if _jax_pool_threads() > threads:
            raise RuntimeError(
                f"configure_jax: cannot set `threads`={threads}: JAX already started, with its CPU pool "
                f"sized for {_jax_pool_threads()} CPUs. Call it before any JAX computation, e.g. before "
                "building a model or an optimizer."
            )
        return
    import jax

    os.sched_setaffinity(0, allowed[: int(threads)])
    try:
        jax.devices()  # starts the backends while only `threads` CPUs are visible
    finally:
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), allowed)
            except OSError:  # a thread that ended meanwhile
                pass
    _POOL["threads"] = int(threads)


_POOL = {}  # the thread count JAX's CPU client was started with by configure_jax


def _jax_pool_threads() -> int:
    return _POOL.get("threads", len(os.sched_getaffinity(0)))


def _jax_started() -> bool:
    """Whether JAX created its backends (after which its CPU pool has its size)."""
    import sys

    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


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
