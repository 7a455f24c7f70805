"""An independent minimal WGAN for checking keras_sngan's trainer (no keras_sngan code).

Written from the references, not from our package, with plain TensorFlow ops
(`tf.Variable` weights, `tf.GradientTape`, hand-written optimizers and loop):

- **WGAN-GP** and **WGAN with weight clipping** as in Gulrajani et al.'s
  ``gan_toy.py`` (github.com/igul222/improved_wgan_training, file
  ``gan_toy.py``; its ``MODE = 'wgan-gp'`` and ``MODE = 'wgan'``):

  - generator: 2-d ``N(0, I)`` noise -> 3 x ``DIM`` ReLU -> 2 (``Generator``);
    critic: 2 -> 3 x ``DIM`` ReLU -> 1 (``Discriminator``); ``DIM = 512``;
  - ``tflib.ops.linear.Linear`` weights: ReLU layers ``initialization='he'``
    (uniform with std ``sqrt(2 / fan_in)``), the output layers the default
    Glorot uniform (std ``sqrt(2 / (fan_in + fan_out))``), biases zero;
  - ``disc_cost = mean D(fake) - mean D(real)``, ``gen_cost = -mean D(fake)``;
  - penalty ``LAMBDA * mean (||grad D(x_hat)|| - 1)^2``, ``x_hat = a real +
    (1 - a) fake``, ``a ~ U[0, 1]`` per sample, ``LAMBDA = 0.1`` ("smaller
    lambda makes things faster for toy tasks");
  - ``BATCH_SIZE = 256``, ``CRITIC_ITERS = 5``, each critic step on a fresh
    real batch and fresh fakes; generator batch 256;
  - ``wgan-gp``: ``tf.train.AdamOptimizer(1e-4, beta1=0.5, beta2=0.9)`` for
    both networks; ``wgan``: ``tf.train.RMSPropOptimizer(5e-5)`` for both and
    every critic variable (kernels and biases) clipped to ``[-0.01, 0.01]``
    after each critic step (Arjovsky, Chintala, Bottou 2017: RMSProp 5e-5,
    c = 0.01). The optimizers are written out below with the TF1 update
    rules and defaults ``gan_toy.py`` ran with (Adam ``epsilon = 1e-8``;
    RMSProp ``decay = 0.9``, ``epsilon = 1e-10`` under the square root, mean
    square initialized to **ones**).

- **SN**: the same networks, each critic Dense layer wrapped in Keras' own
  ``keras.layers.SpectralNormalization`` (one power iteration per training
  call; it writes ``W / sigma`` into the kernel in place, so its gradient does
  not flow through sigma, unlike Miyato et al.'s reparametrization), Adam
  1e-4, betas (0.5, 0.9) (Miyato et al. 2018 / gan_toy.py's Adam). The
  critic runs in training mode in both the critic and the generator steps.

One *iteration* is ``CRITIC_ITERS`` critic updates followed by one generator
update. ``gan_toy.py`` runs its generator update at the top of iterations
``1, 2, ...``, so its sequence of updates is the same (C^5 G C^5 G ...); after
``T`` of our iterations it has done one generator update fewer.

The data samplers are ``gan_toy.py``'s ``inf_train_gen`` (8gaussians: a
center drawn per point from the 8 points of radius 2, ``N(0, 0.02^2)`` noise,
divided by 1.414; 25gaussians: a fixed shuffled 100,000-point set, 4,000
points around each of the centers ``2 * {-2..2}^2`` with ``N(0, 0.05^2)``
noise, divided by 2.828, read in consecutive batches; swissroll:
``sklearn.datasets.make_swiss_roll(batch, noise=0.25)[:, [0, 2]] / 7.5``),
seeded through a NumPy generator instead of the global NumPy / ``random``
state.

Example:
    >>> oracle = OracleWGAN("gp", width=64, seed=0)                     # doctest: +SKIP
    >>> history = oracle.train(200, ToySampler("8gaussians", seed=0))  # doctest: +SKIP
    >>> samples = oracle.sample(1000)                                   # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# ----------------------------------------------------------------- gan_toy.py's settings
DIM = 512
DEPTH = 3
BATCH_SIZE = 256
CRITIC_ITERS = 5
LATENT_DIM = 2

METHODS = ("gp", "clip", "sn")
REFERENCE_SETTINGS = {
    # gan_toy.py MODE='wgan-gp': Adam(1e-4, 0.5, 0.9) on both networks, LAMBDA = .1 on toys.
    "gp": {"optimizer": "adam", "learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9, "gp_weight": 0.1},
    # gan_toy.py MODE='wgan' (Arjovsky et al.): RMSProp(5e-5) on both networks, clip [-.01, .01].
    "clip": {"optimizer": "rmsprop", "learning_rate": 5e-5, "clip_value": 0.01},
    # Miyato et al. / gan_toy.py's Adam, critic layers wrapped in keras.layers.SpectralNormalization.
    "sn": {"optimizer": "adam", "learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9},
}


# ----------------------------------------------------------------- data (inf_train_gen)
_EIGHT_CENTERS = 2.0 * np.array(
    [(1, 0), (-1, 0), (0, 1), (0, -1),
     (1 / math.sqrt(2), 1 / math.sqrt(2)), (1 / math.sqrt(2), -1 / math.sqrt(2)),
     (-1 / math.sqrt(2), 1 / math.sqrt(2)), (-1 / math.sqrt(2), -1 / math.sqrt(2))]
)  # fmt: skip


class ToySampler:
    """``gan_toy.py``'s ``inf_train_gen`` for one data set, seeded.

    ``next(batch_size)`` returns a float32 batch ``(batch_size, 2)``.
    """

    def __init__(self, dataset: str, seed: int = 0):
        if dataset not in ("8gaussians", "25gaussians", "swissroll"):
            raise ValueError(f"ToySampler: unknown dataset {dataset!r}.")
        self.dataset = dataset
        self.rng = np.random.default_rng([int(seed), 2017])
        self._cursor = 0
        if dataset == "25gaussians":  # 100000/25 rounds over the 25 centers, shuffled, / 2.828
            grid = np.array([(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)])
            points = np.tile(grid, (100000 // 25, 1)) + 0.05 * self.rng.standard_normal((100000, 2))
            self.rng.shuffle(points)
            self._fixed = (points / 2.828).astype(np.float32)

    def next(self, batch_size: int = BATCH_SIZE) -> np.ndarray:
        if self.dataset == "8gaussians":
            centers = _EIGHT_CENTERS[self.rng.integers(8, size=batch_size)]
            return ((centers + 0.02 * self.rng.standard_normal((batch_size, 2))) / 1.414).astype(np.float32)
        if self.dataset == "swissroll":
            import sklearn.datasets

            data = sklearn.datasets.make_swiss_roll(
                n_samples=batch_size, noise=0.25, random_state=int(self.rng.integers(2**31 - 1))
            )[0]
            return (data.astype(np.float32)[:, [0, 2]] / 7.5).astype(np.float32)
        # 25gaussians: consecutive batches of the fixed set, dropping the remainder, cycling
        if self._cursor + batch_size > len(self._fixed):
            self._cursor = 0
        batch = self._fixed[self._cursor : self._cursor + batch_size]
        self._cursor += batch_size
        return batch


# ----------------------------------------------------------------- networks
def _uniform(rng, std, shape):
    """tflib's ``uniform(stdev, size)``: U(-std sqrt 3, std sqrt 3)."""
    return rng.uniform(-std * math.sqrt(3.0), std * math.sqrt(3.0), size=shape).astype(np.float32)


