"""A Wasserstein GAN as a `keras.Model`: weight clipping, gradient penalty or SN.

One ``train_step`` performs ``n_critic`` critic updates followed by one
generator update, so ``fit`` counts generator iterations.

Data contract: every element of the training dataset is one tensor (or an
``(x,)`` tuple) holding ``n_critic * batch_size`` real samples. The step splits
it into ``n_critic`` critic batches of ``batch_size`` samples each, so that
every critic iteration sees a fresh real batch (and fresh noise). The split is
strided: critic batch ``k`` holds samples ``k, k + n_critic, k + 2 n_critic,
...`` of the element. With shuffled data this is as good as a contiguous
split, and it makes a step on ``R`` replicas (each replica gets a contiguous
``1/R`` slice of the element) see exactly the same critic batches as a step
on one device. Batch the dataset with ``drop_remainder=True``; an element
whose size is not a multiple of ``n_critic`` raises an error that says so.

Noise and interpolation coefficients are drawn from the model's
`keras.random.SeedGenerator` for the *global* batch, and each replica takes its
slice, so a seeded run gives the same numbers on any number of replicas.
"""

from __future__ import annotations


import keras
import tensorflow as tf
from keras import ops

from keras_sngan.callbacks import TerminateOnNonFinite
from keras_sngan.distribute import step_outputs_for_fit
from keras_sngan.validation import check_int, check_number

LIPSCHITZ_METHODS = ("clip", "gp", "sn", "none")

_EPS = 1e-12


def find_spectral_normalization_layers(model):
    """Return every `SpectralNormalization` layer nested anywhere in `model`."""
    from keras_sngan.spectral_normalization import SpectralNormalization

    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, SpectralNormalization)
    ]


def kernel_layers(model):
    """List ``(name, layer, kernel_variable)`` for each linear layer of `model`.

    A `SpectralNormalization` wrapper is reported under its own name with the
    raw kernel of the layer it wraps; the wrapped layer is not listed again.
    Linear layers are those `SpectralNormalization` supports (Dense, Conv*,
    Conv*Transpose, DepthwiseConv*, Embedding).
    """
    from keras_sngan import linear_maps
    from keras_sngan.spectral_normalization import SpectralNormalization

    found, wrapped = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, SpectralNormalization):
            wrapped.add(id(layer.layer))
            found.append((layer.name, layer, linear_maps.kernel_variable(layer.layer)))
        elif id(layer) not in wrapped and linear_maps.layer_kind(layer) is not None:
            found.append((layer.name, layer, linear_maps.kernel_variable(layer)))
    return found


