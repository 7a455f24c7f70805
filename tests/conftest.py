"""Test set-up shared by every module, on whichever Keras backend runs.

The backend is ``KERAS_BACKEND`` (TensorFlow unless set). On TensorFlow the
CPU is split into two logical devices before TensorFlow initializes, so
``tf.distribute.MirroredStrategy`` tests run two replicas on one machine;
everything else keeps running on the first device. Tests of TensorFlow-only
parts are marked with :data:`tensorflow_only` and skip, with the reason, on
the other backends.
"""

import ast
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

# ------------------------------------------------------------------ xdist groups
# `make test` runs `pytest -n 2 --dist loadgroup`: the modules that share an
# expensive module or session fixture carry a module-level
# `pytestmark = pytest.mark.xdist_group(NAME)`, and every test of a group must
# run in one worker so that the fixture is built once. pytest-xdist's own
# loadgroup scheduler finds the group in a suffix it appends to each node id;
# with pytest 9.2 that suffix is silently lost (node ids became structured),
# and the groups were spread over both workers (the pipeline fixture built
# twice). The scheduler below reads the group from the module's source instead,
# and a collection check refuses a group mark it would not see.


@functools.lru_cache(maxsize=None)
def _module_xdist_group(path):
    """NAME of a test module's `pytestmark = pytest.mark.xdist_group(NAME)`, else None."""
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for call in ast.walk(node.value):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "xdist_group" and call.args and isinstance(call.args[0], ast.Constant)):
                    return str(call.args[0].value)
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        if names and names != {_module_xdist_group(str(item.path))}:
            raise pytest.UsageError(
                f"{item.nodeid}: xdist_group {sorted(names)} must be the module's only group, set as "
                "`pytestmark = pytest.mark.xdist_group(NAME)` (conftest's scheduler reads it from there)"
            )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` with each module's xdist_group read from its source (see above)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    root = str(config.rootpath)

    class ModuleGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid):
            group = _module_xdist_group(os.path.join(root, nodeid.split("::", 1)[0]))
            return f"xdist_group:{group}" if group else super()._split_scope(nodeid)

    return ModuleGroupScheduling(config, log)


tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason=f"needs the TensorFlow backend (tf.GradientTape / tf.distribute / SavedModel); running {BACKEND!r}",
)


class KeepLogs(keras.callbacks.Callback):
    """Keeps every training step's logs as floats (``self.steps``)."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({k: float(v) for k, v in logs.items()})


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a known seed and the float32 dtype policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy for the whole session (TensorFlow backend only).

    TensorFlow's collective ops keep per-process instance keys: several
    MirroredStrategy objects in one process can collide ("Shape mismatch in
    the collective instance ..."), so every test shares this one.
    """
    if BACKEND != "tensorflow":
        pytest.skip(f"tf.distribute.MirroredStrategy needs the TensorFlow backend; running {BACKEND!r}")
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest must split the CPU into 2 logical devices"
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(scope="session")
def ci_pipeline_results(tmp_path_factory):
    """The outputs of one local `snakemake --configfile config/test.yaml` run, shared by the tests that need it.

    `tests/test_pipeline.py` checks them; `tests/test_slurm.py` compares the
    SLURM run with them. Both tests carry ``xdist_group("ci_pipeline")`` so
    that under ``pytest -n 2 --dist loadgroup`` they run in one worker and the
    pipeline runs once.
    """
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = tmp_path_factory.mktemp("ci_pipeline") / "results"
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "snakemake"), "--cores", "2", "--configfile",
         "config/test.yaml", "--config", f"results={results}"],
        cwd=root, env=subprocess_env(), capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return results


def subprocess_env(pause=None, slurm=False):
    """Environment for a `keras-sngan` / `snakemake` subprocess of a test.

    The virtualenv's scripts first on PATH, this checkout first on
    PYTHONPATH, and the checkpoint test hook (`KERAS_SNGAN_TEST_PAUSE`) set
    to ``pause`` or removed. Unless ``slurm``, the `scontrol` found first on
    PATH is a stub that fails at once: snakemake-executor-plugin-slurm runs
    `scontrol show config` whenever snakemake starts, with any executor, and
    with SLURM installed but not running (CI, once tests/test_slurm.py has
    installed it) that takes 9 s of connection retries per snakemake process.
    Only the SLURM runs of tests/test_slurm.py talk to SLURM. Warm-start
    servers (the pipeline's jobs fork from one, keras_sngan/poster/warm_start.py)
    exit 30 s after their last command, not 120 s, so few outlive the suite.
    """
    import sys

    from keras_sngan.poster.plumbing import checkpoints

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_dirs = [os.path.dirname(sys.executable)] + ([] if slurm else [_scontrol_stub_dir()])
    env = dict(os.environ, PATH=os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")]))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.pop(checkpoints.PAUSE_ENV, None)
    env.setdefault("KERAS_SNGAN_WARM_IDLE", "30")
    env.pop("PYTEST_CURRENT_TEST", None)  # pytest's own, changes with every test: one server per test otherwise
    if pause:
        env[checkpoints.PAUSE_ENV] = pause
    return env


@functools.lru_cache(maxsize=None)
def _scontrol_stub_dir():
    """A directory holding only a `scontrol` that exits 1 (removed when this process exits)."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="keras-sngan-no-slurm-")
    atexit.register(shutil.rmtree, path, True)
    stub = os.path.join(path, "scontrol")
    with open(stub, "w") as handle:
        handle.write("#!/bin/sh\necho 'scontrol: stub of tests/conftest.py (this test does not use SLURM)' >&2\nexit 1\n")
    os.chmod(stub, 0o755)
    return path