def _initial_kernel(rng, fan_in, fan_out, relu, init):
    if init == "gan_toy" and relu:  # initialization='he'
        return _uniform(rng, math.sqrt(2.0 / fan_in), (fan_in, fan_out))
    # gan_toy's output layers (initialization=None -> 'glorot'); "glorot" everywhere = Keras' Dense default
    return _uniform(rng, math.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out))


class MLP:
    """``in -> depth x width ReLU -> out`` with plain `tf.Variable` weights."""

    def __init__(self, rng, sizes, init):
        self.kernels, self.biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            relu = i < len(sizes) - 2
            self.kernels.append(tf.Variable(_initial_kernel(rng, fan_in, fan_out, relu, init)))
            self.biases.append(tf.Variable(tf.zeros((fan_out,))))
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]

    def __call__(self, x, training=True):
        for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
            x = tf.matmul(x, w) + b
            if i < len(self.kernels) - 1:
                x = tf.nn.relu(x)
        return x


class KerasSNCritic:
    """The same critic, every Dense layer wrapped in ``keras.layers.SpectralNormalization``."""

    def __init__(self, rng, sizes, init):
        import keras

        self.layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            kernel = _initial_kernel(rng, fan_in, fan_out, i < len(sizes) - 2, init)
            dense = keras.layers.Dense(fan_out, kernel_initializer=keras.initializers.Constant(kernel))
            layer = keras.layers.SpectralNormalization(dense, power_iterations=1)
            layer.build((None, fan_in))
            self.layers.append(layer)
        self.variables = [v for layer in self.layers for v in layer.trainable_variables]

    def __call__(self, x, training=True):
        for i, layer in enumerate(self.layers):
            x = layer(x, training=training)
            if i < len(self.layers) - 1:
                x = tf.nn.relu(x)
        return x


