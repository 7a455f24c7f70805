"""A Wasserstein GAN as a `keras.Model`: weight clipping, gradient penalty or SN.

One ``train_step`` performs ``n_critic`` critic updates followed by one
generator update, so ``fit`` counts generator iterations.

Data contract: every element of the training dataset is one tensor (or an
``(x,)`` tuple) holding ``n_critic * batch_size`` real samples. The step splits
it into ``n_critic`` critic batches of ``batch_size`` samples each, so that
every critic iteration sees a fresh real batch (and fresh noise). The split is
strided: critic batch ``k`` holds samples ``k, k + n_critic, k + 2 n_critic,
...`` of the element. With shuffled data this is as good as a contiguous
split, and it makes a step on ``R`` replicas (each replica gets a contiguous
``1/R`` slice of the element) see exactly the same critic batches as a step
on one device. Batch the dataset with ``drop_remainder=True``; an element
whose size is not a multiple of ``n_critic`` raises an error that says so.

The trainer is kept in small pieces, one job each:

- :mod:`~keras_sngan.wgan.construction`: argument, model and optimizer checks;
- :mod:`~keras_sngan.wgan.critic_step`: critic objective, gradient penalty,
  clipping, one critic update;
- :mod:`~keras_sngan.wgan.autodiff`: gradients, input gradients and
  optimizer updates on TensorFlow, JAX and PyTorch;
- :mod:`~keras_sngan.wgan.generator_step`: noise, one generator update;
- :mod:`~keras_sngan.wgan.layer_stats`: per-layer weight-gradient norms;
- :mod:`~keras_sngan.wgan.distribution`: replicas, global-batch random draws,
  loss scaling by the number of replicas;
- :mod:`~keras_sngan.wgan.model`: the `WGAN` class that puts them together.

The step runs on the TensorFlow, JAX and PyTorch backends (on JAX as one
pure, XLA-compiled function: see `WGAN.stateless_train_step`). The modules
import TensorFlow only inside the functions that use it (``tf.distribute``
on the TensorFlow backend), so no backend needs it installed.
"""

from keras_sngan.model_layers import find_spectral_normalization_layers, kernel_layers
from keras_sngan.wgan.construction import LIPSCHITZ_METHODS
from keras_sngan.wgan.model import LOSS_METRICS, WGAN

__all__ = [
    "LIPSCHITZ_METHODS",
    "LOSS_METRICS",
    "WGAN",
    "find_spectral_normalization_layers",
    "kernel_layers",
]
