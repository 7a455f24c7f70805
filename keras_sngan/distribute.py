"""Choose and set up the `tf.distribute` strategy of a training process.

One job: turn ``--distribute`` / ``--replicas`` (and the ``TF_CONFIG``
environment variable) into a `tf.distribute.Strategy`, and answer the
questions a training loop asks about its worker's role.

Modes (see :func:`make_strategy`):

- ``"none"``: TensorFlow's default strategy (one device);
- ``"mirrored"``: `tf.distribute.MirroredStrategy` in one process. On a CPU
  machine ``replicas=N`` splits the CPU into ``N`` logical devices first, so
  one process runs ``N`` replicas (this is the one-process oracle the
  multi-worker tests compare with);
- ``"multi-worker"``: `tf.distribute.MultiWorkerMirroredStrategy`, one replica
  per process, the cluster described by ``TF_CONFIG``
  (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
  "index": i}}``). Every worker runs the same command;
- ``"auto"`` (default): ``"multi-worker"`` when ``TF_CONFIG`` names a cluster
  of more than one task, ``"mirrored"`` when ``replicas > 1``, else ``"none"``.

Devices, threads and collective ops can only be configured before TensorFlow
initializes, so :func:`make_strategy` must run before any other TensorFlow
work of the process (it raises a clear error otherwise).

Roles: the chief (task ``chief``, or worker 0 when the cluster has no chief)
writes the outputs and the checkpoint everybody resumes from. Every worker
still runs every save, as `tf.distribute` recommends for
`MultiWorkerMirroredStrategy` (reading a synchronized-on-read variable, such
as a Keras metric's, is a collective that every worker must join); the
others write into a private copy (:func:`worker_checkpoint_dir`), so they
never race the chief's files. Resuming therefore needs the chief's
checkpoint directory on a file system every worker sees;
:func:`check_same_state` turns a worker that found another checkpoint into a
clear error instead of a silently diverging run.

Data: :func:`shard_by_data` sets `tf.data`'s ``DATA`` auto-shard policy.
Every worker builds the same (seeded) dataset and keeps its replicas' slices
of each global batch, so N workers see exactly the batches of a one-process
run with N replicas.
"""

from __future__ import annotations

import json
import os
import shutil

from keras_sngan.validation import check_int

DISTRIBUTE_MODES = ("auto", "none", "mirrored", "multi-worker")
_TASK_TYPES = ("chief", "worker")


