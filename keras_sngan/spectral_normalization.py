"""Spectral normalization as a reparametrization (Miyato et al. 2018), for Keras 3."""

from __future__ import annotations

import math

import keras
from keras import ops
# Not exported by keras.backend: the scope objects Keras' own Layer.__call__ uses.
from keras.src.backend import AutocastScope, get_keras_mask, get_stateless_scope, in_stateless_scope, set_keras_mask

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

    When a float32 input is no larger than the kernel (a Dense layer whose
    batch is no wider than its output), the wrapped layer runs with the raw
    kernel on ``x * scale / sigma`` instead: the same function (the layers
    are linear in their input before the bias) and the same gradient, at a
    lower cost.

    The power-iteration vectors are non-trainable float32 weights. Their
    initial value is already warmed up (``warmup_iterations`` steps from
    random vectors, run when Keras initializes the variables), so sigma is
    right from the first call however the layer was built: eagerly, through
    ``keras.Input``, or symbolically inside ``predict`` / ``fit``. They are
    advanced by ``power_iterations`` steps only when the layer is called with
    ``training=True``, and at inference sigma is
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
        # The wrapper reads the float32 master kernel itself (autocast off, so
        # not even an enclosing mixed-precision model rounds it); the wrapped
        # layer casts the normalized kernel to its compute dtype in its own call.
        kwargs["autocast"] = False
        dtype_given = kwargs.get("dtype") is not None
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
        # One dtype policy for wrapper and wrapped layer: a policy given to the
        # wrapper decides the wrapped layer's compute dtype; otherwise the
        # wrapper takes the wrapped layer's own (by default the global) policy.
        if dtype_given:
            layer.dtype_policy = self.dtype_policy
        else:
            self.dtype_policy = layer.dtype_policy
        # Masks pass through exactly as the wrapped layer handles them.
        self.supports_masking = layer.supports_masking

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
        # Matrix operators (every method on Dense/Embedding, reshape and
        # bidirectional on convolutions) know d sigma / d W in closed form.
        self._closed_form = all(op.direction is not None for op in self._operators)
        self._kernel_size = math.prod(self._kernel.shape)
        self._vectors = []
        self._warm_starts = []
        # Set by the initializers when Keras creates the vectors inside a
        # TensorFlow trace (see _WarmStart): the first call then warms them.
        self._warm_in_call = False
        for i, operator in enumerate(self._operators):
            suffix = "" if len(self._operators) == 1 else f"_{i}"
            warm_start = _WarmStart(self, i)
            warm_start.prepare()
            self._warm_starts.append(warm_start)
            self._vectors.append(
                tuple(
                    self.add_weight(
                        name=f"sn_{side}{suffix}",
                        shape=shape,
                        initializer=initializer,
                        dtype="float32",
                        trainable=False,
                        aggregation="only_first_replica",  # replicas compute identical vectors
                    )
                    for side, shape, initializer in (
                        ("u", operator.u_shape, warm_start.u_initializer),
                        ("v", operator.v_shape, warm_start.v_initializer),
                    )
                )
            )
        self.built = True

    def _warm_start(self, index, u, v, in_graph=False):
        """``warmup_iterations`` power-iteration steps of operator ``index`` from ``(u, v)``.

        ``in_graph``: inside a traced function, as one loop op. Eagerly, run
        as one compiled loop where that is faster: on TensorFlow for long
        warm-ups (a graph function traces in a fraction of 100 eager steps);
        on JAX always (each eager JAX op compiles once per new shape, so even
        matrix warm-ups of 50 steps cost more eagerly: nine Dense layers of new
        shapes built in 3.6 s eagerly against 2.3 s compiled, a 4-layer
        256-wide MLP in 1.9 s against 1.7 s; and each eager step of a
        convolution's adjoint re-traces a ``jax.vjp``).
        """
        operator = self._operators[index]
        kernel = ops.stop_gradient(self._master_kernel())
        if in_graph:
            return operator.iterate_loop(kernel, u, v, self.warmup_iterations)
        backend = keras.backend.backend()
        compile_loop = backend == "jax" or (backend == "tensorflow" and self.warmup_iterations >= 100)
        if compile_loop:
            return operator.iterate_compiled(kernel, u, v, self.warmup_iterations)
        return operator.iterate(kernel, u, v, self.warmup_iterations)

    def _warm_cold_vectors(self):
        """Warm up vectors that Keras created inside a TensorFlow trace, on the first call.

        Such vectors start at zero (a value that power iteration never
        produces). In a graph this is one ``cond`` per operator on ``u == 0``
        and an assignment of the (possibly unchanged) vectors after it: under
        ``tf.distribute`` a mirrored variable may not be assigned inside a
        ``cond``. It is traced into the functions traced before an eager call
        has warmed the vectors; after one, the check is gone.
        """
        in_graph = _in_tensorflow_trace()
        for (u_var, v_var), warm_start in zip(self._vectors, self._warm_starts):
            with AutocastScope(None):
                u, v = u_var.value, v_var.value
            cold = ops.all(ops.equal(u, 0.0))
            u, v = ops.cond(cold, lambda w=warm_start: w.warm_pair(in_graph), lambda u=u, v=v: (u, v))
            u_var.assign(u)
            v_var.assign(v)
        if not in_graph and not in_stateless_scope():  # the assignments above have happened
            self._warm_in_call = False

    def _master_kernel(self):
        """The raw kernel in float32 (read without autocast, never rounded).

        Inside an outer ``StatelessScope`` (``model.stateless_call``, the JAX
        trainer) this is the scope's value of the kernel.
        """
        with AutocastScope(None):
            return ops.cast(self._kernel.value, "float32")

    def _stored_vectors(self):
        with AutocastScope(None):
            return [(u.value, v.value) for u, v in self._vectors]

    def _advance(self, kernel, iterations):
        """Power iteration from the stored vectors; store the new ones.

        Returns the new vectors, ``sigma`` from the last step (``||A u||``,
        which equals ``<v, A u>`` for the returned pair) as a plain value, and
        ``1 / max(sigma, eps)`` (from the same step when there is one
        operator, else ``None``).
        """
        kernel = ops.stop_gradient(kernel)  # so the new vectors are constants too
        vectors, sigmas = [], []
        for operator, (u_var, v_var) in zip(self._operators, self._vectors):
            with AutocastScope(None):
                u, v = u_var.value, v_var.value
            u, v, sigma, inverse = operator.iterate_with_sigma(kernel, u, v, iterations)
            u_var.assign(u)
            v_var.assign(v)
            vectors.append((u, v))
            sigmas.append(sigma)
        return vectors, _mean(sigmas), (inverse if len(sigmas) == 1 else None)

    def _sigma(self, kernel, vectors):
        """Mean of ``<v, A(kernel) u>`` over the method's operators.

        ``vectors`` are constants (variable reads, or computed from a stopped
        kernel), so the gradient of sigma is ``v u^T``, as in Miyato et al.
        """
        return _mean([operator.sigma(kernel, u, v) for operator, (u, v) in zip(self._operators, vectors)])

    def _normalize(self, kernel, vectors, sigma=None, inverse=None):
        """``scale * kernel / sigma``, differentiable in ``kernel`` with ``vectors`` held constant.

        For matrix operators the gradient is written in closed form: sigma is
        linear in the kernel, ``sigma = <W, D>`` with ``D = A^T(u v^T)``, so
        ``d L / d W = scale * (G - <G, W / sigma> D) / sigma`` for the incoming
        gradient ``G``: a handful of fused ops instead of the autodiff graph of
        the power-iteration estimate. ``sigma`` may be passed as a value (from
        the last power-iteration step); it must equal ``<W, D>``. So may
        ``inverse``, which must equal ``1 / max(sigma, eps)``.
        """
        if not self._closed_form:
            return ops.cast(kernel * self._autodiff_factor(kernel, vectors), self._kernel.dtype)
        # sigma gets no gradient from the custom gradient: no stop_gradient needed.
        sigma, inverse, flat = self._closed_form_args(kernel, vectors, sigma, inverse)
        normalized = _closed_form_normalize(self._operators, self.scale, kernel, sigma, inverse, *flat)
        return ops.cast(normalized, self._kernel.dtype)

    def _autodiff_factor(self, kernel, vectors):
        """``scale / max(sigma, eps)`` differentiated by autodiff (operators without a closed form)."""
        return self.scale / ops.maximum(self._sigma(kernel, vectors), lm.EPSILON)

    def _closed_form_args(self, kernel, vectors, sigma, inverse):
        """``sigma``, ``1 / max(sigma, eps)`` (each computed unless given) and the flattened vectors."""
        if sigma is None:
            sigma = self._sigma(kernel, vectors)
        if inverse is None:
            inverse = 1.0 / ops.maximum(sigma, lm.EPSILON)
        return sigma, inverse, [t for pair in vectors for t in pair]

    def _scales_inputs(self, inputs):
        """Whether to multiply the inputs by ``scale / sigma`` instead of the kernel.

        Every supported layer but Embedding is linear in its input before the
        bias, so ``layer(x * f)`` with the raw kernel ``W`` equals ``layer(x)``
        with the kernel ``f * W``, and ``d L / d f`` comes out of the input's
        gradient (see :func:`_closed_form_scale_inputs`). That is cheaper when the input is
        no larger than the kernel (a dense layer whose batch is no larger than
        its output width): the backward pass adds one rank-one update to the
        kernel gradient instead of five kernel-sized passes (TensorFlow graph
        mode; XLA fuses the elementwise work of either).

        Only for float32 inputs of fully known shape (every dimension a
        Python int: not ``None``, not a symbolic dimension of JAX's export)
        and a float32 compute
        dtype: under float16, ``x * f`` can overflow where ``W * f`` cannot
        (``f`` reaches ``1 / eps`` for a zero kernel). The choice changes the
        cost, not the result: both paths compute the same function and the
        same gradient (tested against the same oracle).
        """
        if self._kind == lm.EMBEDDING:
            return False
        shape = getattr(inputs, "shape", None)
        # None (TensorFlow) or a symbolic dimension (JAX's shape polymorphism, e.g. under export): unknown
        if shape is None or not all(isinstance(d, int) for d in shape):
            return False
        if keras.backend.standardize_dtype(inputs.dtype) != "float32" or self.layer.compute_dtype != "float32":
            return False
        return math.prod(shape) <= self._kernel_size

    def _scaled_inputs(self, inputs, kernel, vectors, sigma=None, inverse=None):
        """``inputs * scale / sigma``, differentiable in ``kernel`` (vectors held constant) and in ``inputs``."""
        if self._closed_form:
            sigma, inverse, flat = self._closed_form_args(kernel, vectors, sigma, inverse)
            outputs = _closed_form_scale_inputs(self._operators, self.scale, inputs, kernel, sigma, inverse, *flat)
        else:
            outputs = inputs * self._autodiff_factor(kernel, vectors)
        mask = get_keras_mask(inputs)
        if mask is not None:
            set_keras_mask(outputs, mask)
        return outputs

    def _check_built(self, what):
        if not self.built:
            raise ValueError(
                f"SpectralNormalization {self.name!r}: `{what}` needs a built layer; "
                "call it on an input (or build the model) first."
            )

    def sigma(self):
        """The current spectral-norm estimate (float32 scalar), from the stored vectors."""
        self._check_built("sigma()")
        if self._warm_in_call:
            self._warm_cold_vectors()
        return self._sigma(self._master_kernel(), self._stored_vectors())

    def normalized_kernel(self):
        """``scale * W / sigma(W)``: the kernel the layer computes with at inference."""
        self._check_built("normalized_kernel()")
        if self._warm_in_call:
            self._warm_cold_vectors()
        return self._normalize(self._master_kernel(), self._stored_vectors())

    def call(self, inputs, training=None, mask=None):
        if self._warm_in_call:
            self._warm_cold_vectors()
        kernel = self._master_kernel()
        if training:
            vectors, sigma, inverse = self._advance(kernel, self.power_iterations)
        else:
            vectors, sigma, inverse = self._stored_vectors(), None, None
        if self._scales_inputs(inputs):
            # layer(x * f) with W is layer(x) with f * W (linear before the bias).
            inputs = self._scaled_inputs(inputs, kernel, vectors, sigma, inverse)
            normalized = kernel
        else:
            normalized = self._normalize(kernel, vectors, sigma, inverse)
        # Every variable of the wrapped layer at its current value (an outer
        # StatelessScope's, if any: a new scope does not chain to the outer
        # one), the kernel replaced by its normalized value (or left raw when
        # the inputs carry the factor).
        mapping = [(self._kernel, normalized)]
        with AutocastScope(None):  # the stored values, not casts: the wrapped layer casts
            mapping += [(w, w.value) for w in self.layer.variables if w is not self._kernel]
        outer = get_stateless_scope()
        kwargs = {}
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        if mask is not None and self.layer._call_has_mask_arg:
            kwargs["mask"] = mask
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            outputs = self.layer(inputs, **kwargs)
        # The wrapped layer's losses (activity regularizer) go where they would
        # have gone unwrapped: to the outer scope if it collects, else to the layer.
        if scope.losses and (outer is None or outer.collect_losses):
            self.layer.add_loss(list(scope.losses))
        return outputs

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

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


