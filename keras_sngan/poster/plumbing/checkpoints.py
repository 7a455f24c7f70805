"""Crash-safe training checkpoints, so that a killed run resumes bit-identically.

A checkpoint is a directory ``<checkpoint_dir>/epoch-000003/`` holding

- ``model.weights.h5``: `WGAN.save_weights` (critic and generator weights,
  their non-trainable state such as SN vectors, both optimizers with their
  step counters and loss scales, the noise `keras.random.SeedGenerator`);
- ``state.json``: the recorder's tables so far (history, layers, gap, epoch
  times);
- ``manifest.json``: format version, epoch, a fingerprint of the run's
  parameters and the SHA-256 of each file, written last.

It is written into a temporary sibling directory, every file and the
directory are fsynced, and only then is it renamed into place (``rename`` is
atomic on POSIX): a kill at any moment leaves either no new checkpoint or a
complete one. On load, a checkpoint whose manifest is missing or whose files
do not match their checksums is skipped (never loaded), and leftover
temporary directories are removed. After a new checkpoint is in place the
older ones are deleted.

The data order needs no checkpoint: it is a pure function of (seed, step),
see :mod:`keras_sngan.poster.plumbing.data_stream`.

Test hook: with ``KERAS_SNGAN_TEST_PAUSE=step:N`` a run stops (sleeps until
killed, or until the test removes the ``paused`` file) after generator iteration ``N``; with ``write:E`` it stops in the
middle of writing the checkpoint of epoch ``E`` (files written, not yet
renamed). It first creates ``<checkpoint_dir>/paused`` (holding the point and
its process id) so that a test can kill it at exactly that point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time

FORMAT = 1
PAUSE_ENV = "KERAS_SNGAN_TEST_PAUSE"
WEIGHTS = "model.weights.h5"
STATE = "state.json"
MANIFEST = "manifest.json"
LOCK = "run.lock"  # held by the process training into the store (locks.exclusive)
WAITING = "waiting"  # left by a process waiting for that lock
_PREFIX = "epoch-"


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pause_for_tests(point: str, directory) -> None:
    """Stop here if ``KERAS_SNGAN_TEST_PAUSE`` names ``point``: until killed, or until the marker is removed."""
    if os.environ.get(PAUSE_ENV) != point:
        return
    marker = os.path.join(directory, "paused")
    with open(marker + ".tmp", "w") as handle:
        handle.write(f"{point} {os.getpid()}")
    os.replace(marker + ".tmp", marker)
    while os.path.exists(marker):
        time.sleep(0.05)


class CheckpointStore:
    """The checkpoints of one run in ``directory`` (see the module docstring).

    Args:
        directory: where the checkpoints live; keep it outside any pipeline
            output (Snakemake deletes the outputs of a failed job).
        params_fingerprint: the run's :meth:`RunSpec.fingerprint <keras_sngan.poster.running.spec.RunSpec.fingerprint>`; a
            checkpoint written with other parameters is refused with a clear
            error instead of being resumed.
    """

    def __init__(self, directory, params_fingerprint: str):
        self.directory = os.fspath(directory)
        self.fingerprint = params_fingerprint
        os.makedirs(self.directory, exist_ok=True)

    def _committed(self):
        names = [n for n in os.listdir(self.directory) if n.startswith(_PREFIX) and n[len(_PREFIX):].isdigit()]
        return sorted(names, key=lambda n: int(n[len(_PREFIX):]), reverse=True)

    def _valid(self, path, epoch):
        try:
            with open(os.path.join(path, MANIFEST)) as handle:
                manifest = json.load(handle)
            if manifest.get("format") != FORMAT or manifest.get("epoch") != epoch:
                return None
            for name, digest in manifest["files"].items():
                if sha256(os.path.join(path, name)) != digest:
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return manifest

    def latest(self):
        """``(epoch, weights_path, state)`` of the newest valid checkpoint, or ``None``."""
        for name in os.listdir(self.directory):  # leftovers of a killed write
            if name.startswith(f".{_PREFIX}"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        for name in self._committed():
            epoch = int(name[len(_PREFIX):])
            path = os.path.join(self.directory, name)
            manifest = self._valid(path, epoch)
            if manifest is None:
                continue
            if manifest["fingerprint"] != self.fingerprint:
                raise ValueError(
                    f"train: the checkpoint {path!r} was written by a run with other parameters; "
                    "it cannot be resumed by this one. Delete it or pass another `checkpoint_dir`."
                )
            with open(os.path.join(path, STATE)) as handle:
                state = json.load(handle)
            return epoch, os.path.join(path, WEIGHTS), state
        return None

    def save(self, epoch: int, model, state: dict) -> str:
        """Write the checkpoint of ``epoch`` (completed epochs) atomically; return its path."""
        final = os.path.join(self.directory, f"{_PREFIX}{epoch:06d}")
        tmp = tempfile.mkdtemp(prefix=f".{_PREFIX}{epoch:06d}.", dir=self.directory)
        try:
            model.save_weights(os.path.join(tmp, WEIGHTS))
            with open(os.path.join(tmp, STATE), "w") as handle:
                json.dump(state, handle)  # NaN/inf kept (allow_nan): exact round trip
            files = {name: sha256(os.path.join(tmp, name)) for name in (WEIGHTS, STATE)}
            manifest = {"format": FORMAT, "epoch": epoch, "fingerprint": self.fingerprint, "files": files}
            with open(os.path.join(tmp, MANIFEST), "w") as handle:
                json.dump(manifest, handle, indent=1)
            for name in (WEIGHTS, STATE, MANIFEST):
                _fsync(os.path.join(tmp, name))
            _fsync(tmp)
            pause_for_tests(f"write:{epoch}", self.directory)
            if os.path.exists(final):  # a rerun of an epoch whose checkpoint already exists
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for name in self._committed():
            if name != os.path.basename(final):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        return final

    @contextlib.contextmanager
    def exclusive(self):
        """This process alone trains into the store for the ``with`` block (:func:`.locks.exclusive`).

        Taken before the newest checkpoint is read. A second process (the
        rerun of a job whose ``snakemake`` was killed while the job lived on)
        leaves a ``waiting`` note and blocks until the first has exited; the
        first, seeing the note, keeps its final checkpoint (see
        :meth:`clear`), so the second resumes from it and only rewrites the
        outputs. A multi-worker task cannot run twice at once (its
        ``TF_CONFIG`` port is taken), so this guards single-process runs.
        """
        from keras_sngan.poster.plumbing import locks

        note = os.path.join(self.directory, WAITING)

        def leave_note():
            os.makedirs(self.directory, exist_ok=True)  # the holder may be clearing it
            with open(note, "w") as handle:
                handle.write(str(os.getpid()))

        with locks.exclusive(
            os.path.join(self.directory, LOCK),
            f"train: another process is training into {self.directory!r} (an orphan of a killed "
            "snakemake?); waiting for it to finish, then resuming from its checkpoint.",
            on_wait=leave_note,
        ):
            with contextlib.suppress(FileNotFoundError):
                os.remove(note)  # ours (the holder read it) or a stale one
            yield

    def clear(self) -> None:
        """Delete the checkpoints (when the run has written its outputs).

        If another process waits to train into this store (its ``waiting``
        note), the newest checkpoint is kept for it (``save`` already removed
        the older ones) and only the note goes. Otherwise the whole directory
        goes, lock file included.
        """
        note = os.path.join(self.directory, WAITING)
        if os.path.exists(note):
            os.remove(note)
            return
        shutil.rmtree(self.directory, ignore_errors=True)


def make_checkpoint_callback(store: CheckpointStore, state_fn, steps_per_epoch: int):
    """A Keras callback that saves a checkpoint at every epoch end.

    ``state_fn()`` returns the recorder state to store with the weights; put
    the recorder *before* this callback so that its epoch is complete.
    """
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            pause_for_tests(f"step:{self._epoch * steps_per_epoch + batch + 1}", store.directory)

        def on_epoch_end(self, epoch, logs=None):
            from keras_sngan.poster.plumbing import timing

            with timing.phase("io"):
                store.save(epoch + 1, self.model, state_fn())

    return EpochCheckpoint()
