"""The critic's side of a WGAN step: scores, objective, gradient penalty, clipping.

One critic iteration draws fresh noise, computes the critic objective on one
real batch in **training mode**, applies one optimizer update and, for
``"clip"``, clamps every critic weight. The objective it minimizes is

    ``mean f(fake) - mean f(real)``  (``= -W``, the negated Wasserstein estimate)
    ``+ gp_weight * mean (||grad_x f(x_hat)|| - 1)^2``   (``"gp"`` only)
    ``+ sum(critic.losses)``          (the critic's own kernel/activity regularizers)

Scores and losses are computed in float32, also under mixed precision.
Gradients and updates go through `keras_sngan.wgan.autodiff`, so the same
code runs on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.wgan import autodiff, distribution

EPS = 1e-12


def split_real(data, n_critic):
    """Split one dataset element into ``n_critic`` real batches (strided, see the package doc).

    On TensorFlow an element whose size is known when the step is traced and
    is not a multiple of ``n_critic`` is refused; JAX and PyTorch know every
    batch's size, so there such an element (the last, partial batch) is cut
    to the largest multiple, as TensorFlow cuts one of run-time size.
    """
    if isinstance(data, (tuple, list)):
        if len(data) != 1 and not (len(data) in (2, 3) and all(d is None for d in data[1:])):
            raise ValueError(
                "WGAN: each dataset element must be one tensor of n_critic * batch_size "
                f"real samples or an (x,) tuple, received a structure of {len(data)} items."
            )
        data = data[0]
    x = ops.cast(data, "float32")
    size = x.shape[0]
    message = (
        f"WGAN: a dataset element holds {{size}} samples, not a multiple of "
        f"n_critic={n_critic}. Each element must hold n_critic * batch_size "
        "samples (batch with drop_remainder=True)."
    )
    too_few = (f"WGAN: a dataset element holds fewer samples than n_critic={n_critic}, "
               "too few for one sample per critic batch. Batch with drop_remainder=True.")
    if size is None:
        # A batch size known only at run time (TensorFlow graphs): the last,
        # partial batch of arrays, or of a dataset / generator batched without
        # drop_remainder. Split it into n_critic equal batches, dropping the
        # (fewer than n_critic) samples at its end that do not divide.
        import tensorflow as tf

        total = tf.shape(x)[0]
        check = tf.debugging.assert_greater_equal(total, n_critic, message=too_few)
        with tf.control_dependencies([check]):
            x = x[: total - total % n_critic]
    elif size % n_critic:
        if keras.backend.backend() == "tensorflow":
            raise ValueError(message.format(size=size))
        # JAX and PyTorch see every batch's size (JAX traces once per size):
        # a partial last batch is split as the TensorFlow graph splits it.
        if size < n_critic:
            raise ValueError(too_few)
        x = x[: size - size % n_critic]
    feature_shape = tuple(x.shape[1:])
    # Strided split: batch k = samples k, k + n, k + 2n, ...
    x = ops.reshape(x, (-1, n_critic) + feature_shape)
    return [x[:, k] for k in range(n_critic)]


def scores(critic, x, training):
    """The critic's scores as a float32 vector."""
    return ops.reshape(ops.cast(critic(x, training=training), "float32"), (-1,))


def regularization(model):
    """``sum(model.losses)`` in float32 (0 when the model has none).

    Read it right after the call whose activity regularizers should count:
    the next call of the model replaces them.
    """
    losses = model.losses
    if not losses:
        return ops.zeros((), "float32")
    return ops.sum(ops.stack([ops.cast(loss, "float32") for loss in losses]))


def input_gradient_norm(gan, x_hat, training):
    """``||grad_x f(x)||`` per sample at ``x_hat`` (differentiable, for the penalty)."""
    grads = autodiff.input_gradient(
        lambda x: ops.sum(scores(gan.critic, x, training=training)), x_hat, gan.state_variables
    )
    axes = tuple(range(1, len(grads.shape)))
    return ops.sqrt(ops.sum(ops.square(grads), axis=axes) + EPS)