def _mean(values):
    return values[0] if len(values) == 1 else ops.mean(ops.stack(values))


def _closed_form_normalize(operators, scale, kernel, sigma, inverse, *flat_vectors):
    """``scale * kernel * inverse`` (``inverse = 1 / max(sigma, eps)``) with the gradient of ``W / <W, D>``.

    A ``keras.ops.custom_gradient`` (TensorFlow, JAX and PyTorch): the vectors,
    ``sigma`` and ``inverse`` are passed as arguments (JAX's custom gradients
    may not close over traced values) and get no gradient.

    The backward pass touches the kernel-sized arrays as few times as it can
    (in TensorFlow graph mode every elementwise op is one pass over the
    kernel, and every op costs a few microseconds of executor time): with
    ``W_sn = scale W / sigma`` already computed by the forward pass, the
    scalar ``<G, W / sigma> scale / sigma`` is ``<G, W_sn> / sigma``, and it is
    folded into the small vector ``u`` before the outer product ``D = u v^T``,
    so the result is ``(scale / sigma) G - D'``: five kernel-sized passes
    (``G * W_sn`` and its sum, the outer product, the scaling of ``G``, the
    subtraction).
    """

    @ops.custom_gradient
    def normalize(kernel, sigma, inverse, *flat):
        factor = inverse if scale == 1.0 else inverse * scale
        normalized = kernel * factor

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            upstream = ops.cast(upstream, "float32")
            # scale <G, W> / sigma^2 = <G, W_sn> / sigma: a scalar, zero where
            # the eps guard holds sigma constant. A fused multiply-sum: a
            # (1, n) @ (n, 1) matmul is ten times slower on TensorFlow's CPU kernels.
            coefficient = ops.where(sigma > lm.EPSILON, ops.sum(upstream * normalized) * inverse, 0.0)
            grad_kernel = upstream * factor - _direction(operators, flat, coefficient)
            return (grad_kernel, None, None, *([None] * len(flat)))

        return normalized, grad

    return normalize(kernel, sigma, inverse, *flat_vectors)


