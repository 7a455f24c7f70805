"""Inception FID from local InceptionV3 weights (never downloaded)."""

from __future__ import annotations

import numpy as np

from keras_sngan.metrics.frechet import frechet_distance_from_features


def inception_feature_extractor(weights_path: str, *, batch_size: int = 32):
    """Pool-3 features of InceptionV3 loaded from local weights.

    Images in ``[-1, 1]`` (the range InceptionV3's own preprocessing
    produces) are resized to 299x299 bilinearly, and grayscale images are
    repeated to 3 channels.

    Args:
        weights_path: path to InceptionV3 weights **without** the top
            classifier, e.g. Keras' ImageNet file
            ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``. Note
            these Keras ImageNet weights differ from the TF-slim graph used by
            the reference FID code, so values are close to but not identical
            with published FIDs.
        batch_size: images per forward pass.

    Returns:
        A function ``images -> float64 array (n, 2048)``.
    """
    import os

    import keras

    if not os.path.exists(weights_path):
        raise FileNotFoundError(
            f"inception_feature_extractor: no weights file at {weights_path!r}; pass a local "
            "copy of the InceptionV3 no-top weights (this package never downloads them)."
        )
    model = keras.applications.InceptionV3(
        include_top=False, weights=weights_path, pooling="avg", input_shape=(299, 299, 3)
    )

    def extract(images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "inception_feature_extractor: images must be (n, h, w, 1 or 3), received "
                f"shape {images.shape}."
            )
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = keras.ops.image.resize(images[start : start + batch_size], (299, 299))
            if batch.shape[-1] == 1:
                batch = keras.ops.repeat(batch, 3, axis=-1)
            outputs.append(keras.ops.convert_to_numpy(model(batch, training=False)))
        return np.concatenate(outputs).astype(np.float64)

    return extract


def inception_fid(generated, real, weights_path: str, *, batch_size: int = 32) -> float:
    """Real FID (Heusel et al. 2017) from local InceptionV3 weights.

    Use at least 2048 images per side (the feature size) for a meaningful
    value; 10,000 or more is the usual practice.

    Args:
        generated: generated images ``(n, h, w, c)`` in ``[-1, 1]``.
        real: real images in ``[-1, 1]``.
        weights_path: see :func:`inception_feature_extractor`.
        batch_size: images per forward pass.

    Returns:
        FID as a float.

    Reference:
        Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge
        to a Local Nash Equilibrium", NeurIPS 2017.
    """
    extract = inception_feature_extractor(weights_path, batch_size=batch_size)
    return frechet_distance_from_features(extract(generated), extract(real))
