"""Process locks that the kernel releases when their holder dies, even by SIGKILL.

Two jobs, both for runs killed with ``kill -9``:

- :func:`exclusive` keeps two processes from training into the same
  checkpoint directory at once. After ``kill -9`` of ``snakemake`` alone, its
  training jobs live on as orphans and finish; a rerun of the same command
  starts the same jobs again, and each of them waits here until its orphan
  has finished, then continues from what the orphan left (the same numbers:
  training is deterministic).
- :func:`release_stale_snakemake_locks` lets the rerun of a pipeline whose
  ``snakemake`` was killed with ``kill -9`` start without a manual
  ``snakemake --unlock``. Snakemake's own locks (``.snakemake/locks/*.lock``)
  are plain files that outlive a killed process and name no owner, so the
  workflow also holds an ``flock`` for the life of its main process: a
  process that can take it knows that no other run of this workflow is alive
  in the directory, so Snakemake's lock files are stale and can go.

Both rest on ``fcntl.flock`` (POSIX; on a network file system it is as
reliable as that file system's locking).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys

_WORKFLOW_LOCK_NAME = "keras-sngan.alive"
_held = []  # the open workflow lock of this process: released by the kernel at exit


@contextlib.contextmanager
def exclusive(path, waiting_message: str):
    """Hold an exclusive lock on the file ``path`` for the ``with`` block.

    If another process holds it, print ``waiting_message`` to stderr once and
    block until it is released (its holder exits or is killed). The lock file
    is removed on exit; a holder killed before that leaves it behind, which is
    harmless (the kernel has released the lock).
    """
    while True:
        handle = open(path, "a")  # not inherited by child processes (PEP 446)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting_message, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        # The previous holder may have removed the file while we waited:
        # then we hold a lock on an orphaned inode; start again on the new file.
        try:
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()


def release_stale_snakemake_locks(snakemake_dir=".snakemake") -> list[str]:
    """Take this workflow's liveness lock; if taken, remove Snakemake's stale lock files.

    Call it once from the Snakefile of the main ``snakemake`` process (not
    from job processes). The lock is held until the process exits. If another
    run of the workflow is alive in the directory, nothing is removed and
    Snakemake's own lock check decides as usual. Returns the removed files.
    """
    os.makedirs(snakemake_dir, exist_ok=True)
    handle = open(os.path.join(snakemake_dir, _WORKFLOW_LOCK_NAME), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return []
    _held.append(handle)
    lock_dir = os.path.join(snakemake_dir, "locks")
    removed = []
    if os.path.isdir(lock_dir):
        for name in sorted(os.listdir(lock_dir)):
            if name.endswith(".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(lock_dir, name))
                    removed.append(os.path.join(lock_dir, name))
    return removed
