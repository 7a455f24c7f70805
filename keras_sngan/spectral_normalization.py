"""Spectral normalization as a reparametrization (Miyato et al. 2018), for Keras 3."""

from __future__ import annotations

import keras
from keras import ops

from keras_sngan import linear_maps as lm
from keras_sngan.validation import check_int, check_number

METHODS = ("reshape", "bidirectional", "operator")


@keras.saving.register_keras_serializable(package="keras_sngan")
class SpectralNormalization(keras.layers.Wrapper):
    """Compute a layer with ``scale * W / sigma(W)`` instead of its kernel ``W``.

    In every forward pass the wrapped layer runs with the normalized kernel
    ``scale * W / sigma(W)``, computed from the raw kernel; gradients flow
    through ``W / sigma(W)`` with the power-iteration vectors held constant
    (as in Miyato et al. and ``torch.nn.utils.parametrizations.spectral_norm``).
    The raw kernel variable is never overwritten by a forward pass, unlike
    ``keras.layers.SpectralNormalization``, which assigns ``W / sigma`` into the
    kernel in place (so its gradient skips ``sigma``, the float32 master kernel
    is rounded under mixed precision, and inference uses a drifting sigma).

    The power-iteration vectors are non-trainable float32 weights. They are
    warmed up when the layer is built (``warmup_iterations`` steps, so sigma is
    right from the first call), advanced by ``power_iterations`` steps only
    when the layer is called with ``training=True``, and at inference sigma is
    recomputed from the stored vectors: an exported model uses exactly the
    normalized kernel it was trained with.

    Methods:

    - ``"reshape"`` (default): sigma of the kernel reshaped to
      ``(-1, out_features)`` (Miyato et al.). For a convolution this is *not*
      its operator norm: the true norm can be up to ``sqrt(kh * kw)`` times
      larger (measured at initialization on Miyato's standard CNN critic at
      32x32: 1.16x to 2.31x per conv layer, 15.4x for the product bound of the
      whole critic), so a "reshape" conv critic is not 1-Lipschitz.
    - ``"bidirectional"``: the mean of the spectral norms of the kernel's
      fan-in reshape ``(kh*kw*cin, cout)`` and fan-out reshape
      ``(kh*kw*cout, cin)`` (BSN, Lin et al. 2021); with ``scale`` it is BSSN.
      For Dense and Embedding both reshapes are the same matrix.
    - ``"operator"``: the operator norm of the layer's linear map, by power
      iteration through the convolution and its adjoint with the layer's own
      strides, padding and dilation, at the input shape the layer was built
      with (which must be fully known). The normalized layer is then really
      ``scale``-Lipschitz. For Dense and Embedding it equals ``"reshape"``.

    Works with Dense, Conv1D/2D/3D, Conv1D/2D/3DTranspose, DepthwiseConv1D/2D
    and Embedding, under mixed precision (sigma and vectors in float32, the
    master kernel is never rounded), ``jit_compile=True``,
    ``tf.distribute.MirroredStrategy`` (the vectors depend only on the kernel,
    so replicas compute identical vectors), ``.keras`` save/load and
    ``model.export()``.

    Args:
        layer: the Keras layer to wrap (see supported types above).
        power_iterations: power-iteration steps per training call (>= 1).
        method: ``"reshape"``, ``"bidirectional"`` or ``"operator"``.
        scale: positive factor ``c``: the layer computes with ``c * W / sigma``.
        warmup_iterations: power-iteration steps run once at build (>= 1).
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``...).

    Example:
        >>> critic = keras.Sequential([
        ...     keras.Input((32, 32, 3)),
        ...     SpectralNormalization(keras.layers.Conv2D(64, 3, padding="same")),
        ...     keras.layers.LeakyReLU(0.1),
        ...     keras.layers.Flatten(),
        ...     SpectralNormalization(keras.layers.Dense(1)),
        ... ])

    Reference:
        Miyato, Kataoka, Koyama, Yoshida. "Spectral Normalization for Generative
        Adversarial Networks", ICLR 2018. Lin, Sekar, Fanti. "Why Spectral
        Normalization Stabilizes GANs: Analysis and Improvements", NeurIPS 2021.
    """

    def __init__(
        self,
        layer,
        power_iterations: int = 1,
        method: str = "reshape",
        scale: float = 1.0,
        warmup_iterations: int = 50,
        **kwargs,
    ):
        # The wrapper reads the float32 master kernel itself; the wrapped layer
        # casts the normalized kernel to its compute dtype in its own call.
        kwargs["autocast"] = False
        super().__init__(layer, **kwargs)
        self._kind = lm.layer_kind(layer)
        if self._kind is None:
            raise ValueError(
                f"SpectralNormalization cannot wrap a {type(layer).__name__} "
                f"(layer {layer.name!r}). Supported layer types: {lm.SUPPORTED_LAYERS}."
            )
        if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
            raise ValueError(
                f"SpectralNormalization cannot wrap quantized or LoRA-enabled layer "
                f"{layer.name!r}: its effective kernel is not a single variable."
            )
        self.power_iterations = check_int("power_iterations", power_iterations, 1)
        self.warmup_iterations = check_int("warmup_iterations", warmup_iterations, 1)
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, received {method!r}.")
        self.method = method
        self.scale = check_number("scale", scale)

    def build(self, input_shape=None):
        if self._kind in lm.CONVOLUTIONS and self.method == "operator":
            spatial = None if input_shape is None else tuple(input_shape)[1:]
            if not spatial or any(d is None for d in spatial):
                raise ValueError(
                    f"SpectralNormalization(method='operator') on {type(self.layer).__name__} "
                    f"{self.layer.name!r} needs a fully known input shape (batch axis aside): "
                    f"the operator norm of a convolution depends on the input size. Received "
                    f"input_shape={input_shape}. Build the model with a fixed input, e.g. "
                    "keras.Input(shape=(32, 32, 3)), or use method='reshape'."
                )
        super().build(input_shape)
        self._kernel = lm.kernel_variable(self.layer)
        self._operators = lm.operators_for(self.layer, self._kind, self.method, input_shape)
        self._vectors = []
        for i, operator in enumerate(self._operators):
            suffix = "" if len(self._operators) == 1 else f"_{i}"
            self._vectors.append(
                tuple(
                    self.add_weight(
                        name=f"sn_{side}{suffix}",
                        shape=shape,
                        initializer=keras.initializers.RandomNormal(),
                        dtype="float32",
                        trainable=False,
                        aggregation="only_first_replica",  # replicas compute identical vectors
                    )
                    for side, shape in (("u", operator.u_shape), ("v", operator.v_shape))
                )
            )
        self._advance(self._master_kernel(), self.warmup_iterations)
        self.built = True

    def _master_kernel(self):
        """The raw kernel in float32 (read without autocast, never rounded)."""
        return ops.cast(self._kernel.value, "float32")

    def _stored_vectors(self):
        return [(u.value, v.value) for u, v in self._vectors]

    def _advance(self, kernel, iterations):
        """Run power iteration from the stored vectors, store and return the new ones."""
        kernel = ops.stop_gradient(kernel)  # so the new vectors are constants too
        vectors = []
        for operator, (u_var, v_var) in zip(self._operators, self._vectors):
            u, v = operator.iterate(kernel, u_var.value, v_var.value, iterations)
            u_var.assign(u)
            v_var.assign(v)
            vectors.append((u, v))
        return vectors

    def _sigma(self, kernel, vectors):
        """Mean of ``<v, A(kernel) u>`` over the method's operators.

        ``vectors`` are constants (variable reads, or computed from a stopped
        kernel), so the gradient of sigma is ``v u^T``, as in Miyato et al.
        """
        sigmas = [operator.sigma(kernel, u, v) for operator, (u, v) in zip(self._operators, vectors)]
        return sigmas[0] if len(sigmas) == 1 else ops.mean(ops.stack(sigmas))

    def _normalize(self, kernel, vectors):
        sigma = ops.maximum(self._sigma(kernel, vectors), lm.EPSILON)
        return ops.cast(kernel * (self.scale / sigma), self._kernel.dtype)

    def _check_built(self, what):
        if not self.built:
            raise ValueError(
                f"SpectralNormalization {self.name!r}: `{what}` needs a built layer; "
                "call it on an input (or build the model) first."
            )

    def sigma(self):
        """The current spectral-norm estimate (float32 scalar), from the stored vectors."""
        self._check_built("sigma()")
        return self._sigma(self._master_kernel(), self._stored_vectors())

    def normalized_kernel(self):
        """``scale * W / sigma(W)``: the kernel the layer computes with at inference."""
        self._check_built("normalized_kernel()")
        return self._normalize(self._master_kernel(), self._stored_vectors())

    def call(self, inputs, training=None):
        kernel = self._master_kernel()
        if training:
            vectors = self._advance(kernel, self.power_iterations)
        else:
            vectors = self._stored_vectors()
        normalized = self._normalize(kernel, vectors)
        with keras.StatelessScope(state_mapping=[(self._kernel, normalized)]):
            return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            power_iterations=self.power_iterations,
            method=self.method,
            scale=self.scale,
            warmup_iterations=self.warmup_iterations,
        )
        return config
