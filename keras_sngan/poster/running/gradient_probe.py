"""One gradient-norm probe for every critic: the same points, the same mode, no epsilon floor.

Claim 1 ("clipping leaves the critic with small gradients") compares the
input-gradient norm ``||grad_x f(x_hat)||`` of critics trained with weight
clipping, a gradient penalty and spectral normalization. The norms each
method logs during training are not comparable (GP's is averaged over its
critic steps in training mode before each update; the others are measured
elsewhere). :class:`GradientProbe` measures all of them alike:

- **points**: interpolates ``x_hat = a * x + (1 - a) * G(z)`` of one fixed
  real batch ``x``, fixed latents ``z`` and fixed mixing weights ``a``, drawn
  once from NumPy with the probe's own seed. The fakes ``G(z)`` come from the
  *current* generator, so the probe looks where the critic is trained
  (between the real data and the current fakes), at the same points for every
  method and every recorded iteration;
- **mode**: inference (``training=False``): spectral-normalization layers use
  their stored ``u`` and do not advance it;
- **norm**: ``sqrt(sum of squares)`` per sample, averaged over the batch; an
  exactly zero gradient gives exactly 0 (no ``+ eps`` under the root).

The probe is a pure function of the current weights: it draws no random
numbers from the backend or Keras and assigns no variable, so recording it
changes nothing in training and a run interrupted and resumed stays
bit-identical to an uninterrupted one. The recorder of
:mod:`keras_sngan.poster.running.training` calls it after each generator update
(and once on the initialized models, iteration 0).

It runs on every Keras backend: compiled with `tf.function` on TensorFlow,
with `jax.jit` over the models' ``stateless_call`` on JAX, eagerly through
`keras_sngan.wgan.autodiff` elsewhere.
"""

from __future__ import annotations

import weakref

import numpy as np

PROBE_STREAM = 7_919  # the probe's NumPy stream, separate from every other seeded draw


def input_gradient_norms(critic, x):
    """Per-sample ``||grad_x f(x)||_2`` of ``critic`` at ``x`` in inference mode (NumPy array, no floor).

    Args:
        critic: a Keras model mapping ``(n, ...)`` to ``(n,)`` or ``(n, 1)`` scores.
        x: points ``(n, ...)``.

    Example:
        >>> import keras, numpy as np
        >>> critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
        >>> float(input_gradient_norms(critic, np.zeros((1, 2), "float32"))[0])  # ||(1, 1)|| = sqrt(2)
        1.4142135...
    """
    grads = _input_gradients_eager(critic, np.asarray(x, np.float32))
    return _norms(grads)


def _norms(grads) -> np.ndarray:
    """Per-sample Euclidean norms in float64 (zeros for a ``None`` gradient: the critic ignores its input)."""
    if grads is None:
        return np.zeros(0)
    import keras

    grads = np.asarray(keras.ops.convert_to_numpy(grads), np.float64)
    return np.sqrt(np.sum(np.square(grads), axis=tuple(range(1, grads.ndim))))


def _input_gradients_eager(critic, x):
    """``d sum(critic(x)) / d x`` in inference mode, on the current backend, no compilation."""
    import keras

    from keras_sngan.wgan import autodiff

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(tf.cast(critic(x, training=False), tf.float32))
        grads = tape.gradient(total, x)
        return np.zeros_like(x.numpy()) if grads is None else grads
    total = lambda x_: keras.ops.sum(keras.ops.cast(critic(x_, training=False), "float32"))  # noqa: E731
    with keras.StatelessScope():  # assignments (none in inference mode) are dropped
        return autodiff.input_gradient(total, keras.ops.convert_to_tensor(x), lambda: critic.variables)


