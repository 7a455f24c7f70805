"""Find the layers of a Keras model that WGAN training cares about.

Pure layer introspection (no TensorFlow import), shared by the WGAN step, the
diagnostics callbacks and the experiments, so that none of them has to import
another just to list layers.
"""

from __future__ import annotations


def find_spectral_normalization_layers(model):
    """Return every `SpectralNormalization` layer nested anywhere in `model`."""
    from keras_sngan.spectral_normalization import SpectralNormalization

    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, SpectralNormalization)
    ]


def find_batch_normalization_layers(model):
    """Return every `keras.layers.BatchNormalization` nested anywhere in `model`.

    Batch normalization mixes the samples of a batch, so a per-sample input
    gradient (the gradient penalty's ``||grad_x f(x_hat)||``) is not defined
    for a critic that contains it. Layer and group normalization work per
    sample and are not listed.
    """
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def kernel_layers(model):
    """List ``(name, layer, kernel_variable)`` for each linear layer of `model`.

    A `SpectralNormalization` wrapper is reported under its own name with the
    raw kernel of the layer it wraps; the wrapped layer is not listed again.
    Linear layers are those `SpectralNormalization` supports (Dense, Conv*,
    Conv*Transpose, DepthwiseConv*, Embedding).
    """
    from keras_sngan import linear_maps
    from keras_sngan.spectral_normalization import SpectralNormalization

    found, wrapped = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, SpectralNormalization):
            wrapped.add(id(layer.layer))
            found.append((layer.name, layer, linear_maps.kernel_variable(layer.layer)))
        elif id(layer) not in wrapped and linear_maps.layer_kind(layer) is not None:
            found.append((layer.name, layer, linear_maps.kernel_variable(layer)))
    return found