class MiyatoSNCritic:
    """The same critic with SN as Miyato et al.'s reparametrization, in plain TensorFlow.

    Each layer computes ``x W / sigma + b`` with ``sigma = v W u^T`` from one
    power iteration on a persistent ``u`` (updated in training mode only);
    ``u`` and ``v`` are held constant in the gradient, which flows through
    ``W / sigma`` (Miyato et al. 2018, Algorithm 1). Not Keras' layer:
    for telling the SN algorithm apart from the trainer.
    """

    def __init__(self, rng, sizes, init):
        self.kernels, self.biases, self.us = [], [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.kernels.append(tf.Variable(_initial_kernel(rng, fan_in, fan_out, i < len(sizes) - 2, init)))
            self.biases.append(tf.Variable(tf.zeros((fan_out,))))
            u = rng.standard_normal((1, fan_out)).astype(np.float32)
            self.us.append(tf.Variable(u / np.linalg.norm(u), trainable=False))
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]

    def __call__(self, x, training=True):
        for i, (w, b, u) in enumerate(zip(self.kernels, self.biases, self.us)):
            x = tf.matmul(x, w / self.sigma(w, u, training)) + b
            if i < len(self.kernels) - 1:
                x = tf.nn.relu(x)
        return x

    @staticmethod
    def sigma(w, u, training):
        """``v W u^T`` after one power iteration (training: ``u`` advances and is stored)."""
        v = tf.math.l2_normalize(tf.matmul(u, w, transpose_b=True))
        u_next = tf.math.l2_normalize(tf.matmul(v, w)) if training else u.value()
        if training:
            u.assign(u_next)
        v, u_next = tf.stop_gradient(v), tf.stop_gradient(u_next)
        return tf.reduce_sum(tf.matmul(v, w) * u_next)


# ----------------------------------------------------------------- optimizers (TF1 update rules)
class Adam:
    """``tf.train.AdamOptimizer``: bias-corrected step, ``epsilon`` outside the root (1e-8)."""

    def __init__(self, variables, learning_rate, beta_1, beta_2, epsilon=1e-8):
        self.variables = variables
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.t = tf.Variable(0.0)

    def apply(self, grads):
        self.t.assign_add(1.0)
        lr_t = self.lr * tf.sqrt(1.0 - self.b2**self.t) / (1.0 - self.b1**self.t)
        for var, g, m, v in zip(self.variables, grads, self.m, self.v):
            m.assign(self.b1 * m + (1.0 - self.b1) * g)
            v.assign(self.b2 * v + (1.0 - self.b2) * tf.square(g))
            var.assign_sub(lr_t * m / (tf.sqrt(v) + self.eps))


