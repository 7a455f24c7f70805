"""The pipeline interrupted the way users break runs: Ctrl-C, SIGKILL of a training job, `kill -9` of snakemake.

The oracle is the same training job from an uninterrupted pipeline run
(config/test.yaml, one target: 8gaussians / sn / seed 0).
"""

import contextlib
import json
import os
import subprocess
import sys

import pytest
from conftest import subprocess_env

# One pytest-xdist worker (`make test`: -n 2 --dist loadgroup) for the module: the uninterrupted
# run (a module fixture) is built once. Not in test_pipeline's "ci_pipeline" group, so that these
# runs overlap with the shared config/test.yaml run in the other worker.
pytestmark = pytest.mark.xdist_group("pipeline_resume")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _pipeline_run_files(results):
    run_dir = results / "runs" / "compare" / "8gaussians" / "sn" / "seed0"
    return run_dir, sorted(p.name for p in run_dir.glob("*") if p.suffix in (".csv", ".json"))


def _wait_for_pause(marker, process):
    import time

    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, (process.communicate()[0] or "")[-3000:]
        assert time.monotonic() < deadline, "the training job never reached its pause point"
        time.sleep(0.05)
    return int(marker.read_text().split()[1])


def _run_command(results, backend="tensorflow"):
    target = results / "runs" / "compare" / "8gaussians" / "sn" / "seed0" / "run.json"
    return [os.path.join(BIN, "snakemake"), str(target), "--cores", "2", "--configfile", "config/test.yaml",
            "--config", f"results={results}", f"backend={backend}"]


def _private_workdir(path):
    """A working directory of its own (its own .snakemake, so its own Snakemake locks) for this repository."""
    path.mkdir()
    for name in ("Snakefile", "config", "workflow", "keras_sngan"):
        (path / name).symlink_to(os.path.join(ROOT, name))
    return str(path)


@pytest.fixture(scope="module")
def uninterrupted_runs(tmp_path_factory):
    """``run(backend)``: the single training job's outputs from an uninterrupted pipeline run on ``backend`` (made once)."""
    made = {}

    def run(backend):
        if backend not in made:
            reference = tmp_path_factory.mktemp(f"reference-{backend}")
            done = subprocess.run(_run_command(reference, backend), cwd=ROOT, env=subprocess_env(), capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            made[backend] = reference
        return made[backend]

    return run


@pytest.fixture(scope="module")
def uninterrupted_run(uninterrupted_runs):
    """The TensorFlow run (the snakemake-kill test is about locks, not the backend)."""
    return uninterrupted_runs("tensorflow")


def _assert_same_run(reference, results, resumed_from_epoch):
    """Every CSV/JSON output of the training job equal, byte for byte (run.json: but its wall-clock fields)."""
    ref_dir, ref_files = _pipeline_run_files(reference)
    run_dir, files = _pipeline_run_files(results)
    assert files == ref_files == ["gap.csv", "history.csv", "layers.csv", "run.json"]
    for name in files:
        if name == "run.json":
            a, b = (json.loads((d / name).read_text()) for d in (ref_dir, run_dir))
            assert b.pop("resumed_from_epoch") == resumed_from_epoch and a.pop("resumed_from_epoch") == 0
            for key in ("seconds_per_iteration", "wall_seconds_this_process"):
                a.pop(key), b.pop(key)
            assert a == b
        else:
            assert (run_dir / name).read_bytes() == (ref_dir / name).read_bytes(), name


def _default_sigint():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_killed_pipeline_rerun_equals_uninterrupted_run(tmp_path, uninterrupted_runs, backend):
    """Ctrl-C snakemake mid-training, then SIGKILL its training job; the same command finishes exactly.

    Compared: every CSV/JSON output of the training job, byte for byte,
    except the wall-clock fields of run.json (seconds_per_iteration,
    wall_seconds_this_process) and resumed_from_epoch.
    """
    import signal

    results = tmp_path / "killed"
    marker = results / "checkpoints" / "compare" / "8gaussians" / "sn" / "seed0" / "paused"
    # config/test.yaml: 20 iterations in 2 epochs. 1) Ctrl-C (SIGINT to the
    # process group, as a terminal sends it) after iteration 5: no checkpoint yet.
    # 2) SIGKILL of the training job after iteration 15 (mid-epoch 2).
    for pause, kill in (("step:5", "sigint-group"), ("step:15", "sigkill-job")):
        if marker.exists():
            marker.unlink()
        # SIGINT at its default in the child: a test runner started in the
        # background of a non-interactive shell inherits SIGINT ignored, and
        # so would snakemake and its jobs (the Ctrl-C below would be lost).
        process = subprocess.Popen(_run_command(results, backend), cwd=ROOT, env=subprocess_env(pause),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                   preexec_fn=_default_sigint)
        job = _wait_for_pause(marker, process)
        if kill == "sigint-group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(job, signal.SIGKILL)
        output = process.communicate(timeout=300)[0]
        assert process.returncode != 0, output[-3000:]
        assert not (results / "runs" / "compare" / "8gaussians" / "sn" / "seed0" / "run.json").exists()
    rerun = subprocess.run(_run_command(results, backend), cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    _assert_same_run(uninterrupted_runs(backend), results, resumed_from_epoch=1)
    run_json = results / "runs" / "compare" / "8gaussians" / "sn" / "seed0" / "run.json"
    assert json.loads(run_json.read_text())["backend"] == backend


@pytest.mark.slow
def test_sigkilled_snakemake_rerun_needs_no_unlock_and_waits_for_its_orphan(tmp_path, uninterrupted_run):
    """`kill -9` of snakemake alone: its training job lives on; the same command, typed again, finishes exactly.

    The rerun must start without `snakemake --unlock` (the killed run's lock
    files are still there), and its training job must wait for the orphan
    instead of training into the same checkpoint directory beside it.
    """
    import signal
    import threading

    workdir = _private_workdir(tmp_path / "workdir")
    results = tmp_path / "killed"
    marker = results / "checkpoints" / "compare" / "8gaussians" / "sn" / "seed0" / "paused"
    log = open(tmp_path / "first.log", "w")  # not a pipe: the orphan keeps writing to it
    first = subprocess.Popen(_run_command(results), cwd=workdir, env=subprocess_env("step:15"), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    rerun = None
    try:
        _wait_for_pause(marker, first)
        first.kill()  # SIGKILL to snakemake only: the job (shell, tee, keras-sngan train) lives on
        first.wait(timeout=60)
        stale = sorted(p.name for p in (tmp_path / "workdir" / ".snakemake" / "locks").glob("*.lock"))
        assert "0.output.lock" in stale  # what a rerun would trip over without the clean-up
        assert marker.exists()  # the orphan is alive, paused after iteration 15

        rerun = subprocess.Popen(_run_command(results), cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines, waiting = [], threading.Event()

        def read():
            for line in rerun.stdout:
                lines.append(line)
                if "waiting for it to finish" in line:
                    waiting.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert waiting.wait(300), "".join(lines)[-3000:]
        assert "removed the stale Snakemake lock" in "".join(lines)
        marker.unlink()  # the orphan goes on from iteration 15 to the end, then the rerun's job runs
        assert rerun.wait(timeout=600) == 0, "".join(lines)[-3000:]
        reader.join(timeout=60)
    finally:
        for process in (first, rerun):  # the orphan is in `first`'s process group
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        log.close()
    # The orphan kept its final checkpoint for the waiting job, which only rewrote the outputs.
    _assert_same_run(uninterrupted_run, results, resumed_from_epoch=2)