class GradientProbe:
    """Mean input-gradient norm of a critic at fixed interpolates (see module docstring).

    Args:
        real: the fixed real batch ``(n, ...)``.
        latent_dim: the generator's latent size.
        seed: seed of the probe's latents and mixing weights (NumPy only).

    Example:
        >>> from keras_sngan import datasets, models
        >>> x_real = datasets.sample_toy("8gaussians", 64, seed=0)
        >>> probe = GradientProbe(x_real, latent_dim=2, seed=0)
        >>> norm = probe(models.toy_critic(width=16), models.toy_generator(width=16))
        >>> norm > 0.0
        True
    """

    def __init__(self, real, latent_dim: int, seed: int = 0):
        real = np.asarray(real, np.float32)
        if real.ndim < 2 or len(real) == 0:
            raise ValueError(f"GradientProbe: `real` must be a non-empty batch (n, ...), received shape {real.shape}.")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
            raise ValueError(f"GradientProbe: `latent_dim` must be an integer >= 1, received {latent_dim!r}.")
        rng = np.random.default_rng([int(seed), PROBE_STREAM])
        self.real = real
        self.z = rng.standard_normal((len(real), int(latent_dim))).astype(np.float32)
        self.alpha = rng.uniform(size=(len(real),) + (1,) * (real.ndim - 1)).astype(np.float32)

    def points(self, generator) -> np.ndarray:
        """The interpolates between the fixed real batch and the current generator's fixed-latent fakes."""
        import keras

        fake = np.asarray(keras.ops.convert_to_numpy(generator(self.z, training=False)), np.float32)
        fake = fake.reshape(self.real.shape)
        return self.alpha * self.real + (1.0 - self.alpha) * fake

    def __call__(self, critic, generator) -> float:
        """Mean over the batch of ``||grad_x f(x_hat)||`` at the current weights.

        The generator's forward pass, the interpolation and the critic's input
        gradient run as one compiled function (TensorFlow, JAX), traced once
        per (critic, generator) pair: called after every generator update, the
        eager version cost about a third of a toy run's training time. The
        per-sample norms are then taken in float64 exactly as
        :func:`input_gradient_norms` does.
        """
        grads = _compiled_input_gradients(critic, generator)(self.real, self.z, self.alpha)
        norms = _norms(grads)
        return float(np.mean(norms)) if len(norms) else 0.0


_COMPILED = weakref.WeakKeyDictionary()  # critic -> {generator -> compiled probe}


def _compiled_input_gradients(critic, generator):
    """The probe's compiled function for one (critic, generator) pair, traced once and shared by every probe."""
    import keras

    by_generator = _COMPILED.setdefault(critic, weakref.WeakKeyDictionary())
    if generator not in by_generator:
        backend = keras.backend.backend()
        make = {"tensorflow": _tensorflow_input_gradients, "jax": _jax_input_gradients}.get(backend, _eager_input_gradients)
        by_generator[generator] = make(critic, generator)
    return by_generator[generator]


def _tensorflow_input_gradients(critic, generator):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def input_gradients(real, z, alpha):
        fake = tf.reshape(tf.cast(generator(z, training=False), tf.float32), tf.shape(real))
        x = alpha * real + (1.0 - alpha) * fake
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(tf.cast(critic(x, training=False), tf.float32))
        grads = tape.gradient(total, x)
        return tf.zeros_like(x) if grads is None else grads

    return input_gradients


def _jax_input_gradients(critic, generator):
    import jax
    import jax.numpy as jnp

    def pure(critic_values, generator_values, real, z, alpha):
        fake, _ = generator.stateless_call(*generator_values, z, training=False)
        x = alpha * real + (1.0 - alpha) * jnp.reshape(fake.astype(jnp.float32), real.shape)

        def total(x_):
            scores, _ = critic.stateless_call(*critic_values, x_, training=False)
            return jnp.sum(scores.astype(jnp.float32))

        return jax.grad(total)(x)

    compiled = jax.jit(pure)

    def input_gradients(real, z, alpha):
        values = [([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables])
                  for m in (critic, generator)]
        return compiled(values[0], values[1], real, z, alpha)

    return input_gradients


def _eager_input_gradients(critic, generator):
    import keras

    def input_gradients(real, z, alpha):
        fake = keras.ops.convert_to_numpy(generator(z, training=False)).astype(np.float32).reshape(real.shape)
        return _input_gradients_eager(critic, alpha * real + (1.0 - alpha) * fake)

    return input_gradients
