"""The `WGAN` model: construction, compile, ``train_step``, ``fit`` and persistence."""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.callbacks import TerminateOnNonFinite
from keras_sngan.wgan import (
    autodiff,
    construction,
    critic_step,
    distribution,
    generator_step,
    layer_stats,
)

#: The per-step values every WGAN step logs (also under mixed precision they
#: are finite on a healthy run; `TerminateOnNonFinite` watches these).
LOSS_METRICS = ("critic_loss", "wasserstein", "generator_loss", "gradient_penalty", "grad_norm")


@keras.saving.register_keras_serializable(package="keras_sngan")
class WGAN(keras.Model):
    """Wasserstein GAN with a choice of Lipschitz constraint for the critic.

    ``fit`` runs ``n_critic`` critic updates and one generator update per
    dataset element (see `keras_sngan.wgan` for the data contract). The
    critic minimizes ``mean f(fake) - mean f(real)`` (+ the penalty for
    ``"gp"``), the generator minimizes ``-mean f(fake)``; each objective also
    includes its own model's ``losses`` (kernel, bias and activity
    regularizers). Scores and losses are computed in float32 also under mixed
    precision.

    Modes (``training=`` of each call):

    - critic update: generator ``True``; critic ``True`` on real and fake in
      one batch (and, for ``"gp"``, at the interpolates);
    - generator update: generator ``True``; critic ``True`` inside a
      `keras.StatelessScope`, so its state updates (BatchNormalization
      statistics, SN vectors, dropout seeds) are dropped;
    - the logged ``grad_norm`` of clip/sn/none (a measurement, not part of
      the loss): critic ``False``;
    - `critic_diagnostics`: both ``False``; `generate`: generator ``False``.

    So the generator always follows the function the critic learned in.

    Metrics logged every step are the values **of that step** (not running
    means over the epoch; critic metrics are means over the step's
    ``n_critic`` critic iterations, averaged across replicas):

    - ``critic_loss``: the critic's objective, penalty and regularizers included;
    - ``wasserstein``: ``mean f(real) - mean f(fake)``;
    - ``generator_loss``: the generator's objective ``-mean f(fake)`` (+ its
      regularizers);
    - ``gradient_penalty``: ``mean (||grad_x f(x_hat)|| - 1)^2`` (unweighted);
    - ``grad_norm``: mean ``||grad_x f(x_hat)||`` at interpolates
      ``x_hat = a x_real + (1 - a) x_fake``, ``a ~ U[0, 1]`` per sample.
      For ``"gp"`` both are computed at every critic iteration (they are part
      of the loss); for the other methods they are measured once per step,
      after the last critic update, and are not added to the loss.

    `keras.callbacks.History` therefore holds the last step of each epoch.
    With ``steps_per_execution=k`` callbacks see every k-th step's values.

    With ``track_layer_stats=True`` the step also logs
    ``layer_grad_norm/<layer>``: the norm of the critic objective's gradient
    with respect to each linear layer's kernel at the last critic iteration of
    the step, unscaled with the loss scale that iteration used under
    ``mixed_float16`` (not finite on a step the loss-scale optimizer skipped
    because the scaled gradients overflowed). Spectral norms of the layers
    come from `keras_sngan.callbacks.LayerDiagnostics`.

    A `TerminateOnNonFinite` callback is added to ``fit`` unless one is
    passed: a NaN or infinite value of a metric in `LOSS_METRICS` stops
    training with an error naming the metric. Skipped loss-scale overflow
    steps are not fatal.

    Args:
        critic: `keras.Model` mapping a batch of samples to one score per
            sample, shape ``(batch, 1)`` or ``(batch,)``.
        generator: `keras.Model` mapping ``(batch, latent_dim)`` noise to samples
            of the critic's input shape.
        latent_dim: size of the generator's noise vector.
        lipschitz: ``"clip"`` (clamp every critic weight to
            ``[-clip_value, clip_value]`` after each critic update), ``"gp"``
            (two-sided gradient penalty; the critic must not contain
            BatchNormalization), ``"sn"`` (the critic must contain
            `SpectralNormalization` layers) or ``"none"``.
        n_critic: critic updates per generator update (>= 1).
        gp_weight: penalty weight ``lambda`` for ``"gp"`` (>= 0).
        clip_value: clipping bound ``c`` for ``"clip"`` (> 0).
        track_layer_stats: log per-layer weight-gradient norms (costs a little
            per step; off by default).
        seed: seed of the noise `keras.random.SeedGenerator`; ``None`` draws
            one from the global seed (`keras.utils.set_random_seed`).

    Example:
        >>> from keras_sngan import models
        >>> gan = WGAN(critic=models.toy_critic(lipschitz="gp"),
        ...            generator=models.toy_generator(), latent_dim=2,
        ...            lipschitz="gp", n_critic=5)
        >>> gan.compile(critic_optimizer=keras.optimizers.Adam(1e-4, 0.5, 0.9),
        ...             generator_optimizer=keras.optimizers.Adam(1e-4, 0.5, 0.9))
        >>> # dataset elements hold n_critic * batch_size samples:
        >>> # history = gan.fit(ds.batch(5 * 256, drop_remainder=True), epochs=10)

    Reference:
        Arjovsky, Chintala, Bottou. "Wasserstein GAN", ICML 2017.
        Gulrajani et al. "Improved Training of Wasserstein GANs", NeurIPS 2017.
        Miyato et al. "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018.
    """

    #: Names `TerminateOnNonFinite` watches by default.
    loss_metric_names = LOSS_METRICS

    def __init__(
        self,
        critic,
        generator,
        latent_dim,
        lipschitz="sn",
        n_critic=5,
        gp_weight=10.0,
        clip_value=0.01,
        track_layer_stats=False,
        seed=None,
        **kwargs,
    ):
        construction.check_backend()
        super().__init__(**kwargs)
        self.latent_dim, self.n_critic, self.gp_weight, self.clip_value = (
            construction.check_arguments(
                lipschitz, critic, generator, latent_dim, n_critic, gp_weight, clip_value
            )
        )
        self.lipschitz = lipschitz
        self.track_layer_stats = bool(track_layer_stats)
        self.seed = seed
        self.critic = critic
        self.generator = generator
        construction.check_models(critic, generator, self.latent_dim)
        construction.check_critic_for_method(critic, lipschitz)
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self._tracked_layers = (
            layer_stats.tracked_layers(critic) if self.track_layer_stats else []
        )
        self.critic_optimizer = None
        self.generator_optimizer = None
        self.built = True

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        critic_optimizer=None,
        generator_optimizer=None,
        auto_scale_loss=True,
        **kwargs,
    ):
        """Configure the two optimizers; other kwargs go to `keras.Model.compile`.

        Args:
            critic_optimizer: optimizer (instance, name or config) for the
                critic. Default: ``RMSprop(5e-5)`` for ``"clip"`` (Arjovsky
                et al.), otherwise ``Adam(1e-4, beta_1=0.5, beta_2=0.9)``.
            generator_optimizer: optimizer for the generator, same default.
            auto_scale_loss: wrap an optimizer in
                `keras.optimizers.LossScaleOptimizer` when the model it trains
                uses the ``"mixed_float16"`` dtype policy.
            **kwargs: ``jit_compile``, ``run_eagerly``, ``steps_per_execution``.
                ``loss``/``metrics`` are not supported (the losses are fixed).
        """
        kwargs = construction.check_compile_kwargs(kwargs, self.lipschitz)
        self.critic_optimizer = construction.make_optimizer(
            "critic_optimizer", critic_optimizer, self.critic, self.lipschitz, auto_scale_loss
        )
        self.generator_optimizer = construction.make_optimizer(
            "generator_optimizer", generator_optimizer, self.generator, self.lipschitz,
            auto_scale_loss,
        )
        super().compile(optimizer=None, auto_scale_loss=False, **kwargs)
        # Build optimizer state now: tf.distribute and checkpoint restores need it.
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)
        if keras.backend.backend() == "jax":
            # The JAX trainer carries `self.optimizer.variables` through its
            # state (and writes them back after fit): both optimizers' states.
            self.optimizer = OptimizerPair(self.critic_optimizer, self.generator_optimizer)
        self._wgan_compile_config = {"auto_scale_loss": auto_scale_loss}

    def state_variables(self):
        """Every variable a step reads or assigns: both models', the noise seed, both optimizers'."""
        variables = list(self.variables)
        for optimizer in (self.critic_optimizer, self.generator_optimizer):
            if optimizer is not None:
                variables += list(optimizer.variables)
        return variables

    def get_compile_config(self):
        if self.critic_optimizer is None:
            return None
        return {
            "critic_optimizer": keras.saving.serialize_keras_object(self.critic_optimizer),
            "generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
            **self._wgan_compile_config,
        }

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    # -------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """Generate samples from noise of shape ``(batch, latent_dim)``."""
        return self.generator(inputs, training=training)

    def generate(self, num_samples):
        """Draw ``num_samples`` samples (inference mode) with fresh noise."""
        noise = keras.random.normal((num_samples, self.latent_dim), seed=self.seed_generator)
        return self.generator(noise, training=False)

    def critic_diagnostics(self, real):
        """The critic's objective and per-layer weight-gradient norms, without an update.

        On one batch of real samples (and fresh noise and interpolates from
        the model's seed generator), computes the objective a critic
        iteration of `train_step` minimizes (``-W``, plus ``gp_weight`` times
        the penalty for ``"gp"``, plus the critic's regularization losses) at
        the current weights, in inference mode (SN vectors are not advanced).
        Useful for the state before training (iteration 0).

        Returns:
            ``(metrics, {layer_name: weight-gradient norm})`` where metrics has
            ``critic_loss, wasserstein, generator_loss, gradient_penalty, grad_norm``.
        """
        real = ops.convert_to_tensor(real, "float32")
        replica = (0, 1)
        noise = generator_step.draw_noise(self, int(real.shape[0]), replica)
        fake = ops.cast(self.generator(noise, training=False), "float32")
        layers = layer_stats.tracked_layers(self.critic)
        variables = self.critic.trainable_variables

        def loss():
            values = critic_step.diagnostics(self, real, fake, replica, training=False)
            return values["loss"], values

        _, values, grads = autodiff.value_and_grad(loss, variables, self.state_variables)
        values = autodiff.detach(values)  # plain numbers: no autograd graph (PyTorch) behind them
        metrics = {
            "critic_loss": float(values["loss"]),
            "wasserstein": float(values["wasserstein"]),
            "generator_loss": float(-values["fake_mean"]),
            "gradient_penalty": float(values["gradient_penalty"]),
            "grad_norm": float(values["grad_norm"]),
        }
        per_layer = {
            name: float(ops.sqrt(ops.sum(ops.square(grads[index]))))
            if grads[index] is not None
            else float("nan")
            for name, index in layers
        }
        return metrics, per_layer

    # ------------------------------------------------------------ train step
    def train_step(self, *args):
        """One WGAN iteration: ``n_critic`` critic updates, then one generator update.

        Keras calls it with ``(data)`` on TensorFlow and PyTorch and with
        ``(state, data)`` on JAX, whose trainer is stateless (see
        :meth:`stateless_train_step`).
        """
        if self.critic_optimizer is None:
            raise RuntimeError("WGAN: call `compile()` before `fit()`.")
        if keras.backend.backend() == "jax":
            return self.stateless_train_step(*args)
        (data,) = args
        logs = self._step(data)
        if keras.backend.backend() == "tensorflow":
            from keras_sngan.distribute import step_outputs_for_fit

            # Keras 3 cannot reduce scalar step outputs under MultiWorkerMirroredStrategy.
            return step_outputs_for_fit(logs)
        return autodiff.detach(logs)

    def stateless_train_step(self, state, data):
        """The JAX trainer's step: ``(state, data) -> (logs, new state)``, a pure function.

        ``state`` is the trainer's ``(trainable, non_trainable, optimizer,
        metrics)`` values, where "optimizer" holds both optimizers' variables
        (`OptimizerPair`). The step runs inside one `keras.StatelessScope`
        that maps every variable to its value in ``state``; what the step
        assigns (weights, optimizer slots, BatchNormalization statistics, SN
        vectors, noise and dropout seeds) is read back from the scope into the
        new state, and nothing is written to the variables themselves. Keras
        jit-compiles it (XLA) unless ``jit_compile=False``.
        """
        groups = (
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        )
        mapping = [(v, value) for variables, values in zip(groups, state) for v, value in zip(variables, values)]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            logs = self._step(data)
        new_state = tuple(
            [scope.get_current_value(v) for v in variables] for variables in groups
        )
        return logs, new_state

    def _step(self, data):
        replica = distribution.replica_info()
        num_replicas = replica[1]
        real_batches = critic_step.split_real(data, self.n_critic)
        local_batch = ops.shape(real_batches[0])[0]
        sums = {name: 0.0 for name in ("loss", "wasserstein", "gradient_penalty", "grad_norm")}
        for real in real_batches:
            values, critic_grads, scale = critic_step.critic_iteration(self, real, replica)
            for name in sums:
                if name in values:
                    sums[name] = sums[name] + values[name]
        n = float(self.n_critic)
        step = {"critic_loss": sums["loss"] / n, "wasserstein": sums["wasserstein"] / n}
        if self.lipschitz == "gp":
            penalty, grad_norm = sums["gradient_penalty"] / n, sums["grad_norm"] / n
        else:  # measured after the last critic update, not part of the loss
            x_hat = critic_step.interpolates(self.seed_generator, real, values["fake"], replica)
            norms = critic_step.input_gradient_norm(self, x_hat, training=False)
            penalty, grad_norm = ops.mean(ops.square(norms - 1.0)), ops.mean(norms)
        per_layer = layer_stats.layer_gradient_norms(
            self._tracked_layers, critic_grads, scale, num_replicas
        )
        step["generator_loss"] = generator_step.generator_iteration(self, local_batch, replica)
        step["gradient_penalty"], step["grad_norm"] = penalty, grad_norm
        logs = distribution.replica_mean({name: step[name] for name in LOSS_METRICS}, num_replicas)
        return {**logs, **per_layer}

    _NO_VALIDATION = (
        "WGAN has no validation step: the critic's Wasserstein estimate on held-out data "
        "is computed by keras_sngan.metrics.critic_generalization_gap, not by "
        "fit(validation_data=...) or evaluate()."
    )

    def test_step(self, data):
        raise ValueError(self._NO_VALIDATION)

    # -------------------------------------------------------------- fit
    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, plus a default `TerminateOnNonFinite` callback.

        Arrays: ``batch_size`` (Keras' default 32) must be a multiple of
        ``n_critic`` (checked before the first step); each batch is split into
        ``n_critic`` critic batches. The last, partial batch is split the same
        way into equal parts, and the fewer than ``n_critic`` samples that do
        not divide are dropped (so 1024 samples at ``batch_size=320`` and
        ``n_critic=5`` train on 320, 320, 320 and 60 samples). Datasets and
        generators whose element size is known only at run time are handled
        the same way.

        For a ``tf.data.Dataset`` or a generator (which Keras never
        shuffles) ``shuffle`` defaults to ``False``, so Keras does not warn
        that it ignores it.
        """
        if kwargs.get("validation_data") is not None or kwargs.get("validation_split"):
            raise ValueError(self._NO_VALIDATION)
        data = args[0] if args else kwargs.get("x")
        if _is_array(data):
            args, kwargs = self._arrays_without_a_tiny_last_batch(data, args, kwargs)
        elif len(args) < 9:  # shuffle is fit's 9th parameter
            kwargs.setdefault("shuffle", False)
        callbacks = list(callbacks or [])
        if not any(isinstance(c, TerminateOnNonFinite) for c in callbacks):
            callbacks.append(TerminateOnNonFinite())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _arrays_without_a_tiny_last_batch(self, data, args, kwargs):
        """Check ``batch_size`` for array input before any step; drop a last batch too small to split.

        Keras batches arrays into ``batch_size`` samples and a last, partial
        batch. Every batch is split into ``n_critic`` critic batches (see
        ``critic_step.split_real``), so ``batch_size`` must be a multiple of
        ``n_critic``; the partial batch is split into ``n_critic`` equal
        parts, dropping the fewer than ``n_critic`` samples that do not
        divide, and a partial batch of fewer than ``n_critic`` samples is
        dropped here.
        """
        batch_size = args[2] if len(args) > 2 else kwargs.get("batch_size")  # fit(x, y, batch_size, ...)
        if batch_size is None:
            batch_size = 32  # Keras' default for arrays
        if not isinstance(batch_size, int) or batch_size < self.n_critic or batch_size % self.n_critic:
            raise ValueError(
                f"WGAN.fit: batch_size={batch_size!r} is not a multiple of n_critic={self.n_critic}. "
                "Each batch of arrays is split into n_critic critic batches: pass "
                f"batch_size = n_critic * (critic batch size), e.g. {self.n_critic * 64}."
            )
        count = int(data.shape[0])
        last = count % batch_size
        if 0 < last < self.n_critic:
            if count < batch_size:
                raise ValueError(
                    f"WGAN.fit: {count} samples are fewer than n_critic={self.n_critic}; "
                    "each critic batch needs at least one."
                )
            data = data[: count - last]
            args = (data, *args[1:]) if args else args
            if not args:
                kwargs["x"] = data
        return args, kwargs

    # -------------------------------------------------------- persistence
    def save_own_variables(self, store):
        # The noise SeedGenerator state is not a layer variable: save it too so
        # that checkpoints / load_weights resume the same noise stream.
        store["seed_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        if "seed_state" in store:
            self.seed_generator.state.assign(store["seed_state"])

    def get_config(self):
        return {
            "critic": keras.saving.serialize_keras_object(self.critic),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "latent_dim": self.latent_dim,
            "lipschitz": self.lipschitz,
            "n_critic": self.n_critic,
            "gp_weight": self.gp_weight,
            "clip_value": self.clip_value,
            "track_layer_stats": self.track_layer_stats,
            "seed": self.seed,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["critic"] = keras.saving.deserialize_keras_object(config["critic"])
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        return cls(**config)


def _is_array(data):
    """NumPy arrays and backend tensors (which Keras batches by ``batch_size``), not datasets or generators."""
    import numpy as np

    return isinstance(data, np.ndarray) or keras.ops.is_tensor(data)


class OptimizerPair:
    """Both optimizers of a `WGAN`, as the JAX trainer sees ``model.optimizer``.

    Keras' JAX trainer carries ``model.optimizer.variables`` through its
    stateless state and writes them back after ``fit``;
    `keras.optimizers.MultiOptimizer` would do the same but refuses a
    `keras.optimizers.LossScaleOptimizer` inside it (``mixed_float16``).
    The WGAN's step updates each optimizer itself
    (`keras_sngan.wgan.autodiff.apply_gradients`); this object only lists
    their variables, critic's first. It is not saved: the two optimizers are
    (as ``critic_optimizer`` and ``generator_optimizer``).
    """

    built = True

    def __init__(self, critic_optimizer, generator_optimizer):
        self.optimizers = (critic_optimizer, generator_optimizer)

    @property
    def variables(self):
        return [v for optimizer in self.optimizers for v in optimizer.variables]

    def build(self, variables):  # both optimizers are built in WGAN.compile
        return None
