"""Tests of the model builders: architecture, Lipschitz wiring, argument checks."""

import numpy as np
import pytest
import keras
from scipy.special import erf

from keras_sngan import models
from keras_sngan.constraints import WeightClipping
from keras_sngan.spectral_normalization import SpectralNormalization


def linear_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]


def test_toy_models_match_wgan_gp_architecture():
    generator = models.toy_generator()
    critic = models.toy_critic()
    assert generator.input_shape == (None, 2) and generator.output_shape == (None, 2)
    assert critic.input_shape == (None, 2) and critic.output_shape == (None, 1)
    assert [layer.units for layer in linear_layers(generator)] == [512, 512, 512, 2]
    assert [layer.units for layer in linear_layers(critic)] == [512, 512, 512, 1]
    # 2*512+512 + 2*(512*512+512) + 512*2+2 parameters.
    assert generator.count_params() == 3 * 512 + 2 * (512 * 512 + 512) + 512 * 2 + 2


def test_toy_critic_depth_and_width():
    critic = models.toy_critic(depth=12, width=8)
    assert [layer.units for layer in linear_layers(critic)] == [8] * 12 + [1]
    out = critic(np.zeros((5, 2), "float32"))
    assert out.shape == (5, 1)


@pytest.mark.parametrize("method", ["reshape", "bidirectional", "operator"])
def test_sn_wraps_every_linear_layer(method):
    critic = models.toy_critic(width=8, lipschitz="sn", sn_method=method, sn_scale=2.0)
    wrappers = [layer for layer in critic.layers if isinstance(layer, SpectralNormalization)]
    assert len(wrappers) == 4 and not linear_layers(critic)
    assert all(w.method == method and w.scale == 2.0 for w in wrappers)
    conv = models.standard_critic(image_size=8, channels=1, base_channels=4, lipschitz="sn", sn_method=method)
    wrappers = [layer for layer in conv.layers if isinstance(layer, SpectralNormalization)]
    assert len(wrappers) == 8 and not linear_layers(conv)
    assert conv(np.zeros((3, 8, 8, 1), "float32"), training=True).shape == (3, 1)


def test_clip_constrains_every_kernel_and_bias():
    for critic in (models.toy_critic(width=8, lipschitz="clip", clip_value=0.02),
                   models.standard_critic(image_size=8, channels=1, base_channels=4, lipschitz="clip",
                                          clip_value=0.02)):
        layers = linear_layers(critic)
        assert len(layers) >= 4
        for layer in layers:
            for constraint in (layer.kernel_constraint, layer.bias_constraint):
                assert isinstance(constraint, WeightClipping) and constraint.clip_value == 0.02


@pytest.mark.parametrize("lipschitz", ["gp", "none"])
def test_gp_and_none_use_plain_layers(lipschitz):
    critic = models.standard_critic(image_size=8, channels=1, base_channels=4, lipschitz=lipschitz)
    assert len(linear_layers(critic)) == 8
    assert all(layer.kernel_constraint is None for layer in linear_layers(critic))


def test_standard_critic_is_miyato_table_3():
    critic = models.standard_critic(image_size=32, channels=3, lipschitz="none")
    convs = [layer for layer in critic.layers if isinstance(layer, keras.layers.Conv2D)]
    spec = [(layer.kernel_size[0], layer.filters, layer.strides[0]) for layer in convs]
    assert spec == [(3, 64, 1), (4, 64, 2), (3, 128, 1), (4, 128, 2), (3, 256, 1), (4, 256, 2), (3, 512, 1)]
    assert convs[-1].output.shape == (None, 4, 4, 512)
    slopes = [layer.negative_slope for layer in critic.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert slopes == pytest.approx([0.1] * 7)
    assert critic.output_shape == (None, 1)


@pytest.mark.parametrize("size, channels, upsamplings, start", [(8, 1, 1, 4), (28, 1, 2, 7), (32, 3, 3, 4)])
def test_standard_generator_sizes(size, channels, upsamplings, start):
    generator = models.standard_generator(latent_dim=16, image_size=size, channels=channels, base_channels=16)
    deconvs = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(deconvs) == upsamplings
    assert generator.get_layer("project").units == start * start * 16
    images = np.array(generator(np.random.default_rng(0).standard_normal((4, 16)).astype("float32")))
    assert images.shape == (4, size, size, channels)
    assert np.all(np.abs(images) <= 1.0)
    critic = models.standard_critic(image_size=size, channels=channels, base_channels=4)
    assert critic(images).shape == (4, 1)


ACTIVATION_ORACLES = {
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.2 * z),
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    "swish": lambda z: z / (1 + np.exp(-z)),
}


@pytest.mark.parametrize("activation", sorted(ACTIVATION_ORACLES))
def test_activation_choice(activation):
    critic = models.toy_critic(width=4, activation=activation)
    x = np.array([[0.7, -1.3], [-0.2, 0.4]], "float64")
    # Oracle: the same network evaluated by hand in numpy (float64).
    h = x
    for layer in linear_layers(critic)[:-1]:
        h = ACTIVATION_ORACLES[activation](h @ layer.kernel.numpy() + layer.bias.numpy())
    last = linear_layers(critic)[-1]
    expected = h @ last.kernel.numpy() + last.bias.numpy()
    np.testing.assert_allclose(np.array(critic(x.astype("float32"))), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "builder, kwargs, match",
    [
        (models.toy_critic, {"lipschitz": "spectral"}, "`lipschitz` must be one of .*'spectral'"),
        (models.toy_critic, {"activation": "tanh"}, "`activation` must be one of .*'tanh'"),
        (models.toy_critic, {"lipschitz": "sn", "sn_method": "power"}, "`sn_method` must be one of .*'power'"),
        (models.toy_critic, {"lipschitz": "sn", "sn_scale": 0}, "`sn_scale` must be a finite number > 0"),
        (models.toy_critic, {"lipschitz": "clip", "clip_value": -1}, "`clip_value` must be a finite number > 0"),
        (models.toy_critic, {"width": 0}, "`width` must be an integer >= 1, received 0"),
        (models.toy_generator, {"depth": -1}, "`depth` must be an integer >= 0, received -1"),
        (models.standard_critic, {"image_size": 3}, "`image_size` must be an integer >= 4, received 3"),
        (models.standard_generator, {"channels": 0}, "`channels` must be an integer >= 1, received 0"),
    ],
)
def test_bad_arguments(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)
