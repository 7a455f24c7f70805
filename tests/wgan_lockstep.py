"""Run our `WGAN` and the plain-JAX oracle (`oracle_wgan_jax`) from the same weights, data and draws.

Backend-neutral: it runs on whichever Keras backend the process uses (the
oracle is plain JAX either way). Our steps run eagerly (``run_eagerly=True``)
so that the injected draws are consumed per update, not frozen into a traced
function. Also runnable as a script, which the cross-backend test starts once
per backend::

    KERAS_BACKEND=jax python tests/wgan_lockstep.py sn 4 out.npz
"""

from __future__ import annotations

import sys
from unittest import mock

import numpy as np

N_CRITIC = 3
BATCH = 32
WIDTH = 16
DEPTH = 2
LR = {"gp": 1e-2, "clip": 1e-3, "sn": 1e-2, "none": 1e-2}
GP_WEIGHT = 10.0
CLIP = 0.01


class Draws:
    """Pre-drawn noise and mixing weights, consumed in order."""

    def __init__(self, seed, iterations, batch=BATCH, n_critic=N_CRITIC):
        rng = np.random.default_rng([seed, 11])
        self.noises = [rng.standard_normal((batch, 2)).astype("float32") for _ in range(iterations * (n_critic + 1))]
        self.alphas = [rng.uniform(size=(batch, 1)).astype("float32") for _ in range(iterations * n_critic)]
        self.reals = [
            (rng.choice([-2.0, 2.0], size=(batch, 1)) + 0.3 * rng.standard_normal((batch, 2))).astype("float32")
            for _ in range(iterations * n_critic)
        ]
        self.measurement = rng.uniform(size=(batch, 1)).astype("float32")


def build(method, seed=0):
    import keras

    from keras_sngan import models
    from keras_sngan.wgan import WGAN

    keras.utils.set_random_seed(seed)
    critic = models.toy_critic(width=WIDTH, depth=DEPTH, lipschitz=method)
    generator = models.toy_generator(width=WIDTH, depth=DEPTH)
    gan = WGAN(critic, generator, latent_dim=2, lipschitz=method, n_critic=N_CRITIC, gp_weight=GP_WEIGHT,
               clip_value=CLIP, seed=seed)
    gan.compile(critic_optimizer=keras.optimizers.SGD(LR[method]),
                generator_optimizer=keras.optimizers.SGD(LR[method]), run_eagerly=True)
    return gan


def dense_params(model):
    """``[(kernel, bias)]`` of a toy MLP's Dense layers (unwrapping SN), and the SN vectors."""
    import keras

    from keras_sngan import SpectralNormalization

    params, vectors = [], []
    for layer in model.layers:
        if isinstance(layer, SpectralNormalization):
            (u, v), = layer._vectors
            vectors.append((keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v)))
            layer = layer.layer
        if isinstance(layer, keras.layers.Dense):
            params.append((keras.ops.convert_to_numpy(layer.kernel.value),
                           keras.ops.convert_to_numpy(layer.bias.value)))
    return params, vectors


def set_dense_params(model, params):
    from keras_sngan import SpectralNormalization

    import keras

    dense = [layer.layer if isinstance(layer, SpectralNormalization) else layer for layer in model.layers]
    dense = [layer for layer in dense if isinstance(layer, keras.layers.Dense)]
    for layer, (w, b) in zip(dense, params):
        layer.kernel.assign(w)
        layer.bias.assign(b)


def initial_params(seed=0):
    """Fixed starting weights, the same on every backend (Glorot-like scale)."""
    rng = np.random.default_rng([seed, 5])

    def mlp(sizes):
        return [
            (rng.uniform(-1, 1, (a, b)).astype("float32") * np.sqrt(6.0 / (a + b)).astype("float32"),
             0.1 * rng.standard_normal(b).astype("float32"))
            for a, b in zip(sizes[:-1], sizes[1:])
        ]

    hidden = [WIDTH] * DEPTH
    return mlp([2, *hidden, 1]), mlp([2, *hidden, 2])


