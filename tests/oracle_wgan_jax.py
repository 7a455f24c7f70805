"""An independent minimal WGAN in plain JAX (no Keras, no keras_sngan), for lockstep checks.

Written from the references as `oracle_wgan` is for TensorFlow:
Gulrajani et al.'s ``gan_toy.py`` (its ``Generator`` / ``Discriminator``
MLPs, ``disc_cost = mean D(fake) - mean D(real)``, ``gen_cost = -mean
D(fake)``, the two-sided penalty ``LAMBDA mean (||grad D(x_hat)|| - 1)^2`` at
``x_hat = a real + (1 - a) fake``, every critic variable clipped to
``[-c, c]`` after each critic update for weight clipping), and Miyato et al.'s
SN (Algorithm 1: one power iteration per training call from a persistent
``u``, ``W / sigma`` with ``sigma = <v, u W>`` differentiated with ``u`` and
``v`` held constant; here in the row-vector convention ``x W``, so ``u`` lives
on the input side: ``u <- normalize(v W^T)``, ``v <- normalize(u W)``).

One *iteration* is ``n_critic`` critic updates, each on its own real batch and
fresh noise, then one generator update; the generator's update calls the
critic in training mode without advancing its SN vectors (they are the
critic's state, and the generator update must leave the critic as it found
it). Randomness is injected by the caller (noise and mixing weights per
update), so two implementations can be run in lockstep.

The optimizers are written out: plain SGD, and Adam with Keras 3's update
rule (``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``epsilon`` outside the
root).

``bug`` builds an oracle meant to disagree, to prove a lockstep test can fail:
``"penalty_sign"`` subtracts the penalty instead of adding it;
``"clip_late"`` clips the critic only once, after the generator update,
instead of after every critic update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-12


def _normalize(x):
    return x / jnp.maximum(jnp.sqrt(jnp.sum(x * x)), EPS)


def _sn_kernel(w, u, v, training):
    """``(W / sigma, u, v)``: one power iteration in training mode, constants in the gradient."""
    if training:
        u = _normalize(v @ w.T)
        v = _normalize(u @ w)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = jnp.sum(v * (u @ w))
    return w / sigma, u, v


def mlp(params, x, vectors=None, training=True):
    """``x -> ReLU hidden layers -> linear``; with ``vectors`` every kernel is spectrally normalized.

    Returns ``(output, new vectors)`` (``None`` without SN).
    """
    new_vectors = [] if vectors is not None else None
    for i, (w, b) in enumerate(params):
        if vectors is not None:
            w, u, v = _sn_kernel(w, *vectors[i], training)
            new_vectors.append((u, v))
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x, new_vectors


class SGD:
    def __init__(self, learning_rate):
        self.lr = learning_rate

    def init(self, params):
        return ()

    def update(self, params, grads, state):
        return jax.tree.map(lambda p, g: p - self.lr * g, params, grads), state


class Adam:
    """Keras 3's Adam: ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``w -= lr_t m / (sqrt(v) + eps)``."""

    def __init__(self, learning_rate, beta_1=0.5, beta_2=0.9, epsilon=1e-7):
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon

    def init(self, params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (0, zeros, zeros)

    def update(self, params, grads, state):
        t, m, v = state
        t = t + 1
        m = jax.tree.map(lambda m_, g: self.b1 * m_ + (1 - self.b1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: self.b2 * v_ + (1 - self.b2) * g * g, v, grads)
        lr_t = self.lr * jnp.sqrt(1 - self.b2**t) / (1 - self.b1**t)
        params = jax.tree.map(lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + self.eps), params, m, v)
        return params, (t, m, v)


class OracleWGAN:
    """Critic and generator parameters, SN vectors and optimizer states, updated in plain JAX.

    Args:
        method: ``"gp"``, ``"clip"``, ``"sn"`` or ``"none"``.
        critic, generator: lists of ``(kernel, bias)`` arrays (kernels ``(in, out)``).
        vectors: for ``"sn"``, the critic's ``[(u, v)]`` per layer (``u`` ``(1, in)``,
            ``v`` ``(1, out)``).
        optimizer: a factory, called once per network (`SGD` or `Adam`).
        gp_weight, clip_value: the penalty weight and the clipping bound.
        bug: ``None``, ``"penalty_sign"`` or ``"clip_late"`` (see the module doc).
    """

    def __init__(self, method, critic, generator, optimizer, vectors=None, gp_weight=10.0,
                 clip_value=0.01, bug=None):
        self.method, self.gp_weight, self.clip_value, self.bug = method, gp_weight, clip_value, bug
        self.critic = [(jnp.asarray(w), jnp.asarray(b)) for w, b in critic]
        self.generator = [(jnp.asarray(w), jnp.asarray(b)) for w, b in generator]
        self.vectors = None if vectors is None else [(jnp.asarray(u), jnp.asarray(v)) for u, v in vectors]
        self.critic_optimizer, self.generator_optimizer = optimizer(), optimizer()
        self.critic_state = self.critic_optimizer.init(self.critic)
        self.generator_state = self.generator_optimizer.init(self.generator)

    def _scores(self, critic, x, vectors):
        out, vectors = mlp(critic, x, vectors, training=True)
        return out.reshape(-1), vectors

    def _critic_cost(self, critic, real, fake, alpha):
        both, vectors = self._scores(critic, jnp.concatenate([real, fake]), self.vectors)
        n = real.shape[0]
        wasserstein = jnp.mean(both[:n]) - jnp.mean(both[n:])
        cost = -wasserstein
        if self.method == "gp":
            x_hat = alpha * real + (1.0 - alpha) * fake

            def total(x):
                return jnp.sum(self._scores(critic, x, vectors)[0])

            grads = jax.grad(total)(x_hat)
            norms = jnp.sqrt(jnp.sum(grads**2, axis=1) + EPS)
            penalty = jnp.mean((norms - 1.0) ** 2)
            sign = -1.0 if self.bug == "penalty_sign" else 1.0
            cost = cost + sign * self.gp_weight * penalty
            # the penalty's critic call advances the vectors again (as a training call does)
            _, vectors = self._scores(critic, x_hat, vectors)
        return cost, vectors

    def _clip(self):
        c = self.clip_value
        self.critic = jax.tree.map(lambda p: jnp.clip(p, -c, c), self.critic)

    def critic_step(self, real, noise, alpha=None):
        fake, _ = mlp(self.generator, noise)
        (cost, vectors), grads = jax.value_and_grad(self._critic_cost, has_aux=True)(
            self.critic, real, fake, alpha
        )
        self.critic, self.critic_state = self.critic_optimizer.update(self.critic, grads, self.critic_state)
        self.vectors = vectors
        if self.method == "clip" and self.bug != "clip_late":
            self._clip()
        return cost

    def generator_step(self, noise):
        def cost(generator):
            fake, _ = mlp(generator, noise)
            return -jnp.mean(self._scores(self.critic, fake, self.vectors)[0])  # vectors not kept

        value, grads = jax.value_and_grad(cost)(self.generator)
        self.generator, self.generator_state = self.generator_optimizer.update(
            self.generator, grads, self.generator_state
        )
        if self.method == "clip" and self.bug == "clip_late":
            self._clip()
        return value

    def iteration(self, reals, noises, alphas):
        """``len(reals)`` critic updates then one generator update (``noises[-1]``)."""
        for k, real in enumerate(reals):
            self.critic_step(real, noises[k], alphas[k] if alphas is not None else None)
        return self.generator_step(noises[len(reals)])