def _replica_info():
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: behave like a single device
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="keras_sngan")
class WGAN(keras.Model):
    """Wasserstein GAN with a choice of Lipschitz constraint for the critic.

    ``fit`` runs ``n_critic`` critic updates and one generator update per
    dataset element (see the module docstring for the data contract). The
    critic minimizes ``mean f(fake) - mean f(real)`` (+ the penalty for
    ``"gp"``), the generator minimizes ``-mean f(fake)``. Scores and losses are
    computed in float32 also under mixed precision.

    Metrics logged every step (critic metrics are means over the step's
    ``n_critic`` critic iterations):

    - ``critic_loss``: the critic's loss, penalty included;
    - ``wasserstein``: ``mean f(real) - mean f(fake)``;
    - ``generator_loss``: ``-mean f(fake)``;
    - ``gradient_penalty``: ``mean (||grad_x f(x_hat)|| - 1)^2`` (unweighted);
    - ``grad_norm``: mean ``||grad_x f(x_hat)||`` at interpolates
      ``x_hat = a x_real + (1 - a) x_fake``, ``a ~ U[0, 1]`` per sample.
      For ``"gp"`` both are computed at every critic iteration (they are part
      of the loss); for the other methods they are measured once per step,
      after the last critic update, and are not added to the loss.

    With ``track_layer_stats=True`` the step also logs
    ``layer_grad_norm/<layer>``: the norm of the critic loss gradient with
    respect to each linear layer's kernel at the last critic iteration of the
    step (the value of that step, not a running mean). Spectral
    norms of the layers come from `keras_sngan.callbacks.LayerDiagnostics`.

    A `TerminateOnNonFinite` callback is added to ``fit`` unless one is passed:
    a NaN or infinite loss stops training with an error naming the metric.

    Args:
        critic: `keras.Model` mapping a batch of samples to one score per
            sample, shape ``(batch, 1)`` or ``(batch,)``.
        generator: `keras.Model` mapping ``(batch, latent_dim)`` noise to samples
            of the critic's input shape.
        latent_dim: size of the generator's noise vector.
        lipschitz: ``"clip"`` (clamp every critic weight to
            ``[-clip_value, clip_value]`` after each critic update), ``"gp"``
            (two-sided gradient penalty), ``"sn"`` (the critic must contain
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
        super().__init__(**kwargs)
        if lipschitz not in LIPSCHITZ_METHODS:
            raise ValueError(
                f"WGAN: `lipschitz` must be one of {LIPSCHITZ_METHODS}, received {lipschitz!r}."
            )
        if not isinstance(critic, keras.Model):
            raise ValueError(f"WGAN: `critic` must be a keras.Model, received {critic!r}.")
        if not isinstance(generator, keras.Model):
            raise ValueError(
                f"WGAN: `generator` must be a keras.Model, received {generator!r}."
            )
        self.lipschitz = lipschitz
        self.latent_dim = check_int("latent_dim", latent_dim, 1, owner="WGAN")
        self.n_critic = check_int("n_critic", n_critic, 1, owner="WGAN")
        self.gp_weight = check_number("gp_weight", gp_weight, 0.0, strict=False, owner="WGAN")
        self.clip_value = check_number("clip_value", clip_value, 0.0, owner="WGAN")
        self.track_layer_stats = bool(track_layer_stats)
        self.seed = seed
        self.critic = critic
        self.generator = generator
        self._check_models()
        if lipschitz == "sn" and not find_spectral_normalization_layers(critic):
            raise ValueError(
                "WGAN: lipschitz='sn' needs a critic containing SpectralNormalization "
                f"layers, but critic {critic.name!r} has none. Wrap its linear layers "
                "(e.g. keras_sngan.models.toy_critic(lipschitz='sn')) or choose "
                f"lipschitz from {LIPSCHITZ_METHODS}."
            )
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self._layer_stats = []
        if self.track_layer_stats:
            index = {id(v): i for i, v in enumerate(critic.trainable_variables)}
            for name, _, kernel in kernel_layers(critic):
                if id(kernel) in index:
                    self._layer_stats.append(
                        (name, index[id(kernel)], keras.metrics.Mean(name=f"layer_grad_norm/{name}"))
                    )
        self.critic_loss_tracker = keras.metrics.Mean(name="critic_loss")
        self.wasserstein_tracker = keras.metrics.Mean(name="wasserstein")
        self.generator_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.gradient_penalty_tracker = keras.metrics.Mean(name="gradient_penalty")
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.critic_optimizer = None
        self.generator_optimizer = None
        self.built = True

    # ------------------------------------------------------------------ checks
    def _check_models(self):
        inputs = getattr(self.generator, "inputs", None)
        if inputs:
            got = inputs[0].shape[-1]
            if got is not None and got != self.latent_dim:
                raise ValueError(
                    f"WGAN: `latent_dim`={self.latent_dim} does not match the generator "
                    f"{self.generator.name!r}, whose input is {tuple(inputs[0].shape)}; "
                    f"pass latent_dim={got}."
                )
        try:
            fake = self.generator(ops.zeros((2, self.latent_dim)), training=False)
        except Exception as error:
            raise ValueError(
                f"WGAN: the generator {self.generator.name!r} cannot be called on noise of "
                f"shape (batch, latent_dim={self.latent_dim}): {error}"
            ) from None
        try:
            scores = self.critic(fake, training=False)
        except Exception as error:
            raise ValueError(
                f"WGAN: the critic {self.critic.name!r} cannot be called on generator "
                f"samples of shape {tuple(fake.shape)}: {error}"
            ) from None
        if tuple(scores.shape) not in ((2, 1), (2,)):
            raise ValueError(
                f"WGAN: the critic must output one score per sample, shape (batch, 1) or "
                f"(batch,), but critic {self.critic.name!r} returns shape "
                f"{tuple(scores.shape)[1:]} per batch (got {tuple(scores.shape)} for a "
                "batch of 2)."
            )

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
        for key in ("optimizer", "loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"WGAN.compile: `{key}` is not supported; pass `critic_optimizer` and "
                    f"`generator_optimizer` (the WGAN losses are fixed). Received {key}={kwargs[key]!r}."
                )
            kwargs.pop(key, None)
        self.critic_optimizer = self._make_optimizer(
            "critic_optimizer", critic_optimizer, self.critic, auto_scale_loss
        )
        self.generator_optimizer = self._make_optimizer(
            "generator_optimizer", generator_optimizer, self.generator, auto_scale_loss
        )
        super().compile(optimizer=None, auto_scale_loss=False, **kwargs)
        # Build optimizer state now: tf.distribute and BackupAndRestore need it.
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self._wgan_compile_config = {"auto_scale_loss": auto_scale_loss}

    def get_compile_config(self):
        if self.critic_optimizer is None:
            return None
        return {
            "critic_optimizer": keras.saving.serialize_keras_object(self.critic_optimizer),
            "generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
            **self._wgan_compile_config,
        }

    def _make_optimizer(self, name, optimizer, model, auto_scale_loss):
        if optimizer is None:
            if self.lipschitz == "clip":
                optimizer = keras.optimizers.RMSprop(5e-5)
            else:
                optimizer = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)
        try:
            optimizer = keras.optimizers.get(optimizer)
        except Exception:
            raise ValueError(
                f"WGAN.compile: `{name}` must be a keras optimizer, its name or its config, "
                f"received {optimizer!r}."
            ) from None
        if (
            auto_scale_loss
            and model.dtype_policy.name == "mixed_float16"
            and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

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

    def _scores(self, x, training):
        scores = ops.cast(self.critic(x, training=training), "float32")
        return ops.reshape(scores, (-1,))

    @property
    def metrics(self):
        trackers = [
            self.critic_loss_tracker,
            self.wasserstein_tracker,
            self.generator_loss_tracker,
            self.gradient_penalty_tracker,
            self.grad_norm_tracker,
        ]
        return trackers + [tracker for _, _, tracker in self._layer_stats]

    # ------------------------------------------------------------ train step
    def _split_real(self, data):
        if isinstance(data, (tuple, list)):
            if len(data) != 1 and not (len(data) in (2, 3) and all(d is None for d in data[1:])):
                raise ValueError(
                    "WGAN: each dataset element must be one tensor of n_critic * batch_size "
                    f"real samples or an (x,) tuple, received a structure of {len(data)} items."
                )
            data = data[0]
        x = ops.cast(data, "float32")
        size = x.shape[0]
        if size is not None and size % self.n_critic:
            raise ValueError(
                f"WGAN: a dataset element holds {size} samples, not a multiple of "
                f"n_critic={self.n_critic}. Each element must hold n_critic * batch_size "
                "samples (batch with drop_remainder=True)."
            )
        if size is None:
            tf.debugging.assert_equal(
                tf.shape(x)[0] % self.n_critic,
                0,
                message=(
                    f"WGAN: a dataset element size is not a multiple of n_critic={self.n_critic}; "
                    "each element must hold n_critic * batch_size samples "
                    "(batch with drop_remainder=True)."
                ),
            )
        feature_shape = tuple(x.shape[1:])
        # Strided split (see module docstring): batch k = samples k, k+n, k+2n, ...
        x = ops.reshape(x, (-1, self.n_critic) + feature_shape)
        return [x[:, k] for k in range(self.n_critic)]

    def _global_draw(self, fn, local_batch, replica_id, num_replicas):
        """Draw for the global batch and return this replica's slice."""
        values = fn(local_batch * num_replicas)
        if num_replicas == 1:
            return values
        start = replica_id * local_batch
        return values[start : start + local_batch]

    def _noise(self, local_batch, replica):
        return self._global_draw(
            lambda n: keras.random.normal((n, self.latent_dim), seed=self.seed_generator),
            local_batch,
            *replica,
        )

    def _interpolates(self, real, fake, replica):
        local_batch = ops.shape(real)[0]
        alpha = self._global_draw(
            lambda n: keras.random.uniform((n,), seed=self.seed_generator),
            local_batch,
            *replica,
        )
        alpha = ops.reshape(alpha, (-1,) + (1,) * (len(real.shape) - 1))
        return alpha * real + (1.0 - alpha) * fake

    def critic_diagnostics(self, real):
        """The critic's objective and per-layer weight-gradient norms, without an update.

        On one batch of real samples (and fresh noise and interpolates from
        the model's seed generator), computes the loss a critic iteration of
        `train_step` minimizes (``-W``, plus ``gp_weight`` times the penalty for
        ``"gp"``) at the current weights, in inference mode (SN vectors are
        not advanced). Useful for the state before training (iteration 0).

        Returns:
            ``(metrics, {layer_name: weight-gradient norm})`` where metrics has
            ``critic_loss, wasserstein, generator_loss, gradient_penalty, grad_norm``.
        """
        real = ops.convert_to_tensor(real, "float32")
        batch = int(real.shape[0])
        replica = (0, 1)
        noise = self._noise(batch, replica)
        fake = ops.cast(self.generator(noise, training=False), "float32")
        layers = kernel_layers(self.critic)
        kernels = [kernel for _, _, kernel in layers]
        x_hat = self._interpolates(real, fake, replica)
        with tf.GradientTape() as tape:
            scores = self._scores(ops.concatenate([real, fake], axis=0), training=False)
            wasserstein = ops.mean(scores[:batch]) - ops.mean(scores[batch:])
            norms = self._input_gradient_norm(x_hat, training=False)
            loss = -wasserstein
            if self.lipschitz == "gp":
                loss = loss + self.gp_weight * ops.mean(ops.square(norms - 1.0))
        grads = tape.gradient(loss, kernels)
        metrics = {
            "critic_loss": float(loss),
            "wasserstein": float(wasserstein),
            "generator_loss": float(-ops.mean(scores[batch:])),
            "gradient_penalty": float(ops.mean(ops.square(norms - 1.0))),
            "grad_norm": float(ops.mean(norms)),
        }
        per_layer = {
            name: float(ops.sqrt(ops.sum(ops.square(g)))) if g is not None else float("nan")
            for (name, _, _), g in zip(layers, grads)
        }
        return metrics, per_layer

    def _input_gradient_norm(self, x_hat, training):
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            total = ops.sum(self._scores(x_hat, training=training))
        grads = tape.gradient(total, x_hat)
        axes = tuple(range(1, len(grads.shape)))
        return ops.sqrt(ops.sum(ops.square(grads), axis=axes) + _EPS)

    def train_step(self, data):
        if self.critic_optimizer is None:
            raise RuntimeError("WGAN: call `compile()` before `fit()`.")
        replica = _replica_info()
        num_replicas = replica[1]
        critic_vars = self.critic.trainable_variables
        generator_vars = self.generator.trainable_variables
        real_batches = self._split_real(data)
        local_batch = ops.shape(real_batches[0])[0]
        sums = {"critic_loss": 0.0, "wasserstein": 0.0, "gradient_penalty": 0.0, "grad_norm": 0.0}
        critic_grads = None
        for real in real_batches:
            noise = self._noise(local_batch, replica)
            fake = ops.cast(self.generator(noise, training=True), "float32")
            with tf.GradientTape() as tape:
                scores = self._scores(ops.concatenate([real, fake], axis=0), training=True)
                real_scores, fake_scores = scores[:local_batch], scores[local_batch:]
                wasserstein = ops.mean(real_scores) - ops.mean(fake_scores)
                loss = -wasserstein
                if self.lipschitz == "gp":
                    norms = self._input_gradient_norm(
                        self._interpolates(real, fake, replica), training=True
                    )
                    penalty = ops.mean(ops.square(norms - 1.0))
                    loss = loss + self.gp_weight * penalty
                    sums["gradient_penalty"] += penalty
                    sums["grad_norm"] += ops.mean(norms)
                scaled = self.critic_optimizer.scale_loss(loss / num_replicas)
            critic_grads = tape.gradient(scaled, critic_vars)
            self.critic_optimizer.apply_gradients(zip(critic_grads, critic_vars))
            if self.lipschitz == "clip":
                for variable in critic_vars:
                    variable.assign(ops.clip(variable, -self.clip_value, self.clip_value))
            sums["critic_loss"] += loss
            sums["wasserstein"] += wasserstein
        n = float(self.n_critic)
        self.critic_loss_tracker.update_state(sums["critic_loss"] / n)
        self.wasserstein_tracker.update_state(sums["wasserstein"] / n)
        if self.lipschitz == "gp":
            self.gradient_penalty_tracker.update_state(sums["gradient_penalty"] / n)
            self.grad_norm_tracker.update_state(sums["grad_norm"] / n)
        else:
            norms = self._input_gradient_norm(
                self._interpolates(real, fake, replica), training=False
            )
            self.gradient_penalty_tracker.update_state(ops.mean(ops.square(norms - 1.0)))
            self.grad_norm_tracker.update_state(ops.mean(norms))
        for _, index, tracker in self._layer_stats:
            grad = critic_grads[index]
            if hasattr(self.critic_optimizer, "inner_optimizer"):  # undo loss scaling
                grad = grad / self.critic_optimizer.dynamic_scale
            # Per-iteration value (not a running mean): reset, then record.
            tracker.reset_state()
            tracker.update_state(ops.sqrt(ops.sum(ops.square(ops.cast(grad, "float32")))) * num_replicas)

        noise = self._noise(local_batch, replica)
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True)
            generator_loss = -ops.mean(self._scores(fake, training=False))
            scaled = self.generator_optimizer.scale_loss(generator_loss / num_replicas)
        grads = tape.gradient(scaled, generator_vars)
        self.generator_optimizer.apply_gradients(zip(grads, generator_vars))
        self.generator_loss_tracker.update_state(generator_loss)
        # multi-worker (issue 11): Keras 3 cannot reduce scalar step outputs under MWMS
        return step_outputs_for_fit({m.name: m.result() for m in self.metrics})

    _NO_VALIDATION = (
        "WGAN has no validation step: the critic's Wasserstein estimate on held-out data "
        "is computed by keras_sngan.metrics.critic_generalization_gap, not by "
        "fit(validation_data=...) or evaluate()."
    )

    def test_step(self, data):
        raise ValueError(self._NO_VALIDATION)

    # -------------------------------------------------------------- fit
    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, plus a default `TerminateOnNonFinite` callback."""
        if kwargs.get("validation_data") is not None or kwargs.get("validation_split"):
            raise ValueError(self._NO_VALIDATION)
        callbacks = list(callbacks or [])
        if not any(isinstance(c, TerminateOnNonFinite) for c in callbacks):
            callbacks.append(TerminateOnNonFinite())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # -------------------------------------------------------- persistence
    def save_own_variables(self, store):
        # The noise SeedGenerator state is not a layer variable: save it too so
        # that BackupAndRestore / load_weights resume the same noise stream.
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
