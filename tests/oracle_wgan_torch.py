"""The same independent minimal WGAN as `oracle_wgan_jax`, in plain PyTorch (no Keras, no keras_sngan).

Written from the same references (``gan_toy.py``; Miyato et al.'s Algorithm 1
for SN, in the row-vector convention ``x W``: ``u <- normalize(v W^T)``, ``v
<- normalize(u W)``, ``sigma = <v, u W>`` with ``u``, ``v`` detached), with
`torch.autograd.grad` and ``create_graph=True`` for the penalty. Randomness
is injected by the caller. ``bug`` as in `oracle_wgan_jax`.
"""

from __future__ import annotations

import torch

EPS = 1e-12


def _t(x):
    return torch.as_tensor(x, dtype=torch.float32).clone()


def _normalize(x):
    return x / torch.clamp(torch.sqrt(torch.sum(x * x)), min=EPS)


def mlp(params, x, vectors=None, training=True):
    new_vectors = [] if vectors is not None else None
    for i, (w, b) in enumerate(params):
        if vectors is not None:
            u, v = vectors[i]
            if training:
                with torch.no_grad():
                    u = _normalize(v @ w.T)
                    v = _normalize(u @ w)
            sigma = torch.sum(v.detach() * (u.detach() @ w))
            new_vectors.append((u.detach(), v.detach()))
            w = w / sigma
        x = x @ w + b
        if i < len(params) - 1:
            x = torch.relu(x)
    return x, new_vectors


class OracleWGAN:
    """Critic and generator parameters and SN vectors, updated with plain SGD in PyTorch."""

    def __init__(self, method, critic, generator, learning_rate, vectors=None, gp_weight=10.0, clip_value=0.01,
                 bug=None):
        self.method, self.lr, self.gp_weight, self.clip_value, self.bug = (
            method, learning_rate, gp_weight, clip_value, bug)
        self.critic = [(_t(w).requires_grad_(), _t(b).requires_grad_()) for w, b in critic]
        self.generator = [(_t(w).requires_grad_(), _t(b).requires_grad_()) for w, b in generator]
        self.vectors = None if vectors is None else [(_t(u), _t(v)) for u, v in vectors]

    @staticmethod
    def _flat(params):
        return [p for pair in params for p in pair]

    def _sgd(self, params, grads):
        with torch.no_grad():
            for p, g in zip(self._flat(params), grads):
                p -= self.lr * g

    def _clip(self):
        with torch.no_grad():
            for p in self._flat(self.critic):
                p.clamp_(-self.clip_value, self.clip_value)

    def critic_step(self, real, noise, alpha=None):
        real, noise = _t(real), _t(noise)
        with torch.no_grad():
            fake, _ = mlp(self.generator, noise)
        out, vectors = mlp(self.critic, torch.cat([real, fake]), self.vectors)
        out = out.reshape(-1)
        n = real.shape[0]
        cost = -(out[:n].mean() - out[n:].mean())
        if self.method == "gp":
            x_hat = (_t(alpha) * real + (1.0 - _t(alpha)) * fake).requires_grad_()
            scores, vectors = mlp(self.critic, x_hat, vectors)
            (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
            norms = torch.sqrt(torch.sum(grads**2, dim=1) + EPS)
            sign = -1.0 if self.bug == "penalty_sign" else 1.0
            cost = cost + sign * self.gp_weight * torch.mean((norms - 1.0) ** 2)
        grads = torch.autograd.grad(cost, self._flat(self.critic))
        self._sgd(self.critic, grads)
        self.vectors = vectors
        if self.method == "clip" and self.bug != "clip_late":
            self._clip()

    def generator_step(self, noise):
        fake, _ = mlp(self.generator, _t(noise))
        cost = -mlp(self.critic, fake, self.vectors)[0].mean()  # the critic's vectors are not kept
        grads = torch.autograd.grad(cost, self._flat(self.generator))
        self._sgd(self.generator, grads)
        if self.method == "clip" and self.bug == "clip_late":
            self._clip()

    def iteration(self, reals, noises, alphas):
        for k, real in enumerate(reals):
            self.critic_step(real, noises[k], alphas[k] if alphas is not None else None)
        self.generator_step(noises[len(reals)])
