"""Process locks that the kernel releases when their holder dies, even by SIGKILL.

Two jobs, both for runs killed with ``kill -9``:

- :func:`exclusive` keeps two processes from training into the same
  checkpoint directory at once. After ``kill -9`` of ``snakemake`` alone, its
  training jobs live on as orphans and finish; a rerun of the same command
  starts the same jobs again, and each of them waits here until its orphan
  has exited, then goes on from the orphan's last checkpoint (the same
  numbers: training is deterministic).
- :func:`hold_workflow_lock` lets the rerun of a pipeline whose
  ``snakemake`` was killed with ``kill -9`` start without a manual
  ``snakemake --unlock``. Snakemake's own locks (``.snakemake/locks/*.lock``)
  are plain files that outlive a killed process and name no owner, so every
  main ``snakemake`` process of this workflow also holds a *shared* ``flock``
  on ``.snakemake/keras-sngan.alive`` for its whole life. A starting process
  that can take that lock *exclusively* knows that no other run of the
  workflow is alive in the directory, so Snakemake's lock files are stale:
  it removes them, then keeps a shared lock like every other run.

Both rest on ``fcntl.flock``. Where the file system does not support it
(some network file systems), a warning says so and the locks are skipped:
nothing is removed, and training runs unguarded, as before.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

_WORKFLOW_LOCK_NAME = "keras-sngan.alive"
_held = []  # the open workflow lock of this process: released by the kernel at exit
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _try_lock(handle, mode) -> bool | None:
    """``flock(mode | LOCK_NB)``: True if taken, False if held elsewhere, None if unsupported."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _BUSY:
            return False
        print(f"keras-sngan: file locks are not available on {handle.name!r} ({error}); "
              "continuing without them.", file=sys.stderr, flush=True)
        return None
    return True


@contextlib.contextmanager
def exclusive(path, waiting_message: str, on_wait=None):
    """Hold an exclusive lock on the file ``path`` for the ``with`` block.

    If another process holds it, call ``on_wait()``, print ``waiting_message``
    to stderr and block until it is released (its holder exits or is killed).
    The holder may delete the lock file (or its directory) while it holds
    it: a waiter that then gets a lock on the deleted file notices and starts
    again on a new one.
    """
    while True:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handle = open(path, "a")  # not inherited by child processes (PEP 446)
        except FileNotFoundError:  # the holder removed the directory between makedirs and open
            continue
        except FileExistsError:  # makedirs: made by another process, then removed by the holder before
            continue  # makedirs could see it as a directory (exist_ok re-raises then)
        taken = _try_lock(handle, fcntl.LOCK_EX)
        if taken is False:
            if on_wait is not None:
                on_wait()
            print(waiting_message, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:  # still the file at `path`? (ESTALE on NFS: no)
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except OSError:
            current = False
        if current or taken is None:
            break
        handle.close()
    try:
        yield
    finally:
        handle.close()


def hold_workflow_lock(snakemake_dir=".snakemake") -> list[str]:
    """Hold this process's shared workflow lock; first remove Snakemake's lock files if they are stale.

    Call it once from the Snakefile of every main ``snakemake`` process (not
    from job processes). Snakemake's lock files are stale exactly when this
    process can take the workflow lock exclusively (no other main process of
    the workflow is alive in the directory); then they are removed. Either
    way the process then holds a shared lock until it exits. Returns the
    removed files.
    """
    os.makedirs(snakemake_dir, exist_ok=True)
    handle = open(os.path.join(snakemake_dir, _WORKFLOW_LOCK_NAME), "a")
    alone = _try_lock(handle, fcntl.LOCK_EX)
    if alone is None:  # no flock here: never guess that a run is dead
        handle.close()
        return []
    removed = []
    if alone:
        lock_dir = os.path.join(snakemake_dir, "locks")
        names = sorted(os.listdir(lock_dir)) if os.path.isdir(lock_dir) else []
        for name in names:
            if name.endswith(".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(lock_dir, name))
                    removed.append(os.path.join(lock_dir, name))
    # Exclusive -> shared (a new lock, not an atomic conversion: a process
    # that takes it exclusively in between finds no lock files of ours yet,
    # as Snakemake writes them after parsing), or wait for a cleaner to finish.
    fcntl.flock(handle, fcntl.LOCK_SH)
    _held.append(handle)
    return removed
