"""Callbacks for WGAN training: fail fast on NaN, record per-layer diagnostics."""

from __future__ import annotations

import csv
import math

import keras
import numpy as np


class NonFiniteLossError(FloatingPointError):
    """Raised by `TerminateOnNonFinite` when a logged loss is NaN or infinite."""


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stop training with an error as soon as a watched metric is NaN or inf.

    `keras.callbacks.TerminateOnNaN` only prints a message and sets
    ``stop_training``; this callback raises `NonFiniteLossError` naming the
    metric, its value, the epoch, the batch and the global step, so a broken
    run fails loudly (also inside a pipeline). `keras_sngan.wgan.WGAN.fit`
    adds it by default.

    Which metrics are watched: ``monitor`` if given; otherwise the model's
    ``loss_metric_names`` if it declares them (a `keras_sngan.wgan.WGAN`
    watches its losses, not its per-layer gradient norms, which are not
    finite on a routine mixed-precision step that the loss-scale optimizer skips);
    otherwise every logged metric.

    Args:
        monitor: names of the logged metrics to check; ``None``: see above.

    Example:
        >>> from keras_sngan import WGAN, datasets, models
        >>> data = datasets.load_dataset("8gaussians", batch_size=32, n_critic=5, seed=0)
        >>> gan = WGAN(models.toy_critic(width=16, lipschitz="sn"), models.toy_generator(width=16),
        ...            latent_dim=2, lipschitz="sn")
        >>> gan.compile()
        >>> stop = TerminateOnNonFinite(monitor=["critic_loss", "generator_loss"])
        >>> history = gan.fit(data.train, epochs=1, steps_per_epoch=2, callbacks=[stop], verbose=0)
    """

    def __init__(self, monitor=None):
        super().__init__()
        self.monitor = None if monitor is None else list(monitor)
        self._epoch = 0
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _watched(self):
        if self.monitor is not None:
            return self.monitor
        return getattr(self.model, "loss_metric_names", None)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        watched = self._watched()
        for name, value in (logs or {}).items():
            if watched is not None and name not in watched:
                continue
            value = float(np.asarray(value))
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"Training stopped: metric {name!r} became {value} at epoch "
                    f"{self._epoch + 1}, batch {batch + 1} (step {self._step} of this fit call). "
                    "Lower the learning rate, check the data for NaN/inf, or use a Lipschitz "
                    "constraint (clip/gp/sn)."
                )


def effective_kernel(layer):
    """Return the kernel `layer` really applies, as a numpy array.

    For a `SpectralNormalization` wrapper this is ``normalized_kernel()``
    (``scale * W / sigma``); for other linear layers the raw kernel.
    """
    from keras_sngan.linear_maps import kernel_variable

    if hasattr(layer, "normalized_kernel"):
        return keras.ops.convert_to_numpy(layer.normalized_kernel())
    return keras.ops.convert_to_numpy(kernel_variable(layer).value)


def spectral_norm(kernel):
    """Largest singular value of ``kernel`` reshaped to ``(-1, out)`` (exact SVD)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


class LayerDiagnostics(keras.callbacks.Callback):
    """Record per-layer spectral norms (and gradient norms) of a WGAN's critic.

    Every ``every`` generator iterations, for each linear layer of the critic
    (see `keras_sngan.model_layers.kernel_layers`), records the spectral norm of its
    effective kernel (exact SVD of the kernel reshaped to ``(-1, out)``, outside
    the compiled step) and, if the WGAN was built with
    ``track_layer_stats=True``, the weight-gradient norm logged by the step as
    ``layer_grad_norm/<layer>``. Rows go to ``self.records`` (a list of dicts
    with keys ``iteration, layer, depth, spectral_norm, grad_norm``) and, if
    ``csv_path`` is given, to a CSV file when training ends.

    The default training step pays nothing for this: spectral norms are
    computed here, and gradient norms only exist when opted in.

    Args:
        every: record every ``every`` batches (generator iterations).
        csv_path: optional path of a CSV file to write.

    Example:
        >>> from keras_sngan import WGAN, datasets, models
        >>> data = datasets.load_dataset("8gaussians", batch_size=32, n_critic=5, seed=0)
        >>> gan = WGAN(models.toy_critic(width=16, lipschitz="sn"), models.toy_generator(width=16),
        ...            latent_dim=2, lipschitz="sn", track_layer_stats=True)
        >>> gan.compile()
        >>> diag = LayerDiagnostics(every=2, csv_path="layers.csv")
        >>> history = gan.fit(data.train, epochs=1, steps_per_epoch=4, callbacks=[diag], verbose=0)
        >>> sorted(diag.records[0])
        ['depth', 'grad_norm', 'iteration', 'layer', 'spectral_norm']
        >>> len(diag.records)   # 4 linear layers at iterations 0 and 2
        8
    """

    def __init__(self, every=1, csv_path=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"LayerDiagnostics: `every` must be an integer >= 1, received {every!r}.")
        self.every = every
        self.csv_path = csv_path
        self.records = []
        self._iteration = 0

    def on_train_batch_end(self, batch, logs=None):
        self._iteration += 1
        if (self._iteration - 1) % self.every:
            return
        from keras_sngan.model_layers import kernel_layers

        logs = logs or {}
        for depth, (name, layer, _) in enumerate(kernel_layers(self.model.critic)):
            grad = logs.get(f"layer_grad_norm/{name}")
            self.records.append(
                {
                    "iteration": self._iteration,
                    "layer": name,
                    "depth": depth,
                    "spectral_norm": spectral_norm(effective_kernel(layer)),
                    "grad_norm": float("nan") if grad is None else float(np.asarray(grad)),
                }
            )

    def on_train_end(self, logs=None):
        if self.csv_path is None or not self.records:
            return
        with open(self.csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.records[0]))
            writer.writeheader()
            writer.writerows(self.records)
