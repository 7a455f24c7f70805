"""The real 8x8 handwritten digits that ship inside scikit-learn, with a fixed split."""

from __future__ import annotations

import numpy as np

from keras_sngan.datasets.toy import TOY_DATASETS

BUILTIN_DATASETS = TOY_DATASETS + ("digits",)
"""Names of all datasets that need no download (the toy sets and the digits)."""

DIGITS_HELDOUT_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
"""The digits held-out split is fixed (independent of the training ``seed``)."""


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 8x8 scikit-learn digits with a fixed stratified 80/20 split.

    1797 real handwritten digits (UCI optical recognition set, values 0..16)
    scaled to ``[-1, 1]`` as ``x / 8 - 1``. The split uses
    ``train_test_split(test_size=0.2, stratify=labels, random_state=0)``,
    so every caller sees the same 1437 training and 360 held-out images.

    Returns:
        ``(x_train, y_train, x_heldout, y_heldout)``; images are float32 of
        shape ``(n, 8, 8, 1)``, labels int64 in ``0..9``.

    Example:
        >>> x_train, y_train, x_test, y_test = load_digits_split()
        >>> x_train.shape, x_test.shape
        ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=DIGITS_HELDOUT_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return x_train, y_train, x_test, y_test