def run_ours(method, iterations, seed=0, draws=None, start=None):
    """Our WGAN for ``iterations`` iterations of injected draws; returns its final weights and vectors."""
    from keras_sngan.wgan import critic_step, generator_step

    draws = draws or Draws(seed, iterations)
    gan = build(method, seed)
    if start is not None:  # fixed weights, and SN vectors: unit vectors that do not depend on the backend
        set_dense_params(gan.critic, start[0])
        set_dense_params(gan.generator, start[1])
        rng = np.random.default_rng([seed, 7])
        for layer in gan.critic.layers:
            for u, v in getattr(layer, "_vectors", []):
                for var in (u, v):
                    x = rng.standard_normal(tuple(var.shape)).astype("float32")
                    var.assign(x / np.linalg.norm(x))
    noises, alphas = list(draws.noises), list(draws.alphas)

    import keras

    def draw_noise(gan_, local_batch, replica):
        return keras.ops.convert_to_tensor(noises.pop(0))

    def interpolates(seed_generator, real, fake, replica):
        alpha = keras.ops.convert_to_tensor(alphas.pop(0) if method == "gp" else draws.measurement)
        return alpha * real + (1.0 - alpha) * fake

    # WGAN.train_step splits an element strided: critic batch k = samples k, k + n, k + 2n, ...
    elements = [np.stack(draws.reals[i * N_CRITIC:(i + 1) * N_CRITIC], axis=1).reshape(-1, 2)
                for i in range(iterations)]
    with mock.patch.object(critic_step, "draw_noise", draw_noise), \
            mock.patch.object(generator_step, "draw_noise", draw_noise), \
            mock.patch.object(critic_step, "interpolates", interpolates):
        gan.fit(np.concatenate(elements), batch_size=N_CRITIC * BATCH, epochs=1, shuffle=False, verbose=0)
    assert not noises, "every injected draw is used"
    return gan, dense_params(gan.critic), dense_params(gan.generator)[0]


def run_oracle(method, gan_start, iterations, seed=0, draws=None, bug=None, oracle="jax"):
    """An oracle from the weights and vectors ``gan_start`` = (critic params, vectors, generator params).

    ``oracle``: ``"jax"`` (`oracle_wgan_jax`) or ``"torch"`` (`oracle_wgan_torch`).
    """
    draws = draws or Draws(seed, iterations)
    critic, vectors, generator = gan_start
    vectors = vectors if method == "sn" else None
    if oracle == "jax":
        import oracle_wgan_jax

        oracle = oracle_wgan_jax.OracleWGAN(
            method, critic, generator, lambda: oracle_wgan_jax.SGD(LR[method]),
            vectors=vectors, gp_weight=GP_WEIGHT, clip_value=CLIP, bug=bug,
        )
    else:
        import oracle_wgan_torch

        oracle = oracle_wgan_torch.OracleWGAN(method, critic, generator, LR[method], vectors=vectors,
                                              gp_weight=GP_WEIGHT, clip_value=CLIP, bug=bug)
    per = N_CRITIC + 1
    for i in range(iterations):
        reals = draws.reals[i * N_CRITIC:(i + 1) * N_CRITIC]
        noises = draws.noises[i * per:(i + 1) * per]
        alphas = draws.alphas[i * N_CRITIC:(i + 1) * N_CRITIC] if method == "gp" else None
        oracle.iteration(reals, noises, alphas)
    return oracle


def _numpy(x):
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


def lockstep(method, iterations=2, seed=0, bug=None, oracle="jax"):
    """``(ours, oracle, error)`` after ``iterations`` iterations.

    ``error``: the largest, over the arrays (kernels, biases, SN vectors), of
    ``max |ours - oracle| / max |oracle|`` (per array, so that a difference in
    a clipped critic's weights of 0.01 is not hidden by the generator's of 1).
    """
    gan = build(method, seed)
    critic0, vectors0 = dense_params(gan.critic)
    generator0, _ = dense_params(gan.generator)
    _, (critic, vectors), generator = run_ours(method, iterations, seed)
    oracle = run_oracle(method, (critic0, vectors0, generator0), iterations, seed, bug=bug, oracle=oracle)
    ours = [np.asarray(a) for pair in critic + generator for a in pair] + [np.asarray(a) for pair in vectors for a in pair]
    theirs = [_numpy(a) for pair in oracle.critic + oracle.generator for a in pair]
    if method == "sn":
        theirs += [_numpy(a) for pair in oracle.vectors for a in pair]
    assert len(ours) == len(theirs)
    error = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-30) for a, b in zip(ours, theirs))
    return ours, theirs, error


def main(argv):
    """``wgan_lockstep.py METHOD ITERATIONS OUT.npz``: fixed start, injected draws, our weights saved."""
    method, iterations, out = argv[0], int(argv[1]), argv[2]
    _, (critic, vectors), generator = run_ours(method, iterations, start=initial_params())
    arrays = [a for pair in critic + generator for a in pair]
    np.savez(out, *arrays)


if __name__ == "__main__":
    main(sys.argv[1:])
