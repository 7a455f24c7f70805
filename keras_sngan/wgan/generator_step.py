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

from keras import ops

from keras_sngan.wgan import autodiff, distribution
from keras_sngan.wgan.critic_step import draw_noise, regularization, scores

__all__ = ["critic_scores_without_side_effects", "draw_noise", "generator_iteration"]


def critic_scores_without_side_effects(gan, x):
    """The critic's training-mode scores; state updates of the call are dropped."""
    with autodiff.isolated_scope(gan.state_variables):
        return scores(gan.critic, x, training=True)


def generator_iteration(gan, local_batch, replica):
    """One generator update; returns its objective (float32 scalar)."""
    generator_vars = gan.generator.trainable_variables
    noise = draw_noise(gan, local_batch, replica)

    def scaled_objective():
        fake = gan.generator(noise, training=True)
        loss = regularization(gan.generator)
        loss = loss - ops.mean(critic_scores_without_side_effects(gan, fake))
        scaled = gan.generator_optimizer.scale_loss(
            distribution.per_replica_loss(loss, replica[1])
        )
        return scaled, loss

    _, loss, grads = autodiff.value_and_grad(scaled_objective, generator_vars, gan.state_variables)
    autodiff.apply_gradients(gan.generator_optimizer, grads, generator_vars)
    return loss