def read_tf_config(environ=None) -> dict | None:
    """The parsed ``TF_CONFIG`` of this process, or ``None`` when it is unset or empty.

    Raises:
        ValueError: ``TF_CONFIG`` is not JSON, names no workers, or its task
            is not one of the cluster's ``chief``/``worker`` tasks.
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG must be JSON, received {raw!r} ({error}).") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(
            "TF_CONFIG must hold 'cluster' and 'task', e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}, '
            f"received {raw!r}."
        )
    unknown = sorted(set(cluster) - set(_TASK_TYPES))
    if unknown:
        raise ValueError(
            f"TF_CONFIG: cluster task types must be among {list(_TASK_TYPES)} for "
            f"MultiWorkerMirroredStrategy, received {unknown}."
        )
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise ValueError(
                f"TF_CONFIG: cluster[{kind!r}] must be a non-empty list of 'host:port' "
                f"strings, received {addresses!r}."
            )
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise ValueError(
            f"TF_CONFIG: task type must be one of the cluster's {sorted(cluster)}, received {kind!r}."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(
            f"TF_CONFIG: task index must be an integer in [0, {len(cluster[kind]) - 1}] for "
            f"task type {kind!r}, received {index!r}."
        )
    return config


def resolve_mode(mode: str = "auto", replicas: int = 1, environ=None) -> str:
    """The concrete mode (``"none"``, ``"mirrored"`` or ``"multi-worker"``) for the arguments.

    Raises:
        ValueError: unknown ``mode``, ``replicas`` not an integer >= 1,
            ``"multi-worker"`` without a ``TF_CONFIG`` cluster, or
            ``replicas > 1`` with a mode that does not use it.
    """
    if mode not in DISTRIBUTE_MODES:
        raise ValueError(f"`distribute` must be one of {list(DISTRIBUTE_MODES)}, received {mode!r}.")
    replicas = check_int("replicas", replicas, 1)
    # "none" and "mirrored" ignore TF_CONFIG (as TensorFlow's strategies for them do)
    config = read_tf_config(environ) if mode in ("auto", "multi-worker") else None
    tasks = sum(len(v) for v in config["cluster"].values()) if config else 0
    if mode == "auto":
        mode = "multi-worker" if tasks > 1 else ("mirrored" if replicas > 1 else "none")
    if mode == "multi-worker" and config is None:
        raise ValueError(
            "`distribute`='multi-worker' needs the TF_CONFIG environment variable describing "
            'the cluster, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\'.'
        )
    if replicas > 1 and mode != "mirrored":
        raise ValueError(
            f"`replicas`={replicas} splits one process into logical devices for "
            f"`distribute`='mirrored', received `distribute`={mode!r}; a multi-worker run has "
            "one replica per worker process."
        )
    return mode


def make_strategy(mode: str = "auto", replicas: int = 1, threads: int | None = None):
    """Configure threads and devices, then create the strategy for ``mode``.

    Call it first in the process, before any other TensorFlow operation.

    Args:
        mode: one of :data:`DISTRIBUTE_MODES` (see the module docstring).
        replicas: replicas of a ``"mirrored"`` run; on a machine without GPUs
            the CPU is split into this many logical devices.
        threads: intra-op threads per process (inter-op: 1), or ``None``
            for TensorFlow's default.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: bad arguments or ``TF_CONFIG`` (before TensorFlow starts).
        RuntimeError: TensorFlow already initialized, so devices or collective
            ops can no longer be configured.
    """
    mode = resolve_mode(mode, replicas)
    import keras

    from keras_sngan import runtime

    if keras.backend.backend() != "tensorflow":
        if mode != "none":
            raise ValueError(
                f"`distribute`={mode!r} needs the TensorFlow backend (tf.distribute), received the "
                f"{keras.backend.backend()!r} backend; use 'none' (one process, one device) or "
                "KERAS_BACKEND=tensorflow."
            )
        runtime.configure(threads)
        return SingleProcess()
    runtime.configure_tensorflow(threads)
    import tensorflow as tf

    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "multi-worker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as error:
            raise RuntimeError(
                "distribute='multi-worker': MultiWorkerMirroredStrategy must be created before any "
                f"other TensorFlow operation of the process ({error})."
            ) from None
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        devices = [f"/gpu:{i}" for i in range(min(replicas, len(gpus)))]
        if len(devices) < replicas:
            raise ValueError(
                f"`replicas`={replicas} but this machine has {len(gpus)} GPU(s)."
            )
        return tf.distribute.MirroredStrategy(devices)
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:  # already initialized: usable only if the split is already there
        pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < replicas:
        raise RuntimeError(
            f"distribute='mirrored' with `replicas`={replicas} needs {replicas} logical CPU devices, "
            f"but TensorFlow already started with {len(devices)}; create the strategy before any "
            "other TensorFlow operation."
        )
    return tf.distribute.MirroredStrategy(devices[:replicas])


class SingleProcess:
    """The strategy of a one-process, one-device run on a backend other than TensorFlow.

    It answers what the training code asks a `tf.distribute.Strategy`: one
    replica in sync, a scope that does nothing, no cluster.
    """

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def check_global_batch(batch_size: int, strategy) -> None:
    """Raise unless the global ``batch_size`` splits evenly over the strategy's replicas.

    Every replica computes on ``batch_size / replicas`` samples of each critic
    batch; an uneven split would give replicas different batch sizes.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size`={batch_size} is the global critic batch and must be a multiple of the "
            f"{replicas} replicas in sync (each computes on batch_size / replicas samples)."
        )


def worker_role(strategy) -> tuple[str | None, int]:
    """``(task_type, task_id)`` of this process; ``(None, 0)`` outside a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
    """True for the process that writes outputs and the shared checkpoint.

    The task of type ``chief``, or worker 0 when the cluster has no chief, or
    the only process of a single-process run.
    """
    task_type, task_id = worker_role(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_checkpoint_dir(checkpoint_dir, strategy) -> str:
    """The checkpoint directory this process reads and writes.

    The chief uses ``checkpoint_dir``. Every other worker gets a private
    directory next to it (``<checkpoint_dir>.<task_type><task_id>``), emptied
    and then filled with a copy of the chief's current checkpoint, so it
    resumes from the chief's state and its own saves never touch the chief's
    files. Call it before training starts (the chief cannot write a new
    checkpoint before every worker joins the first step). Remove the private
    directory with :func:`remove_worker_checkpoint_dir` when training ends.
    """
    checkpoint_dir = os.fspath(checkpoint_dir).rstrip(os.sep) or os.sep
    if is_chief(strategy):
        return checkpoint_dir
    task_type, task_id = worker_role(strategy)
    private = f"{checkpoint_dir}.{task_type}{task_id}"
    shutil.rmtree(private, ignore_errors=True)
    if os.path.isdir(checkpoint_dir):
        shutil.copytree(checkpoint_dir, private)
    else:
        os.makedirs(private)
    return private


def remove_worker_checkpoint_dir(path, strategy) -> None:
    """Delete a non-chief worker's private checkpoint copy (the chief's is left alone)."""
    if not is_chief(strategy):
        shutil.rmtree(path, ignore_errors=True)


def shard_by_data(dataset):
    """``dataset`` with the ``DATA`` auto-shard policy (every worker reads all data, keeps its slices).

    With the default ``AUTO`` policy a file-backed dataset (TFDS) would be
    sharded by file, so workers would see other batches than a one-process
    run (or fail with fewer files than workers).
    """
    if not hasattr(dataset, "with_options"):  # not a tf.data.Dataset: nothing shards it
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def check_same_state(strategy, variables, what: str = "model") -> None:
    """Raise unless every worker holds the same values of ``variables``.

    A collective (every worker must call it at the same point): each worker
    contributes a float64 checksum of its local values; a mismatch means the
    workers restored different checkpoints (typically: the chief's checkpoint
    directory is not on a file system the other workers see).
    """
    import numpy as np

    task_type, _ = worker_role(strategy)
    if task_type is None:
        return
    import tensorflow as tf

    local = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64) for v in variables]
    checksum = np.array([sum(float(np.sum(a)) for a in local), sum(float(np.sum(a * a)) for a in local)])
    values = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant(checksum[None, :])
    )
    gathered = strategy.gather(values, axis=0).numpy()
    if not np.all(gathered == gathered[0]):
        raise RuntimeError(
            f"The workers start training from different {what} states (checksums per worker: "
            f"{gathered.tolist()}): they resumed from different checkpoints. Put the checkpoint "
            "directory on a file system that every worker sees, at the same path, or delete it "
            "to start over."
        )


def workers_in_sync_callback(strategy):
    """A Keras callback that runs :func:`check_same_state` when training begins.

    Put it after the checkpoint callback: it compares every worker's model
    weights and optimizer variables right after the restore.
    """
    import keras

    class WorkersInSync(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            variables = list(self.model.weights)
            for value in vars(self.model).values():
                if isinstance(value, keras.optimizers.Optimizer):
                    variables += list(value.variables)
            check_same_state(strategy, variables, what="model and optimizer")

    return WorkersInSync()


def _multi_worker(strategy) -> bool:
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_mode()) if callable(in_mode) else True


def step_outputs_for_fit(outputs: dict) -> dict:
    """Make a ``train_step``'s scalar outputs reducible by Keras 3 under multi-worker training.

    Keras 3 (3.15) reduces the per-step outputs of ``fit`` under a
    multi-worker `MultiWorkerMirroredStrategy` with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars
    ("Invalid reduction dimension 0 for input with 0 dimensions";
    tensorflow/tensorflow#72388). There each scalar is returned with shape
    ``(1,)``: the reduce then averages over the workers' replicas and yields the
    same scalar a one-process `MirroredStrategy` logs. Other strategies get
    ``outputs`` unchanged. Call it on the dict ``train_step`` returns.
    """
    import tensorflow as tf

    if not _multi_worker(tf.distribute.get_strategy()):
        return outputs
    return {name: tf.reshape(value, (1,)) if value.shape.rank == 0 else value for name, value in outputs.items()}
