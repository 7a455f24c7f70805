"""Model builders: the WGAN-GP toy MLPs and Miyato et al.'s "standard CNN".

Every critic builder takes the Lipschitz method and wraps or constrains its
linear layers accordingly:

- ``"sn"``: every Dense / Conv layer is wrapped in `SpectralNormalization`
  (``sn_method``, ``sn_scale``, ``sn_power_iterations``);
- ``"clip"``: every kernel and bias gets a `WeightClipping(clip_value)`
  constraint (`WGAN` also clips after each critic update);
- ``"gp"`` and ``"none"``: plain layers.

All builders return functional models with a fixed input shape (batch size
free), so ``sn_method="operator"`` can build its convolution operators.
"""

from __future__ import annotations

import keras

from keras_sngan.constraints import WeightClipping
from keras_sngan.validation import check_int, check_number

LIPSCHITZ_METHODS = ("sn", "clip", "gp", "none")
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "swish")


def _check_critic_args(builder, lipschitz, sn_method, sn_scale, clip_value, activation):
    if lipschitz not in LIPSCHITZ_METHODS:
        raise ValueError(
            f"{builder}: `lipschitz` must be one of {LIPSCHITZ_METHODS}, received {lipschitz!r}."
        )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{builder}: `activation` must be one of {ACTIVATIONS}, received {activation!r}."
        )
    if lipschitz == "sn":
        from keras_sngan.spectral_normalization import METHODS

        if sn_method not in METHODS:
            raise ValueError(
                f"{builder}: `sn_method` must be one of {tuple(METHODS)}, received {sn_method!r}."
            )
        check_number("sn_scale", sn_scale, owner=builder)
    if lipschitz == "clip":
        WeightClipping(clip_value)  # validates, message names `clip_value`


class _LinearFactory:
    """Create linear layers wrapped / constrained for one Lipschitz method."""

    def __init__(self, lipschitz, sn_method, sn_scale, sn_power_iterations, clip_value):
        self.lipschitz = lipschitz
        self.sn = dict(method=sn_method, scale=float(sn_scale), power_iterations=sn_power_iterations)
        self.clip_value = clip_value

    def __call__(self, cls, *args, name=None, **kwargs):
        if self.lipschitz == "clip":
            kwargs["kernel_constraint"] = WeightClipping(self.clip_value)
            kwargs["bias_constraint"] = WeightClipping(self.clip_value)
        layer = cls(*args, name=None if self.lipschitz == "sn" else name, **kwargs)
        if self.lipschitz == "sn":
            from keras_sngan.spectral_normalization import SpectralNormalization

            return SpectralNormalization(layer, name=name, **self.sn)
        return layer


def _activation(activation, negative_slope, name):
    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=negative_slope, name=name)
    return keras.layers.Activation(activation, name=name)


TOY_INITIALIZERS = ("glorot", "gan_toy")


def _toy_kernel_initializers(initializer, owner):
    """(hidden, output) kernel initializers of a toy MLP: ``"glorot"`` (Keras' Dense default) everywhere,
    or ``"gan_toy"``: WGAN-GP gan_toy.py's ``initialization='he'`` (He-uniform) hidden layers and Glorot output."""
    if initializer not in TOY_INITIALIZERS:
        raise ValueError(f"{owner}: `initializer` must be one of {list(TOY_INITIALIZERS)}, received {initializer!r}.")
    return ("he_uniform" if initializer == "gan_toy" else "glorot_uniform"), "glorot_uniform"