class RMSProp:
    """``tf.train.RMSPropOptimizer``: ``ms`` starts at 1, ``w -= lr g / sqrt(ms + eps)``.

    ``initial_mean_square=0`` gives the zero-initialized accumulator of
    Keras' and PyTorch's RMSprop (for attributing differences, not a reference setting).
    """

    def __init__(self, variables, learning_rate, decay=0.9, epsilon=1e-10, initial_mean_square=1.0):
        self.variables = variables
        self.lr, self.decay, self.eps = learning_rate, decay, epsilon
        self.ms = [tf.Variable(tf.fill(tf.shape(v), float(initial_mean_square))) for v in variables]

    def apply(self, grads):
        for var, g, ms in zip(self.variables, grads, self.ms):
            ms.assign(self.decay * ms + (1.0 - self.decay) * tf.square(g))
            var.assign_sub(self.lr * g / tf.sqrt(ms + self.eps))


class SGD:
    """Plain gradient descent (for lockstep checks, where Adam's sign-like first steps hide gradient errors)."""

    def __init__(self, variables, learning_rate):
        self.variables, self.lr = variables, learning_rate

    def apply(self, grads):
        for var, g in zip(self.variables, grads):
            var.assign_sub(self.lr * g)


def _optimizer(variables, spec):
    if spec["optimizer"] == "sgd":
        return SGD(variables, spec["learning_rate"])
    if spec["optimizer"] == "rmsprop":
        return RMSProp(variables, spec["learning_rate"], spec.get("rho", 0.9), spec.get("epsilon", 1e-10),
                       spec.get("initial_mean_square", 1.0))
    return Adam(variables, spec["learning_rate"], spec["beta_1"], spec["beta_2"], spec.get("epsilon", 1e-8))


