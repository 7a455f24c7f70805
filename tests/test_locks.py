"""Process locks released by the kernel: the holder is a real subprocess, killed with SIGKILL."""

import ast
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from keras_sngan.poster.plumbing import locks

# The module loaded by path, as the Snakefile does (no TensorFlow start-up per subprocess).
LOAD = (
    "import importlib.util, sys, time; "
    f"spec = importlib.util.spec_from_file_location('locks', {locks.__file__!r}); "
    "locks = importlib.util.module_from_spec(spec); spec.loader.exec_module(locks)\n"
)
HOLD = LOAD + """{take}
print("held", flush=True)
time.sleep(600)
"""


def _release(snakemake_dir):
    """``hold_workflow_lock`` in a fresh process (which then exits): the list it removed."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD + f"print(locks.hold_workflow_lock({str(snakemake_dir)!r}))"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


def _holder(take: str):
    """A subprocess that takes a lock with ``take`` and sleeps; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(take=take)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_exclusive_waits_for_a_live_holder_and_runs_after_it_is_killed(tmp_path, capfd):
    path = tmp_path / "run.lock"
    holder = _holder(f"ctx = locks.exclusive({str(path)!r}, 'busy'); ctx.__enter__()")
    entered, waited = threading.Event(), threading.Event()

    def second():
        with locks.exclusive(path, "train: another process is training here; waiting", on_wait=waited.set):
            entered.set()

    thread = threading.Thread(target=second, daemon=True)
    try:
        thread.start()
        assert waited.wait(60)  # it found the lock taken...
        deadline = time.monotonic() + 60
        while "another process is training here; waiting" not in capfd.readouterr().err:
            assert time.monotonic() < deadline, "no waiting message"
            time.sleep(0.05)
        assert not entered.wait(0.5)  # ...and blocks while the holder lives
    finally:
        _kill(holder)  # the kernel releases the lock
    thread.join(timeout=60)
    assert entered.is_set()


def test_exclusive_does_not_wait_when_free(tmp_path, capfd):
    path = tmp_path / "run.lock"
    path.write_text("")  # left behind by a killed holder: harmless
    called = []
    with locks.exclusive(path, "should not be printed", on_wait=lambda: called.append(1)):
        pass
    assert called == [] and "should not be printed" not in capfd.readouterr().err


def test_exclusive_never_admits_two_holders_even_when_the_holder_deletes_the_file(tmp_path):
    """Four threads contend; each holder deletes the lock file's directory before it lets go."""
    path = tmp_path / "store" / "run.lock"
    inside, overlaps, errors, held = [], [], [], []

    def worker():
        try:
            for _ in range(20):
                with locks.exclusive(path, ""):
                    held.append(1)
                    inside.append(1)
                    if len(inside) > 1:
                        overlaps.append(len(inside))
                    time.sleep(0.001)
                    inside.pop()
                    # as CheckpointStore.clear does: another thread may have made a
                    # new lock file in the directory meanwhile (then it stays)
                    shutil.rmtree(path.parent, ignore_errors=True)
        except Exception as error:  # noqa: BLE001 - a waiter that fails must fail the test, not just its thread
            errors.append(repr(error))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert errors == []  # e.g. FileNotFoundError: the directory removed between makedirs and open
    assert overlaps == [] and len(held) == 4 * 20


def test_exclusive_retries_when_the_directory_goes_between_makedirs_checks(tmp_path, monkeypatch):
    """`os.makedirs(exist_ok=True)` raises FileExistsError when another process made the directory
    and the holder removed it before makedirs looked again (seen once in a loaded test run)."""
    path = tmp_path / "store" / "run.lock"
    real, calls = os.makedirs, []

    def racing_makedirs(name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 1:
            raise FileExistsError(17, "File exists", name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(locks.os, "makedirs", racing_makedirs)
    with locks.exclusive(path, ""):
        assert path.exists()
    assert len(calls) == 2


def _stale_locks(snakemake_dir):
    lock_dir = snakemake_dir / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for name in ("0.input.lock", "0.output.lock"):
        (lock_dir / name).write_text("results/x.csv\n")
    return sorted(str(p) for p in lock_dir.iterdir())


def test_snakemake_locks_of_a_killed_run_are_removed(tmp_path):
    snakemake_dir = tmp_path / ".snakemake"
    holder = _holder(f"locks.hold_workflow_lock({str(snakemake_dir)!r})")
    files = _stale_locks(snakemake_dir)  # the live run's own Snakemake locks
    try:
        # A live run holds the workflow lock: its Snakemake locks are not touched.
        assert _release(snakemake_dir) == []
        assert sorted(str(p) for p in (snakemake_dir / "locks").iterdir()) == files
    finally:
        _kill(holder)  # as `kill -9 snakemake`
    assert sorted(_release(snakemake_dir)) == files
    assert list((snakemake_dir / "locks").iterdir()) == []


def test_a_run_that_started_second_keeps_its_locks_after_the_first_exits(tmp_path):
    snakemake_dir = tmp_path / ".snakemake"
    first = _holder(f"locks.hold_workflow_lock({str(snakemake_dir)!r})")
    second = _holder(f"locks.hold_workflow_lock({str(snakemake_dir)!r})")  # found `first` alive
    try:
        _kill(first)
        files = _stale_locks(snakemake_dir)  # `second`'s locks: it is alive
        assert _release(snakemake_dir) == []
        assert sorted(str(p) for p in (snakemake_dir / "locks").iterdir()) == files
    finally:
        _kill(second)
    assert sorted(_release(snakemake_dir)) == files


@pytest.mark.parametrize("name", ["notes.txt", "0.output.lock.bak"])
def test_only_snakemake_lock_files_are_removed(tmp_path, name):
    snakemake_dir = tmp_path / ".snakemake"
    (snakemake_dir / "locks").mkdir(parents=True)
    (snakemake_dir / "locks" / name).write_text("x")
    assert _release(snakemake_dir) == []
    assert (snakemake_dir / "locks" / name).exists()


def test_exclusive_survives_the_directory_vanishing_between_makedirs_and_open(tmp_path, monkeypatch):
    """The race the four-thread test hits now and then, made certain: the holder's clear() lands in between."""
    path = tmp_path / "store" / "run.lock"
    real_makedirs, calls = os.makedirs, []

    def makedirs_then_vanish(name, exist_ok=False):
        real_makedirs(name, exist_ok=exist_ok)
        calls.append(name)
        if len(calls) == 1:
            shutil.rmtree(name)  # as CheckpointStore.clear, at the worst moment

    monkeypatch.setattr(locks.os, "makedirs", makedirs_then_vanish)
    with locks.exclusive(path, ""):
        assert path.exists()
    assert len(calls) == 2  # it made the directory again and took the lock there