def toy_generator(latent_dim=2, output_dim=2, width=512, depth=3, name="toy_generator", initializer="glorot"):
    """The WGAN-GP toy generator: noise -> ``depth`` x ``width`` ReLU -> samples.

    Args:
        latent_dim: noise size (2 in Gulrajani et al.'s toy experiments).
        output_dim: sample size (2 for the 2-d toy sets).
        width: units per hidden layer.
        depth: number of hidden layers.
        name: model name.
        initializer: ``"glorot"`` (Keras' Dense default, Glorot-uniform
            everywhere) or ``"gan_toy"`` (gan_toy.py's: He-uniform hidden
            ReLU layers, ``initialization='he'``, std ``sqrt(2 / fan_in)``;
            Glorot-uniform output layer).

    Example:
        >>> generator = toy_generator()   # 2 -> 512 -> 512 -> 512 -> 2

    Reference:
        Gulrajani et al. "Improved Training of Wasserstein GANs", NeurIPS 2017
        (gan_toy.py).
    """
    check_int("latent_dim", latent_dim, 1, owner="toy_generator")
    check_int("output_dim", output_dim, 1, owner="toy_generator")
    check_int("width", width, 1, owner="toy_generator")
    check_int("depth", depth, 0, owner="toy_generator")
    hidden, output = _toy_kernel_initializers(initializer, "toy_generator")
    inputs = keras.Input(shape=(latent_dim,), name="noise")
    x = inputs
    for i in range(depth):
        x = keras.layers.Dense(width, activation="relu", kernel_initializer=hidden, name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(output_dim, kernel_initializer=output, name="samples")(x)
    return keras.Model(inputs, outputs, name=name)


def toy_critic(
    input_dim=2,
    width=512,
    depth=3,
    lipschitz="none",
    sn_method="reshape",
    sn_scale=1.0,
    sn_power_iterations=1,
    clip_value=0.01,
    activation="relu",
    name="toy_critic",
    initializer="glorot",
):
    """The WGAN-GP toy critic: samples -> ``depth`` x ``width`` -> one score.

    Args:
        input_dim: sample size.
        width: units per hidden layer.
        depth: number of hidden layers (3 for the toy sets, 12 for the
            gradient-flow experiment of Gulrajani et al. Fig. 1b).
        lipschitz: ``"sn"``, ``"clip"``, ``"gp"`` or ``"none"`` (see module doc).
        sn_method: `SpectralNormalization` method for ``"sn"``.
        sn_scale: `SpectralNormalization` scale for ``"sn"``.
        sn_power_iterations: power iterations per training call for ``"sn"``.
        clip_value: bound of the `WeightClipping` constraints for ``"clip"``.
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"gelu"`` or
            ``"swish"``.
        name: model name.
        initializer: ``"glorot"`` or ``"gan_toy"`` (He-uniform hidden
            layers, Glorot-uniform score layer), as for :func:`toy_generator`.

    Example:
        >>> critic = toy_critic(depth=12, lipschitz="clip", clip_value=0.01)

    Reference:
        Gulrajani et al. "Improved Training of Wasserstein GANs", NeurIPS 2017.
    """
    check_int("input_dim", input_dim, 1, owner="toy_critic")
    check_int("width", width, 1, owner="toy_critic")
    check_int("depth", depth, 0, owner="toy_critic")
    check_int("sn_power_iterations", sn_power_iterations, 1, owner="toy_critic")
    _check_critic_args("toy_critic", lipschitz, sn_method, sn_scale, clip_value, activation)
    hidden, output = _toy_kernel_initializers(initializer, "toy_critic")
    linear = _LinearFactory(lipschitz, sn_method, sn_scale, sn_power_iterations, clip_value)
    inputs = keras.Input(shape=(input_dim,), name="samples")
    x = inputs
    for i in range(depth):
        x = linear(keras.layers.Dense, width, kernel_initializer=hidden, name=f"dense_{i}")(x)
        x = _activation(activation, 0.2, name=f"act_{i}")(x)
    outputs = linear(keras.layers.Dense, 1, kernel_initializer=output, name="score")(x)
    return keras.Model(inputs, outputs, name=name)


def _upsamplings(image_size):
    """Number of stride-2 upsamplings (<= 3) and the starting spatial size (>= 4)."""
    count = 0
    size = image_size
    while count < 3 and size % 2 == 0 and size // 2 >= 4:
        size //= 2
        count += 1
    return count, size


def _check_image(builder, image_size, channels):
    check_int("image_size", image_size, 4, owner=builder)
    check_int("channels", channels, 1, owner=builder)


def standard_generator(
    latent_dim=128, image_size=32, channels=3, base_channels=512, name="standard_generator"
):
    """Miyato et al.'s standard CNN generator, sized from the image size.

    ``z -> dense -> s x s x base_channels -> k x [deconv 4x4 stride 2, BN, ReLU]
    -> conv 3x3 -> tanh``. The number of upsamplings ``k`` is the largest
    ``k <= 3`` with ``image_size = s * 2**k``, ``s >= 4`` an integer; the
    channels halve at each upsampling. So 32x32 (CIFAR-10) starts at 4x4 with
    3 upsamplings (512-256-128-64, as in the paper), 28x28 (MNIST) at 7x7 with
    2, 8x8 digits at 4x4 with 1. Outputs lie in ``[-1, 1]``.

    Args:
        latent_dim: noise size (128 in the paper).
        image_size: output height = width.
        channels: output channels (1 grey, 3 RGB).
        base_channels: channels of the first feature map (512 in the paper).
        name: model name.

    Example:
        >>> generator = standard_generator(latent_dim=128, image_size=28, channels=1)

    Reference:
        Miyato et al. "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018, Table 3.
    """
    check_int("latent_dim", latent_dim, 1, owner="standard_generator")
    _check_image("standard_generator", image_size, channels)
    check_int("base_channels", base_channels, 1, owner="standard_generator")
    count, start = _upsamplings(image_size)
    inputs = keras.Input(shape=(latent_dim,), name="noise")
    x = keras.layers.Dense(start * start * base_channels, name="project")(inputs)
    x = keras.layers.Reshape((start, start, base_channels))(x)
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.ReLU()(x)
    filters = base_channels
    for i in range(count):
        filters = max(filters // 2, 1)
        x = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", name=f"deconv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", name="to_image")(x)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def standard_critic(
    image_size=32,
    channels=3,
    base_channels=64,
    lipschitz="sn",
    sn_method="reshape",
    sn_scale=1.0,
    sn_power_iterations=1,
    clip_value=0.01,
    activation="leaky_relu",
    name="standard_critic",
):
    """Miyato et al.'s standard CNN critic.

    conv3x3 c s1, conv4x4 c s2, conv3x3 2c, conv4x4 2c s2, conv3x3 4c,
    conv4x4 4c s2, conv3x3 8c, dense 1 (``c = base_channels = 64`` in the
    paper), "same" padding, LeakyReLU(0.1) after every conv. 32x32 inputs end
    at 4x4, 28x28 at 4x4, 8x8 at 1x1.

    Args:
        image_size: input height = width.
        channels: input channels.
        base_channels: channels ``c`` of the first block.
        lipschitz: ``"sn"``, ``"clip"``, ``"gp"`` or ``"none"`` (see module doc).
        sn_method: `SpectralNormalization` method for ``"sn"``.
        sn_scale: `SpectralNormalization` scale for ``"sn"``.
        sn_power_iterations: power iterations per training call for ``"sn"``.
        clip_value: bound of the `WeightClipping` constraints for ``"clip"``.
        activation: ``"leaky_relu"`` (slope 0.1, the paper's), ``"relu"``,
            ``"gelu"`` or ``"swish"``.
        name: model name.

    Example:
        >>> critic = standard_critic(image_size=32, channels=3, sn_method="operator")

    Reference:
        Miyato et al. "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018, Table 3.
    """
    _check_image("standard_critic", image_size, channels)
    check_int("base_channels", base_channels, 1, owner="standard_critic")
    check_int("sn_power_iterations", sn_power_iterations, 1, owner="standard_critic")
    _check_critic_args("standard_critic", lipschitz, sn_method, sn_scale, clip_value, activation)
    linear = _LinearFactory(lipschitz, sn_method, sn_scale, sn_power_iterations, clip_value)
    c = base_channels
    blocks = [(3, c, 1), (4, c, 2), (3, 2 * c, 1), (4, 2 * c, 2),
              (3, 4 * c, 1), (4, 4 * c, 2), (3, 8 * c, 1)]  # fmt: skip
    inputs = keras.Input(shape=(image_size, image_size, channels), name="images")
    x = inputs
    for i, (kernel, filters, stride) in enumerate(blocks):
        x = linear(keras.layers.Conv2D, filters, kernel, strides=stride, padding="same", name=f"conv_{i}")(x)
        x = _activation(activation, 0.1, name=f"act_{i}")(x)
    x = keras.layers.Flatten()(x)
    outputs = linear(keras.layers.Dense, 1, name="score")(x)
    return keras.Model(inputs, outputs, name=name)