def _closed_form_scale_inputs(operators, scale, inputs, kernel, sigma, inverse, *flat_vectors):
    """``inputs * f`` (``f = scale * inverse``, ``inverse = 1 / max(sigma, eps)``) with the gradient of ``layer(x) with f * W``.

    For a layer linear in its input, ``L(layer(x * f; W))`` has
    ``d L / d f = <x, d L / d(x f)> = <G, W>`` (``G`` the gradient of the
    kernel the layer computes with), and ``f = scale / <W, D>`` has
    ``d f / d W = -f D / sigma``. So the input gradient is the incoming one
    times ``f``, and the kernel gets ``-<dx, x> f D / sigma`` on top of the
    gradient the wrapped layer gives it: the scalar folded into the small
    vector ``u`` before the outer product. One custom gradient (TensorFlow,
    JAX and PyTorch); the vectors, ``sigma`` and ``inverse`` get no gradient.
    """

    @ops.custom_gradient
    def scaled(inputs, kernel, sigma, inverse, *flat):
        factor = inverse if scale == 1.0 else inverse * scale

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            coefficient = ops.where(sigma > lm.EPSILON, -ops.sum(upstream * inputs) * factor * inverse, 0.0)
            return (upstream * factor, _direction(operators, flat, coefficient), None, None, *([None] * len(flat)))

        return inputs * factor, grad

    return scaled(inputs, kernel, sigma, inverse, *flat_vectors)


