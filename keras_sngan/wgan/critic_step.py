"""The critic's side of a WGAN step: scores, objective, gradient penalty, clipping.

One critic iteration draws fresh noise, computes the critic objective on one
real batch in **training mode**, applies one optimizer update and, for
``"clip"``, clamps every critic weight. The objective it minimizes is

    ``mean f(fake) - mean f(real)``  (``= -W``, the negated Wasserstein estimate)
    ``+ gp_weight * mean (||grad_x f(x_hat)|| - 1)^2``   (``"gp"`` only)
    ``+ sum(critic.losses)``          (the critic's own kernel/activity regularizers)

Scores and losses are computed in float32, also under mixed precision.
TensorFlow is imported inside the functions that use it (see
`keras_sngan.wgan.distribution`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.wgan import distribution

EPS = 1e-12


def split_real(data, n_critic):
    """Split one dataset element into ``n_critic`` real batches (strided, see the package doc)."""
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
    if size is not None and size % n_critic:
        raise ValueError(message.format(size=size))
    if size is None:
        # A batch size known only at run time: the last, partial batch of
        # arrays, or of a dataset / generator batched without drop_remainder.
        # Split it into n_critic equal batches, dropping the (fewer than
        # n_critic) samples at its end that do not divide.
        import tensorflow as tf

        total = tf.shape(x)[0]
        check = tf.debugging.assert_greater_equal(
            total, n_critic,
            message=(f"WGAN: a dataset element holds fewer samples than n_critic={n_critic}, "
                     "too few for one sample per critic batch. Batch with drop_remainder=True."),
        )
        with tf.control_dependencies([check]):
            x = x[: total - total % n_critic]
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


def input_gradient_norm(critic, x_hat, training):
    """``||grad_x f(x)||`` per sample at ``x_hat`` (differentiable, for the penalty)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        total = ops.sum(scores(critic, x_hat, training=training))
    grads = tape.gradient(total, x_hat)
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
            gan.critic, interpolates(gan.seed_generator, real, fake, replica), training=training
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
        import tensorflow as tf

        return tf.identity(ops.convert_to_tensor(optimizer.dynamic_scale))
    return None


def clip_weights(variables, clip_value):
    """Clamp every variable to ``[-clip_value, clip_value]`` (Arjovsky et al.)."""
    for variable in variables:
        variable.assign(ops.clip(variable, -clip_value, clip_value))


def critic_iteration(gan, real, replica):
    """One critic update on one real batch; returns ``(values, gradients, scale)``.

    ``gradients`` are this replica's gradients of the (loss-scaled) objective
    divided by the number of replicas, as handed to the optimizer; ``scale``
    is the loss scale they carry (``None`` without loss scaling).
    """
    import tensorflow as tf

    from keras_sngan.wgan.generator_step import draw_noise

    critic_vars = gan.critic.trainable_variables
    local_batch = ops.shape(real)[0]
    fake = ops.cast(
        gan.generator(draw_noise(gan, local_batch, replica), training=True), "float32"
    )
    with tf.GradientTape() as tape:
        values = objective(gan, real, fake, replica, training=True)
        scaled = gan.critic_optimizer.scale_loss(
            distribution.per_replica_loss(values["loss"], replica[1])
        )
    grads = tape.gradient(scaled, critic_vars)
    scale = loss_scale(gan.critic_optimizer)
    gan.critic_optimizer.apply_gradients(zip(grads, critic_vars))
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
            gan.critic, interpolates(gan.seed_generator, real, fake, replica), training=training
        )
        values.update(gradient_penalty=ops.mean(ops.square(norms - 1.0)), grad_norm=ops.mean(norms))
    return values
