"""One WGAN training run (clip / GP / SN) with per-iteration diagnostics, and its evaluation.

:func:`train` builds the models for a dataset, trains with `keras_sngan.wgan.WGAN`
and records, per generator iteration, the logged metrics (critic loss,
Wasserstein estimate, generator loss, gradient penalty, input-gradient norm),
the per-layer weight-gradient norms, and every ``stats_every`` iterations the
layer spectral norms and the critic's train vs held-out Wasserstein estimate.
Iteration 0 (the initialized models, before any update) is recorded too, so
an initialization effect is not mistaken for a training effect.

Resuming: after every epoch a crash-safe checkpoint
(:mod:`keras_sngan.poster.plumbing.checkpoints`: models, their state, both
optimizers, the noise generator and the recorder's tables, written
atomically) goes into ``checkpoint_dir`` (keep it outside any pipeline
output: Snakemake deletes the outputs of a failed job), and the data order is
a pure function of (seed, step) (:mod:`keras_sngan.poster.plumbing.data_stream`).
Running the same :func:`train` call again after a kill resumes from the last
complete epoch, and on CPU the outputs equal an uninterrupted run's byte for
byte (except in ``run.json`` the wall-clock fields ``seconds_per_iteration``
and ``wall_seconds_this_process``, and ``resumed_from_epoch``, which records
the resume). A kill costs at
most one epoch of work. The checkpoints are deleted when the outputs are
written.

:func:`evaluate` loads the trained models and computes the final metrics:
exact W1 with its real-vs-real floor, VEEGAN high-quality fraction and modes
(Gaussian mixtures), classifier Frechet distance and class coverage
(digits), and the critic's generalization gap.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref

import numpy as np
import pandas as pd

from keras_sngan import distribute as distribution
from keras_sngan import runtime
from keras_sngan.poster.plumbing import checkpoints, data_stream, io, timing
from keras_sngan.poster.running.spec import METHODS, OPTIMIZERS, RunSpec



GAUSSIAN_MIXTURES = ("8gaussians", "25gaussians")  # toy sets with modes to count


def is_image_dataset(dataset: str) -> bool:
    """Everything but the 2-D toy sets is an image set (digits, TFDS images)."""
    from keras_sngan import datasets

    return dataset not in datasets.TOY_DATASETS


# --------------------------------------------------------------------------- models
def build_models(dataset: str, method: str, model: dict, sample_shape=(2,)):
    """Critic, generator and latent size for a dataset.

    Toy sets: the WGAN-GP MLPs (``width``, ``depth``, ``activation``,
    ``latent_dim``, ``initializer``). Image sets: Miyato's standard CNN at the images' size
    (``critic_channels``, ``generator_channels``, ``latent_dim``).
    ``model`` may also hold ``sn_method``, ``sn_scale`` and ``clip_value``.
    """
    from keras_sngan import models

    io.check_choice("build_models", "method", method, METHODS + ("none",))
    lipschitz = dict(
        lipschitz=method,
        sn_method=model.get("sn_method", "reshape"),
        sn_scale=model.get("sn_scale", 1.0),
        clip_value=model.get("clip_value", 0.01),
    )
    if is_image_dataset(dataset):
        size, channels = int(sample_shape[0]), int(sample_shape[-1])
        latent_dim = int(model.get("latent_dim", 32))
        critic = models.standard_critic(
            image_size=size, channels=channels, base_channels=int(model.get("critic_channels", 16)), **lipschitz
        )
        generator = models.standard_generator(
            latent_dim=latent_dim, image_size=size, channels=channels,
            base_channels=int(model.get("generator_channels", 64)),
        )
    else:
        latent_dim = int(model.get("latent_dim", 2))
        width, depth = int(model.get("width", 512)), int(model.get("depth", 3))
        initializer = model.get("initializer", "glorot")
        critic = models.toy_critic(
            width=width, depth=depth, activation=model.get("activation", "relu"), initializer=initializer, **lipschitz
        )
        generator = models.toy_generator(latent_dim=latent_dim, width=width, depth=int(model.get("generator_depth", 3)),
                                         initializer=initializer)
    return critic, generator, latent_dim


def make_optimizer(spec: dict):
    """A Keras optimizer from ``{"name": "adam"|"rmsprop", "learning_rate", "beta_1", "beta_2", "epsilon"}``.

    ``epsilon`` (optional, else Keras' default 1e-7) is where Keras puts it:
    under the square root for RMSprop (as TensorFlow 1's ``RMSPropOptimizer``,
    which WGAN-GP's ``gan_toy.py`` used, default 1e-10), outside it for Adam
    (TensorFlow 1's ``AdamOptimizer`` default 1e-8). It matters for weight
    clipping: a clipped critic's gradients (RMS about 1e-6) sit far below
    Keras' default floor ``sqrt(1e-7)``, so its RMSprop steps shrink to a
    small fraction of the learning rate.
    """
    import keras

    io.check_choice("make_optimizer", "name", spec.get("name"), OPTIMIZERS)
    lr = io.check_positive("make_optimizer", "learning_rate", spec.get("learning_rate"))
    extra = {}
    if spec.get("epsilon") is not None:
        extra["epsilon"] = io.check_positive("make_optimizer", "epsilon", spec["epsilon"])
    if spec["name"] == "rmsprop":
        return keras.optimizers.RMSprop(lr, **extra)
    return keras.optimizers.Adam(lr, beta_1=float(spec.get("beta_1", 0.5)), beta_2=float(spec.get("beta_2", 0.9)), **extra)


# --------------------------------------------------------------------------- graph mode or XLA
# Per model and method: milliseconds per generator iteration in graph mode and
# with XLA, and the extra seconds XLA's first call costs (its compilation), on
# one thread of this project's 2-core CPU machine (AMD EPYC, AVX2),
# TensorFlow 2.21: benchmarks/step_choice.py, committed output
# benchmarks/results/step_choice.json.
STEP_TIMES = {
    # (model, method): (graph_ms, xla_ms, XLA's extra first-call seconds)
    ("toy_mlp_256", "clip"): (44.15, 45.46, 4.74),
    ("toy_mlp_256", "gp"): (77.55, 70.62, 9.65),
    ("toy_mlp_256", "sn"): (48.82, 45.32, 4.75),
    ("toy_mlp_512", "clip"): (186.34, 181.64, 3.97),
    ("toy_mlp_512", "gp"): (332.88, 290.06, 9.1),
    ("toy_mlp_512", "sn"): (220.18, 196.94, 6.34),
    ("deep_mlp_12x128", "clip"): (91.5, 99.0, 19.17),
    ("deep_mlp_12x128", "gp"): (113.6, 113.27, 10.69),
    ("deep_mlp_12x128", "sn"): (81.9, 75.3, 23.95),
    ("digits_cnn", "clip"): (150.85, 152.81, 10.85),
    ("digits_cnn", "gp"): (503.47, 459.65, 15.89),
    ("digits_cnn", "sn"): (158.92, 143.97, 31.08),
}


def step_model(dataset: str, model: dict) -> str:
    """The label of a run's model in :data:`STEP_TIMES` (``toy_mlp_256``, ``deep_mlp_12x128``, ``digits_cnn``, ...)."""
    if is_image_dataset(dataset):
        return "digits_cnn" if dataset == "digits" else f"{dataset}_cnn"
    width, depth = int(model.get("width", 512)), int(model.get("depth", 3))
    return f"toy_mlp_{width}" if depth == 3 else f"deep_mlp_{depth}x{width}"


def choose_jit_compile(jit_compile, dataset: str, method: str, model: dict, iterations: int,
                       backend: str = "tensorflow") -> bool:
    """Graph mode or XLA for one run: ``True``/``False`` as given, or ``"auto"``.

    On JAX ``"auto"`` is always XLA: JAX has no graph mode, and without
    ``jax.jit`` the step runs op by op (measured: 60-290 ms per iteration of
    the test profile's tiny models against 3-15 ms compiled).

    ``"auto"`` picks XLA when, by the measurements in :data:`STEP_TIMES`, the
    time XLA saves over the run's ``iterations`` exceeds what compiling it
    costs once; graph mode otherwise, and for every model not measured there
    (Keras' own choice on a CPU). The choice depends on the run alone, not on
    how many runs share its process, so a run's numbers never depend on its
    neighbours.
    """
    if jit_compile is True or jit_compile is False:
        return jit_compile
    if jit_compile != "auto":
        raise ValueError(f"train: `jit_compile` must be 'auto', True or False, received {jit_compile!r}.")
    if backend == "jax":
        return True
    measured = STEP_TIMES.get((step_model(dataset, model), method))
    if measured is None:
        return False
    graph_ms, xla_ms, compile_s = measured
    return (graph_ms - xla_ms) / 1e3 * iterations > compile_s


# --------------------------------------------------------------------------- diagnostics
def _spectral_norms(critic):
    from keras_sngan.callbacks import effective_kernel, spectral_norm
    from keras_sngan.model_layers import kernel_layers

    return {name: spectral_norm(effective_kernel(layer)) for name, layer, _ in kernel_layers(critic)}


_INFERENCE = weakref.WeakKeyDictionary()  # model -> its compiled inference function


def _compiled_inference(model):
    """``model(x, training=False)`` as one compiled function (the gap's forward passes, every ``stats_every``)."""
    from keras_sngan.wgan.autodiff import compiled_inference

    if model not in _INFERENCE:
        _INFERENCE[model] = compiled_inference(model)
    return _INFERENCE[model]


def _make_recorder_class():
    import keras

    class DiagnosticsRecorder(keras.callbacks.Callback):
        """Per-iteration metrics, per-layer stats and the train/held-out gap.

        Every generator iteration adds one ``history`` row with the values the
        WGAN step logged for that iteration (no running-mean arithmetic), one
        ``layers`` row per linear critic layer (weight-gradient norm; spectral
        norm every ``stats_every`` iterations), and every ``stats_every``
        iterations a ``gap`` row. Iteration 0 (before any update) is recorded
        when a fresh run starts. :meth:`state` / :meth:`restore` move the
        tables in and out of a checkpoint; put this callback before the
        checkpointing one so that an epoch is complete when it is saved.
        """

        METRICS = ("critic_loss", "wasserstein", "generator_loss", "gradient_penalty", "grad_norm")

        def __init__(self, steps_per_epoch, stats_every, first_batch, train_real, heldout_real, latent_dim, gap_samples, seed,
                     quality_samples=0, dataset=None):
            super().__init__()
            self.steps_per_epoch = steps_per_epoch
            self.stats_every = stats_every
            self.first_batch = first_batch
            self.train_real, self.heldout_real = train_real, heldout_real
            self.latent_dim, self.gap_samples, self.seed = latent_dim, gap_samples, seed
            self.history, self.layers, self.gap, self.quality, self.epoch_seconds = [], [], [], [], []
            self.iteration = 0
            self.quality_samples, self.dataset = int(quality_samples), dataset
            if self.quality_samples:
                rng = np.random.default_rng([seed, 2468])  # its own stream: training draws nothing extra
                n = self.quality_samples
                self._quality_noise = rng.standard_normal((n, latent_dim)).astype("float32")
                self._quality_real = heldout_real[:n]
                self._quality_reference = train_real[rng.choice(len(train_real), n, replace=False)]
            # One gradient-norm probe for every method (claim 1): pure, so resume stays exact.
            from keras_sngan.poster.running.gradient_probe import GradientProbe

            self.probe = GradientProbe(first_batch, latent_dim, seed)

        def state(self) -> dict:
            return {"history": self.history, "layers": self.layers, "gap": self.gap, "quality": self.quality,
                    "epoch_seconds": self.epoch_seconds}

        def restore(self, state: dict, epoch: int) -> None:
            self.history, self.layers, self.gap = state["history"], state["layers"], state["gap"]
            self.quality = state.get("quality", [])
            self.epoch_seconds = state["epoch_seconds"]
            self.iteration = epoch * self.steps_per_epoch

        def _gap_row(self, iteration):
            from keras_sngan.metrics import critic_generalization_gap

            row = critic_generalization_gap(
                _compiled_inference(self.model.critic), _compiled_inference(self.model.generator), self.train_real, self.heldout_real,
                self.latent_dim, n=self.gap_samples, seed=self.seed,
            )
            return {"iteration": iteration, **{k: row[k] for k in ("w_train", "w_heldout", "gap")}}

        def _quality_row(self, iteration):
            from keras_sngan import datasets, metrics

            fake = keras.ops.convert_to_numpy(_compiled_inference(self.model.generator)(self._quality_noise)).astype(np.float32)
            row = {"iteration": iteration, **metrics.wasserstein1_with_floor(fake, self._quality_real, self._quality_reference)}
            if self.dataset in GAUSSIAN_MIXTURES:
                centers, std = datasets.gaussian_mixture_modes(self.dataset)
                modes = metrics.mode_statistics(fake, centers, std)
                row.update({k: modes[k] for k in ("modes_covered", "num_modes", "high_quality_fraction")})
            return row

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 0 and not self.history:
                self._record_initial()
            self._epoch_start = time.perf_counter()

        def _record_initial(self):
            with timing.phase("diagnostics"):
                self._record_initial_rows()

        def _record_initial_rows(self):
            metrics, grads = self.model.critic_diagnostics(self.first_batch)
            self.history.append({"iteration": 0, **metrics, "probe_grad_norm": self.probe(self.model.critic, self.model.generator)})
            norms = _spectral_norms(self.model.critic)
            for depth, (name, value) in enumerate(grads.items()):
                self.layers.append({"iteration": 0, "layer": name, "depth": depth, "grad_norm": value, "spectral_norm": norms[name]})
            self.gap.append(self._gap_row(0))
            if self.quality_samples:
                self.quality.append(self._quality_row(0))

        def on_train_batch_end(self, batch, logs=None):
            with timing.phase("diagnostics"):
                self._record_iteration(logs)

        def _record_iteration(self, logs):
            self.iteration += 1
            logs = logs or {}
            row = {"iteration": self.iteration, **{m: float(logs[m]) for m in self.METRICS if m in logs}}
            row["probe_grad_norm"] = self.probe(self.model.critic, self.model.generator)  # after the generator update
            self.history.append(row)
            record_stats = self.iteration % self.stats_every == 0
            norms = _spectral_norms(self.model.critic) if record_stats else {}
            layer_names = [k.split("/", 1)[1] for k in logs if k.startswith("layer_grad_norm/")]
            for depth, name in enumerate(layer_names):
                self.layers.append(
                    {
                        "iteration": self.iteration, "layer": name, "depth": depth,
                        "grad_norm": float(logs[f"layer_grad_norm/{name}"]),
                        "spectral_norm": norms.get(name, float("nan")),
                    }
                )
            if record_stats:
                self.gap.append(self._gap_row(self.iteration))

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
            if self.quality_samples:
                with timing.phase("diagnostics"):
                    self.quality.append(self._quality_row(self.iteration))

    return DiagnosticsRecorder


# --------------------------------------------------------------------------- data
def training_arrays(dataset: str, seed: int, train_size=None, data_dir=None):
    """The exact training sample a run sees (images: its first ``train_size``), and the held-out sample."""
    from keras_sngan import datasets

    if dataset == "digits":
        x_train, _, x_heldout, _ = datasets.load_digits_split()
        return (x_train if train_size is None else x_train[:train_size]), x_heldout
    if is_image_dataset(dataset):
        x_train, _ = datasets.load_arrays(dataset, "train", n=train_size, data_dir=data_dir)
        x_heldout, _ = datasets.load_arrays(dataset, "test", data_dir=data_dir)
        return x_train, x_heldout
    x_train, _ = datasets.load_arrays(dataset, "train", n=train_size, seed=seed)
    x_heldout, _ = datasets.load_arrays(dataset, "test", seed=seed)
    return x_train, x_heldout


# --------------------------------------------------------------------------- train
def train(spec: RunSpec, callbacks=()) -> list[dict]:
    """Train every seed of ``spec``, one after the other in this process; write each run's files.

    Files of each seed's ``out_dir``: ``history.csv`` (one row per generator
    iteration, iteration 0 = initialization), ``layers.csv`` (per-layer
    weight-gradient norms every iteration, spectral norms every
    ``stats_every``), ``gap.csv`` (critic Wasserstein estimate on training vs
    held-out real data every ``stats_every``), ``quality.csv`` (with
    ``quality_samples``), ``critic.keras``, ``generator.keras`` and
    ``run.json`` (the spec's :meth:`~RunSpec.run_settings`, the seed, the
    latent size, seconds per iteration, wall time, the XLA choice, the Keras
    backend).

    Each seed is the run it would make alone, and its outputs equal that lone
    run's byte for byte (``run.json``: but its wall-clock fields). What is
    paid once instead of once per seed: starting the backend, building the
    optimizers' and the recorder's functions, and tracing (and with XLA,
    compiling) the training step. The models of every seed are built fresh
    from that seed, exactly as a lone run builds them, and their complete
    state (weights, spectral-normalization vectors, optimizer slots, the noise
    generator) is copied into the first seed's WGAN, whose traced step is
    then reused.

    Interrupted and run again, the call resumes: a seed whose run finished
    keeps its final checkpoint until every seed has finished, so it only
    rewrites its outputs; the interrupted seed resumes from its last epoch.
    A checkpoint is used only if it was written for the same
    :meth:`~RunSpec.fingerprint`. An exception raised in a run carries a note
    naming that run's seed and directory. Several seeds need a single-process
    run (``distribute`` ``"auto"`` or ``"none"``, one replica); in a
    multi-worker run only the chief writes ``out_dir`` and ``checkpoint_dir``.

    Args:
        spec: the run (:class:`~keras_sngan.poster.running.spec.RunSpec`,
            checked when it was made).
        callbacks: extra Keras callbacks, run after the checkpointing ones.

    Returns:
        One ``run.json`` dictionary per seed.
    """
    if not isinstance(spec, RunSpec):
        raise TypeError(f"train: `spec` must be a RunSpec, received {type(spec).__name__}.")
    out_dirs, checkpoint_dirs = spec.out_dirs(), spec.checkpoint_dirs()
    if spec.quality_samples and is_image_dataset(spec.dataset):
        raise ValueError(
            f"train: `quality_samples`={spec.quality_samples} needs a 2-d toy dataset (W1 and modes of points), "
            f"received `dataset`={spec.dataset!r}; use 0 for image sets."
        )
    import keras

    jit = choose_jit_compile(spec.jit_compile, spec.dataset, spec.method, spec.run_settings()["model"], spec.iterations,
                             backend=keras.backend.backend())
    # The strategy and the thread limits before any other TensorFlow op
    # (make_optimizer creates a variable, which starts TensorFlow and fixes its pools).
    strategy = distribution.make_strategy(spec.distribute, spec.replicas, spec.threads)
    if len(spec.seeds) > 1 and (strategy.num_replicas_in_sync != 1 or distribution.worker_role(strategy)[0] is not None):
        raise ValueError(
            f"train: several `seeds` ({list(spec.seeds)}) in one process need a single-process run, received "
            f"`distribute`={spec.distribute!r}, `replicas`={spec.replicas} (a distributed run; with 'auto': TF_CONFIG "
            "set?); train one seed per process instead."
        )
    infos, stores, warm = [], [], None
    with contextlib.ExitStack() as locks:  # every seed's store stays locked, its final checkpoint kept, until all are done
        for seed, out_dir, checkpoint_dir in zip(spec.seeds, out_dirs, checkpoint_dirs):
            try:
                info, store, warm = _train_one(spec, seed, out_dir, checkpoint_dir, strategy, callbacks, jit, warm, locks)
            except BaseException as error:
                error.add_note(f"keras-sngan train: in the run of seed {seed} ({spec.dataset}, {spec.method}) into {out_dir}")
                raise
            infos.append(info)
            stores += [store] if store is not None else []
        for store in stores:
            store.clear()
    return infos


@timing.phase("build")  # what the phases measured inside (training, diagnostics, io) do not claim
def _train_one(spec, seed, out_dir, checkpoint_dir, strategy, callbacks, jit, warm, locks):
    """One seed of :func:`train`: ``(run.json dict, its store to clear or None, the warm WGAN)``."""
    runtime.configure(spec.threads, seed)  # the seed before anything draws a random number
    chief = distribution.is_chief(strategy)
    dataset, method, batch_size, n_critic = spec.dataset, spec.method, spec.batch_size, spec.n_critic
    distribution.check_global_batch(batch_size, strategy)
    settings = spec.run_settings()
    make_optimizer(settings["optimizer"])  # validate before any expensive work
    from keras_sngan.wgan import WGAN

    train_real, heldout_real = training_arrays(dataset, seed, spec.train_size)
    data_stream.steps_per_pass(len(train_real), batch_size, n_critic)  # clear error if too small
    with strategy.scope():  # models and optimizers under the strategy
        gan, latent_dim = _build_wgan(spec, seed, train_real.shape[1:], WGAN, jit_compile=jit)
    if warm is not None:  # this seed's fresh state into the WGAN whose step is traced already
        _copy_training_state(gan, warm)
        gan = warm

    epochs = spec.epochs
    steps = spec.iterations // epochs
    # Non-chief workers of a multi-worker run checkpoint into a private copy of the chief's directory.
    checkpoint_dir = distribution.worker_checkpoint_dir(os.fspath(checkpoint_dir or os.path.join(out_dir, "checkpoints")), strategy)
    import keras

    store = checkpoints.CheckpointStore(checkpoint_dir, spec.fingerprint(seed, backend=keras.backend.backend()))
    first_batch = next(iter(data_stream.training_stream(train_real, batch_size, n_critic, seed, 0, 1)))
    recorder = _make_recorder_class()(
        steps, spec.stats_every, first_batch[::n_critic][:batch_size], train_real, heldout_real, latent_dim,
        min(spec.gap_samples, len(heldout_real)), seed, quality_samples=spec.quality_samples, dataset=dataset,
    )
    if recorder.quality_samples > len(heldout_real):
        raise ValueError(
            f"train: `quality_samples`={recorder.quality_samples} exceeds the {len(heldout_real)} held-out points of {dataset!r}."
        )
    # One process per checkpoint directory: a rerun waits for an orphan of a killed snakemake.
    locks.enter_context(store.exclusive())
    with strategy.scope(), timing.phase("io"):
        resumed_from_epoch = _resume(store, gan, recorder, strategy)
    start = time.perf_counter()
    if resumed_from_epoch < epochs:
        stream = distribution.shard_by_data(data_stream.training_stream(
            train_real, batch_size, n_critic, seed, resumed_from_epoch * steps, (epochs - resumed_from_epoch) * steps
        ))
        save = checkpoints.make_checkpoint_callback(store, recorder.state, steps)
        in_sync = distribution.workers_in_sync_callback(strategy)  # workers restored the same state
        with timing.phase("training"):
            gan.fit(
                stream, initial_epoch=resumed_from_epoch, epochs=epochs, steps_per_epoch=steps,
                callbacks=[recorder, save, in_sync, *callbacks], verbose=spec.verbose,
            )
        timed = recorder.epoch_seconds[resumed_from_epoch:]
        if len(timed) > 1:  # the first epoch's extra time over a steady one: tracing (and compiling) the step
            extra = max(0.0, timed[0] - float(np.median(timed[1:])))
            timing.add("tracing", extra), timing.add("training", -extra)
    wall = time.perf_counter() - start
    if not chief:  # multi-worker: only the chief writes outputs
        distribution.remove_worker_checkpoint_dir(checkpoint_dir, strategy)
        return {"dataset": dataset, "method": method, "seed": seed, "worker": distribution.worker_role(strategy)}, None, gan

    info = {
        **{k: settings[k] for k in ("dataset", "method")},
        "seed": seed,
        **{k: settings[k] for k in ("iterations", "batch_size", "n_critic")},
        "latent_dim": latent_dim,
        **{k: settings[k] for k in ("model", "optimizer", "gp_weight", "clip_value", "train_size")},
        **_timing(recorder.epoch_seconds, steps, wall),
        "resumed_from_epoch": resumed_from_epoch,
        "replicas": strategy.num_replicas_in_sync,
        "jit_compile": jit,
        "backend": keras.backend.backend(),
        **({"quality_samples": settings["quality_samples"]} if "quality_samples" in settings else {}),
    }
    with timing.phase("io"):
        _write_outputs(out_dir, recorder, gan, info)
    return info, store, gan


def _build_wgan(spec, seed, sample_shape, WGAN, jit_compile=False):
    """The compiled WGAN of ``spec``'s run of ``seed`` (fresh weights from the seed)."""
    import keras

    settings = spec.run_settings()
    critic, generator, latent_dim = build_models(spec.dataset, spec.method, settings["model"], sample_shape)
    gan = WGAN(
        critic, generator, latent_dim, lipschitz=spec.method, n_critic=spec.n_critic, gp_weight=spec.gp_weight,
        clip_value=spec.clip_value, track_layer_stats=True, seed=seed,
    )
    if spec.method == "clip":  # clip the initial weights too, as Arjovsky et al. do before training
        for variable in critic.trainable_variables:
            variable.assign(keras.ops.clip(variable, -spec.clip_value, spec.clip_value))
    gan.compile(critic_optimizer=make_optimizer(settings["optimizer"]),
                generator_optimizer=make_optimizer(settings["optimizer"]), jit_compile=jit_compile)
    return gan, latent_dim


def _copy_training_state(source, target) -> None:
    """Every variable of a WGAN's training state from ``source`` into ``target``, a WGAN built the same way.

    The models' weights and non-trainable state (spectral-normalization
    vectors), the WGAN's noise generator and both optimizers' slots and step
    counters, matched by position and checked by shape.
    """
    groups = (
        ("model", source.variables, target.variables),
        ("critic optimizer", source.critic_optimizer.variables, target.critic_optimizer.variables),
        ("generator optimizer", source.generator_optimizer.variables, target.generator_optimizer.variables),
    )
    for what, src, dst in groups:
        shapes = [tuple(v.shape) for v in src], [tuple(v.shape) for v in dst]
        if shapes[0] != shapes[1]:
            raise RuntimeError(f"train: the {what} state of two WGANs built alike differs: {shapes[0]} vs {shapes[1]}.")
        for a, b in zip(src, dst):
            b.assign(a)


def _resume(store, gan, recorder, strategy) -> int:
    """Load the newest valid checkpoint into ``gan`` and ``recorder``; return its epoch (0: fresh).

    In a multi-worker run every worker must resume from the same checkpoint;
    the workers compare (epoch, checksum of the weights file) *before* loading,
    because a load on one worker only would desynchronize the collective ops
    that follow instead of failing with a clear error.
    """
    latest = store.latest()
    tag = [0.0, 0.0] if latest is None else [latest[0], int(checkpoints.sha256(latest[1])[:12], 16)]
    distribution.check_same_state(strategy, [np.array(tag, dtype=np.float64)], what="model and optimizer")
    if latest is None:
        return 0
    epoch, weights, state = latest
    gan.load_weights(weights)
    recorder.restore(state, epoch)
    return epoch


def _timing(epoch_seconds, steps, wall) -> dict:
    """Wall-clock fields of ``run.json`` (they differ between runs; everything else does not)."""
    timed = epoch_seconds[1:] or epoch_seconds  # the first epoch includes tracing
    return {
        "seconds_per_iteration": float(np.median(timed)) / steps if timed else float("nan"),
        "wall_seconds_this_process": wall,
    }


def _write_outputs(out_dir, recorder, gan, info) -> None:
    io.write_csv(os.path.join(out_dir, "history.csv"), pd.DataFrame(recorder.history))
    io.write_csv(os.path.join(out_dir, "layers.csv"), pd.DataFrame(recorder.layers))
    io.write_csv(os.path.join(out_dir, "gap.csv"), pd.DataFrame(recorder.gap))
    if recorder.quality_samples:
        io.write_csv(os.path.join(out_dir, "quality.csv"), pd.DataFrame(recorder.quality))
    for name, net in (("critic", gan.critic), ("generator", gan.generator)):
        with io.atomic_path(os.path.join(out_dir, f"{name}.keras")) as tmp:
            net.save(tmp)
    io.write_json(os.path.join(out_dir, "run.json"), info)


# --------------------------------------------------------------------------- evaluate
def evaluate(run_dir, out_dir, classifier_path=None, n_samples: int = 1000, grid: int = 80, threads=None) -> dict:
    """Final metrics of a trained run; writes ``metrics.json`` and ``samples.npz``.

    Toy sets: exact W1 between ``n_samples`` generated and held-out points,
    with the real-vs-real floor (training points as the reference sample),
    VEEGAN high-quality fraction and modes covered (Gaussian mixtures), and
    the critic on a ``grid x grid`` lattice for the contour plots. Digits:
    classifier Frechet distance and class coverage against the held-out
    split (floor: training images), and 64 samples for a grid. Both: the
    critic's train vs held-out Wasserstein gap, and the run's time per
    iteration.
    """
    with timing.phase("evaluation"):
        return _evaluate(run_dir, out_dir, classifier_path, n_samples, grid, threads)


def _evaluate(run_dir, out_dir, classifier_path, n_samples, grid, threads) -> dict:
    runtime.configure(threads)
    import keras

    from keras_sngan import datasets, metrics

    with open(os.path.join(run_dir, "run.json")) as handle:
        info = json.load(handle)
    dataset, seed = info["dataset"], int(info["seed"])
    critic = keras.saving.load_model(os.path.join(run_dir, "critic.keras"), compile=False)
    generator = keras.saving.load_model(os.path.join(run_dir, "generator.keras"), compile=False)
    latent_dim = int(info["latent_dim"])
    train_real, heldout = training_arrays(dataset, seed, info.get("train_size"))
    rng = np.random.default_rng(seed + 12345)
    if is_image_dataset(dataset):  # the classifier statistics need as many fakes as held-out images
        n_samples = max(n_samples, min(len(heldout), 10_000))
    z = rng.standard_normal((n_samples, latent_dim)).astype("float32")
    fake = np.asarray(generator.predict(z, batch_size=500, verbose=0), np.float32)
    result = {k: info[k] for k in ("dataset", "method", "seed", "iterations", "seconds_per_iteration")}
    samples = {}
    if is_image_dataset(dataset):
        if classifier_path is None:
            raise ValueError(f"evaluate: `classifier_path` is required for image dataset {dataset!r}.")
        classifier = _classifier(dataset, classifier_path)
        n = min(len(heldout), 10_000)
        heldout = heldout[:n]
        reference = train_real[rng.choice(len(train_real), n, replace=False)]
        result.update(metrics.classifier_metrics(classifier, fake[:n], heldout, real_reference=reference))
        samples["images"] = fake[:64]
    else:
        n = min(n_samples, len(heldout))
        reference = train_real[rng.choice(len(train_real), n, replace=False)]
        result.update({f"w1_{k}" if k != "n" else "w1_n": v for k, v in metrics.wasserstein1_with_floor(fake[:n], heldout[:n], reference).items()})
        if dataset in GAUSSIAN_MIXTURES:
            centers, std = datasets.gaussian_mixture_modes(dataset)
            modes = metrics.mode_statistics(fake, centers, std)
            result.update(high_quality_fraction=modes["high_quality_fraction"], modes_covered=modes["modes_covered"], num_modes=modes["num_modes"])
        lo, hi = heldout.min(0) - 0.5, heldout.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
        lattice = np.stack([gx.ravel(), gy.ravel()], 1).astype("float32")
        samples.update(
            fake=fake, real=heldout[:n], grid_x=gx, grid_y=gy,
            critic=np.asarray(critic.predict(lattice, batch_size=2000, verbose=0)).reshape(grid, grid),
        )
    gap = metrics.critic_generalization_gap(critic, generator, train_real, heldout, latent_dim, n=min(1000, len(heldout)), seed=seed)
    result.update(critic_w_train=gap["w_train"], critic_w_heldout=gap["w_heldout"], critic_gap=gap["gap"])
    os.makedirs(out_dir, exist_ok=True)
    with io.atomic_path(os.path.join(out_dir, "samples.npz")) as tmp:
        np.savez_compressed(tmp, **samples)
    io.write_json(os.path.join(out_dir, "metrics.json"), result)
    return result


def _labelled_split(dataset: str):
    from keras_sngan import datasets

    if dataset == "digits":
        return datasets.load_digits_split()
    x_train, y_train = datasets.load_arrays(dataset, "train")
    x_test, y_test = datasets.load_arrays(dataset, "test")
    if y_train is None:
        raise ValueError(f"evaluate: dataset {dataset!r} has no labels; the classifier metrics need them.")
    return x_train, y_train, x_test, y_test


def _classifier(dataset: str, path):
    from keras_sngan.poster.running.feature_classifier import load_or_train_feature_classifier

    return load_or_train_feature_classifier(path, *_labelled_split(dataset))


def train_classifier(path, dataset: str = "digits", threads=None) -> dict:
    """Train (or load) the cached feature classifier of an image dataset at ``path``."""
    runtime.configure(threads, 0)
    return {"dataset": dataset, "test_accuracy": _classifier(dataset, path).test_accuracy}