def _direction(operators, flat_vectors, coefficient):
    """``coefficient * d sigma / d W``: the mean of the operators' ``direction(u, v)``.

    ``direction`` is bilinear in ``(u, v)``, so the scalar (and the mean's
    ``1 / len(operators)``) scales the small vector ``u``, not the kernel-sized result.
    """
    if len(operators) > 1:
        coefficient = coefficient / len(operators)
    pairs = zip(flat_vectors[0::2], flat_vectors[1::2])
    directions = [op.direction(u * coefficient, v) for op, (u, v) in zip(operators, pairs)]
    direction = directions[0]
    for other in directions[1:]:
        direction = direction + other
    return direction


class _WarmStart:
    """Initializers of one operator's ``(u, v)`` pair: random vectors, then ``warmup_iterations`` steps.

    The warm-up is part of the vectors' *initial value*, not an assignment
    made after it, so it holds however Keras builds the layer:

    - eagerly (an eager call, ``model.build``, ``keras.Input``, loading a
      ``.keras`` file): :meth:`prepare` warms the pair up in ``build``, before
      the variables are created, and the initializers return it;
    - symbolically, inside a ``StatelessScope`` (``fit`` / ``predict`` /
      ``evaluate`` of an unbuilt model on JAX, and on TensorFlow under a
      ``tf.distribute`` strategy): Keras defers the initializers until the
      scope closes, when the kernel (created first) holds its value, and on
      JAX or PyTorch they warm up there. An assignment made during such a
      build is dropped with the scope;
    - on TensorFlow, wherever the initializers run later than ``build``
      (inside a ``tf.function`` trace, which is how ``fit`` / ``predict`` /
      ``evaluate`` build an unbuilt model without a strategy, or a deferred
      initialization): TensorFlow computes initial values with gradient
      recording paused (the operator method's adjoint needs it) and lifts
      them out of the function, which it cannot do for a value read from
      another variable (under XLA it then refuses the function). There the
      vectors start at zero, a value power iteration never produces, and
      the layer's first call warms them
      (:meth:`SpectralNormalization._warm_cold_vectors`).

    The random initializers are created up front, in the order the layer
    always created them, so the warmed vectors are the same on every path.
    """

    def __init__(self, layer, index):
        self._layer = layer
        self._index = index
        self._random_u = keras.initializers.RandomNormal()
        self._random_v = keras.initializers.RandomNormal()
        self._pending = {}

    def _random_pair(self):
        operator = self._layer._operators[self._index]
        return self._random_u(operator.u_shape, "float32"), self._random_v(operator.v_shape, "float32")

    def warm_pair(self, in_graph=False):
        """Random vectors warmed up on the layer's current kernel."""
        return self._layer._warm_start(self._index, *self._random_pair(), in_graph=in_graph)

    def prepare(self):
        """Warm the pair up now if the kernel has its value (an eager build)."""
        if not in_stateless_scope() and not _in_tensorflow_trace():
            self._pending = dict(zip("uv", self.warm_pair()))

    def _initial(self, side, shape):
        if side in self._pending:
            return self._pending.pop(side)
        if in_stateless_scope():
            # A placeholder for shape inference (Keras reads a variable whose
            # initialization it deferred): no warm-up, nothing kept.
            return self._random_pair()["uv".index(side)]
        if keras.backend.backend() == "tensorflow":
            self._layer._warm_in_call = True
            return ops.zeros(shape, "float32")
        # A deferred initialization on JAX / PyTorch: warm up here; u comes first.
        self._pending = dict(zip("uv", self.warm_pair()))
        return self._pending.pop(side)

    def u_initializer(self, shape, dtype=None):
        return self._initial("u", shape)

    def v_initializer(self, shape, dtype=None):
        return self._initial("v", shape)


def _in_tensorflow_trace():
    """Whether TensorFlow is tracing a graph (a ``tf.function``), not executing eagerly."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()