def interpolates(seed_generator, real, fake, replica):
    """``a x_real + (1 - a) x_fake`` with ``a ~ U[0, 1]`` per sample (global-batch draw)."""
    local_batch = ops.shape(real)[0]
    alpha = distribution.global_draw(
        lambda n: keras.random.uniform((n,), seed=seed_generator), local_batch, *replica
    )
    alpha = ops.reshape(alpha, (-1,) + (1,) * (len(real.shape) - 1))
    return alpha * real + (1.0 - alpha) * fake


def objective(gan, real, fake, replica, training):
    """The critic objective and its parts on one real and one fake batch.

    Returns a dict with ``loss`` (what the critic minimizes), ``wasserstein``,
    ``fake_mean`` (``mean f(fake)``), and for ``"gp"`` ``gradient_penalty``
    and ``grad_norm`` (they are part of the loss).
    """
    batch = ops.shape(real)[0]
    both = scores(gan.critic, ops.concatenate([real, fake], axis=0), training=training)
    own_losses = regularization(gan.critic)  # before the penalty's call replaces them
    real_mean, fake_mean = ops.mean(both[:batch]), ops.mean(both[batch:])
    wasserstein = real_mean - fake_mean
    loss = -wasserstein + own_losses
    out = {"wasserstein": wasserstein, "fake_mean": fake_mean}
    if gan.lipschitz == "gp":
        norms = input_gradient_norm(
            gan, interpolates(gan.seed_generator, real, fake, replica), training=training
        )
        penalty = ops.mean(ops.square(norms - 1.0))
        loss = loss + gan.gp_weight * penalty
        out.update(gradient_penalty=penalty, grad_norm=ops.mean(norms))
    out["loss"] = loss
    return out


def loss_scale(optimizer):
    """The loss scale an optimizer applies *now* (``None`` without loss scaling).

    Read it before ``apply_gradients``: a `LossScaleOptimizer` changes its
    scale inside that call (halved after an overflow, doubled after a run of
    finite steps).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return autodiff.snapshot(optimizer.dynamic_scale)
    return None


def clip_weights(variables, clip_value):
    """Clamp every variable to ``[-clip_value, clip_value]`` (Arjovsky et al.)."""
    for variable in variables:
        variable.assign(ops.clip(variable, -clip_value, clip_value))


def draw_noise(gan, local_batch, replica):
    """``N(0, I)`` latents for this replica's slice of the global batch."""
    return distribution.global_draw(
        lambda n: keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator),
        local_batch,
        *replica,
    )


def critic_iteration(gan, real, replica):
    """One critic update on one real batch; returns ``(values, gradients, scale)``.

    ``gradients`` are this replica's gradients of the (loss-scaled) objective
    divided by the number of replicas, as handed to the optimizer; ``scale``
    is the loss scale they carry (``None`` without loss scaling).
    """
    critic_vars = gan.critic.trainable_variables
    local_batch = ops.shape(real)[0]
    noise = draw_noise(gan, local_batch, replica)
    # The fakes are inputs of the critic update, constants for its gradient.
    fake = ops.stop_gradient(ops.cast(gan.generator(noise, training=True), "float32"))

    def scaled_objective():
        values = objective(gan, real, fake, replica, training=True)
        scaled = gan.critic_optimizer.scale_loss(
            distribution.per_replica_loss(values["loss"], replica[1])
        )
        return scaled, values

    _, values, grads = autodiff.value_and_grad(scaled_objective, critic_vars, gan.state_variables)
    scale = loss_scale(gan.critic_optimizer)
    autodiff.apply_gradients(gan.critic_optimizer, grads, critic_vars)
    if gan.lipschitz == "clip":
        clip_weights(critic_vars, gan.clip_value)
    values["fake"] = fake
    return values, grads, scale


def diagnostics(gan, real, fake, replica, training):
    """Objective, penalty and input-gradient norm at the current weights, no update.

    For methods other than ``"gp"`` the penalty and norm are measured (not
    part of the loss) at fresh interpolates.
    """
    values = objective(gan, real, fake, replica, training)
    if "grad_norm" not in values:
        norms = input_gradient_norm(
            gan, interpolates(gan.seed_generator, real, fake, replica), training=training
        )
        values.update(gradient_penalty=ops.mean(ops.square(norms - 1.0)), grad_norm=ops.mean(norms))
    return values