# ----------------------------------------------------------------- the WGAN
class OracleWGAN:
    """A minimal WGAN (``"gp"``, ``"clip"`` or ``"sn"``) with gan_toy.py's loop.

    Args:
        method: ``"gp"``, ``"clip"`` or ``"sn"``.
        width, depth: hidden units and hidden layers of both MLPs (512, 3).
        batch_size: critic and generator batch (256).
        n_critic: critic updates per generator update (5).
        gp_weight: penalty weight for ``"gp"`` (gan_toy.py: 0.1).
        clip_value: clipping bound for ``"clip"`` (0.01).
        init: ``"gan_toy"`` (He uniform hidden layers, Glorot uniform output
            layers) or ``"glorot"`` (Glorot uniform everywhere).
        seed: seed of the weights (NumPy) and of the noise / mixing weights
            (`tf.random.Generator`).
        optimizer: overrides of ``REFERENCE_SETTINGS[method]``: ``optimizer``,
            ``learning_rate``, Adam's ``beta_1``, ``beta_2``, ``epsilon``,
            RMSProp's ``rho``, ``epsilon`` and ``initial_mean_square``.
        clip_initial: for ``"clip"``, also clip the initial critic weights
            (Arjovsky et al.'s code clamps before every critic update, so
            before the first one too; gan_toy.py clips only after updates).
        sn_layer: for ``"sn"``, ``"keras"`` (``keras.layers.SpectralNormalization``,
            the default) or ``"miyato"`` (`MiyatoSNCritic`).
    """

    def __init__(self, method, width=DIM, depth=DEPTH, batch_size=BATCH_SIZE, n_critic=CRITIC_ITERS,
                 gp_weight=0.1, clip_value=0.01, init="gan_toy", seed=0, optimizer=None, clip_initial=False,
                 sn_layer="keras"):
        if method not in METHODS:
            raise ValueError(f"OracleWGAN: `method` must be one of {METHODS}, received {method!r}.")
        if init not in ("gan_toy", "glorot"):
            raise ValueError(f"OracleWGAN: `init` must be 'gan_toy' or 'glorot', received {init!r}.")
        self.method, self.batch_size, self.n_critic = method, int(batch_size), int(n_critic)
        self.gp_weight, self.clip_value = float(gp_weight), float(clip_value)
        rng = np.random.default_rng([int(seed), 1])
        hidden = [int(width)] * int(depth)
        self.generator = MLP(rng, [LATENT_DIM, *hidden, 2], init)
        if sn_layer not in ("keras", "miyato"):
            raise ValueError(f"OracleWGAN: `sn_layer` must be 'keras' or 'miyato', received {sn_layer!r}.")
        critic_class = MLP if method != "sn" else (KerasSNCritic if sn_layer == "keras" else MiyatoSNCritic)
        self.critic = critic_class(rng, [2, *hidden, 1], init)
        spec = dict(REFERENCE_SETTINGS[method], **(optimizer or {}))
        self.critic_optimizer = _optimizer(self.critic.variables, spec)
        self.generator_optimizer = _optimizer(self.generator.variables, spec)
        self.noise = tf.random.Generator.from_seed(int(seed) * 1000 + 7)
        if method == "clip" and clip_initial:
            self._clip()
        # one graph per update (traced once each; cheaper to trace than an unrolled iteration)
        self._critic_update = tf.function(self._critic_step)
        self._generator_update = tf.function(self._generator_step)

    # -- one critic update: gan_toy.py's disc_cost and disc_train_op (+ clip_disc_weights)
    def _critic_step(self, real):
        fake = self.generator(self.noise.normal((self.batch_size, LATENT_DIM)))
        with tf.GradientTape() as tape:
            d_real = tf.reshape(self.critic(real), [-1])
            d_fake = tf.reshape(self.critic(fake), [-1])
            wasserstein = tf.reduce_mean(d_real) - tf.reduce_mean(d_fake)
            cost = -wasserstein
            if self.method == "gp":
                alpha = self.noise.uniform((self.batch_size, 1), 0.0, 1.0)
                interpolates = alpha * real + (1.0 - alpha) * fake
                with tf.GradientTape() as inner:
                    inner.watch(interpolates)
                    d_hat = self.critic(interpolates)
                gradients = inner.gradient(d_hat, interpolates)
                slopes = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=1))
                cost += self.gp_weight * tf.reduce_mean((slopes - 1.0) ** 2)
        self.critic_optimizer.apply(tape.gradient(cost, self.critic.variables))
        if self.method == "clip":
            self._clip()
        return cost, wasserstein

    def _clip(self):  # gan_toy.py's clip_disc_weights: every critic variable, kernels and biases
        for var in self.critic.variables:
            var.assign(tf.clip_by_value(var, -self.clip_value, self.clip_value))

    # -- one generator update: gan_toy.py's gen_cost and gen_train_op
    def _generator_step(self):
        noise = self.noise.normal((self.batch_size, LATENT_DIM))
        with tf.GradientTape() as tape:
            cost = -tf.reduce_mean(self.critic(self.generator(noise)))
        self.generator_optimizer.apply(tape.gradient(cost, self.generator.variables))
        return cost

    def train(self, iterations, sampler):
        """Run ``iterations`` iterations on batches from ``sampler.next``.

        Returns a dict of per-iteration lists: ``critic_loss`` and
        ``wasserstein`` (means over the iteration's critic updates of the
        cost and of ``mean D(real) - mean D(fake)``, each before its update),
        ``generator_loss``.
        """
        history = {"critic_loss": [], "wasserstein": [], "generator_loss": []}
        for _ in range(int(iterations)):
            costs, estimates = [], []
            for _ in range(self.n_critic):
                cost, wasserstein = self._critic_update(tf.constant(sampler.next(self.batch_size)))
                costs.append(cost)
                estimates.append(wasserstein)
            gen_cost = self._generator_update()
            history["critic_loss"].append(float(np.mean([float(c) for c in costs])))
            history["wasserstein"].append(float(np.mean([float(w) for w in estimates])))
            history["generator_loss"].append(float(gen_cost))
        return history

    # -- inference (the SN critic at inference uses its kernel as stored, as Keras' layer does)
    def generate(self, z):
        """Generator samples for latents ``z`` ``(n, 2)`` (a `tf.Tensor`)."""
        return self.generator(tf.convert_to_tensor(np.asarray(z, np.float32)))

    def score(self, x):
        """Critic scores ``(n, 1)`` of points ``x`` in inference mode (a `tf.Tensor`)."""
        return self.critic(tf.convert_to_tensor(np.asarray(x, np.float32)), training=False)

    def sample(self, n, seed=0):
        z = np.random.default_rng([int(seed), 3]).standard_normal((int(n), LATENT_DIM)).astype(np.float32)
        return self.generate(z).numpy()
