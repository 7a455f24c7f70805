"""The generator's side of a WGAN step.

The generator minimizes ``-mean f(G(z)) + sum(generator.losses)``. It runs in
training mode, and it calls the critic in **training mode too**, the mode in
which the critic was just updated, so that with BatchNormalization (batch
statistics) or Dropout the generator follows the function the critic
learned. That critic call runs inside a `keras.StatelessScope`: whatever it
would write into the critic's state (BatchNormalization moving statistics,
SpectralNormalization power-iteration vectors, dropout seeds) is discarded,
so the generator step leaves the critic exactly as the critic step left it.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan.wgan import distribution
from keras_sngan.wgan.critic_step import regularization, scores


def draw_noise(gan, local_batch, replica):
    """``N(0, I)`` latents for this replica's slice of the global batch."""
    return distribution.global_draw(
        lambda n: keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator),
        local_batch,
        *replica,
    )


def critic_scores_without_side_effects(critic, x):
    """The critic's training-mode scores; state updates of the call are dropped."""
    with keras.StatelessScope():
        return scores(critic, x, training=True)


def generator_iteration(gan, local_batch, replica):
    """One generator update; returns its objective (float32 scalar)."""
    import tensorflow as tf

    generator_vars = gan.generator.trainable_variables
    noise = draw_noise(gan, local_batch, replica)
    with tf.GradientTape() as tape:
        fake = gan.generator(noise, training=True)
        loss = regularization(gan.generator)
        loss = loss - ops.mean(critic_scores_without_side_effects(gan.critic, fake))
        scaled = gan.generator_optimizer.scale_loss(
            distribution.per_replica_loss(loss, replica[1])
        )
    grads = tape.gradient(scaled, generator_vars)
    gan.generator_optimizer.apply_gradients(zip(grads, generator_vars))
    return loss
