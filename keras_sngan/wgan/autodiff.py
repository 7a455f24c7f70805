"""Gradients and updates of a WGAN step on every Keras backend.

A WGAN step takes gradients three ways: of the critic objective with respect
to the critic's weights, of the generator objective with respect to the
generator's, and, for the gradient penalty, of the critic's scores with
respect to its *input*, inside the critic objective (a gradient of a
gradient). Keras 3 has no backend-neutral gradient op (keras-team/keras
#19220), so this module is the one place that knows how each backend does it:

- **TensorFlow:** `tf.GradientTape` (nested tapes for the penalty).
- **JAX:** `jax.value_and_grad` / `jax.grad` of a pure function. JAX cannot
  see a Keras variable's assignment, so the function opens a
  `keras.StatelessScope` that maps *every* variable the step may read
  (both models, the noise seed, both optimizers) to its current value, and
  returns what the call assigned (SN power-iteration vectors,
  BatchNormalization statistics, dropout and noise seeds) as auxiliary
  output; the caller's scope then receives the assignments. A scope does not
  chain to an enclosing one, so the whole mapping is needed, not just the
  differentiated weights. The trainer's step (`WGAN.train_step` on JAX) runs
  inside one such scope over the trainer's state, so no Python-side mutation
  reaches the variables until Keras writes the returned state back.
- **PyTorch:** `torch.autograd.grad`, with ``create_graph=True`` for the
  penalty so the critic update differentiates through it.

Every function here keeps the semantics of the TensorFlow tape: assignments
made inside a differentiated call happen (they are not rolled back), and the
returned gradients are those of the value returned.
"""

from __future__ import annotations

import keras
from keras import ops


def backend():
    return keras.backend.backend()


def _current_values(variables):
    """Each variable's value in the current scope (raw storage, no autocast)."""
    from keras.src.backend.common.variables import AutocastScope

    with AutocastScope(None):
        return [v.value for v in variables]


def _jax_pure(fn, variables, state_variables):
    """``fn`` as a pure function of the values of ``variables`` (JAX).

    Returns ``pure(values, *args) -> (out, (aux, updates))`` where
    ``updates`` are the values of ``state_variables`` (a list) after the call.
    """

    def pure(values, *args):
        # Every state variable at its current value, the differentiated ones
        # at the traced values (a dict keeps the last value per variable).
        mapping = dict(zip(map(id, state_variables), zip(state_variables, _current_values(state_variables))))
        mapping.update(zip(map(id, variables), zip(variables, values)))
        with keras.StatelessScope(state_mapping=list(mapping.values()), collect_losses=True) as scope:
            out, aux = fn(*args)
        updates = [scope.get_current_value(v) for v in state_variables]
        return out, (aux, updates)

    return pure


def _write_back(state_variables, updates, skip=()):
    """Assign the values a pure call produced (into the caller's scope, if any)."""
    skip = {id(v) for v in skip}
    for variable, value in zip(state_variables, updates):
        if value is not None and id(variable) not in skip:
            variable.assign(value)


def value_and_grad(fn, variables, state_variables):
    """``fn() -> (loss, aux)``; return ``(loss, aux, d loss / d variables)``.

    Args:
        fn: computes a float scalar ``loss`` and any auxiliary structure from
            the variables' current values; it may assign variables.
        variables: the trainable variables to differentiate with respect to.
        state_variables: a callable returning every variable ``fn`` may
            read or assign; called on JAX only, to map them into the pure
            function (see the module doc).
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = fn()
        return loss, aux, tape.gradient(loss, variables)
    if name == "jax":
        import jax

        state_variables = list(state_variables())
        pure = _jax_pure(fn, variables, state_variables)
        (loss, (aux, updates)), grads = jax.value_and_grad(pure, has_aux=True)(
            _current_values(variables)
        )
        _write_back(state_variables, updates, skip=variables)
        return loss, aux, grads
    if name == "torch":
        import torch

        loss, aux = fn()
        params = [v.value for v in variables]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
        return loss, aux, grads
    raise RuntimeError(f"WGAN: the {name!r} backend has no gradient implementation here.")


def input_gradient(fn, x, state_variables):
    """``d fn(x) / d x`` for a scalar ``fn``, differentiable again (for the penalty).

    The returned gradient carries the dependence on the weights ``fn``
    reads, so an enclosing `value_and_grad` differentiates through it.
    ``state_variables``: as for `value_and_grad`.
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            total = fn(x)
        return tape.gradient(total, x)
    if name == "jax":
        import jax

        state_variables = list(state_variables())
        pure = _jax_pure(lambda x_: (fn(x_), None), [], state_variables)
        grad, (_, updates) = jax.grad(lambda x_: pure([], x_), has_aux=True)(x)
        _write_back(state_variables, updates)
        return grad
    if name == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            total = fn(x)
            (grad,) = torch.autograd.grad(total, x, create_graph=True)
        return grad
    raise RuntimeError(f"WGAN: the {name!r} backend has no gradient implementation here.")


def apply_gradients(optimizer, grads, variables):
    """One optimizer update, as a pure update on JAX (`Optimizer.stateless_apply`)."""
    name = backend()
    if name == "jax":
        new_variables, new_optimizer = optimizer.stateless_apply(
            _current_values(optimizer.variables), list(grads), _current_values(variables)
        )
        _write_back(variables, new_variables)
        _write_back(optimizer.variables, new_optimizer)
        return
    if name == "torch":
        import torch

        with torch.no_grad():
            optimizer.apply(list(grads), list(variables))
        return
    optimizer.apply_gradients(zip(grads, variables))


def compiled_inference(model):
    """``model(x, training=False)`` as one compiled function of ``x``, reading the variables when called.

    `tf.function` on TensorFlow; on JAX `jax.jit` of ``model.stateless_call``
    on the variables' current values (inference mode: nothing is assigned);
    the eager call elsewhere. Build it once per model and keep it: each
    build traces anew.
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    if name == "jax":
        import jax

        pure = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(trainable, non_trainable, x,
                                                                                training=False)[0])
        return lambda x: pure([v.value for v in model.trainable_variables],
                              [v.value for v in model.non_trainable_variables], x)
    return lambda x: model(x, training=False)


def isolated_scope(state_variables):
    """A `keras.StatelessScope` whose assignments are dropped when it closes.

    Reads inside it see the variables' current values: on JAX (where a new
    scope does not chain to the trainer's) every state variable is mapped at
    its current value; elsewhere unmapped variables read their stored value,
    which is the current one. ``state_variables``: as for `value_and_grad`.
    """
    if backend() == "jax":
        state_variables = list(state_variables())
        return keras.StatelessScope(
            state_mapping=list(zip(state_variables, _current_values(state_variables)))
        )
    return keras.StatelessScope()


def snapshot(value):
    """A copy of a value that a later in-place assignment does not change."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.identity(ops.convert_to_tensor(value))
    if backend() == "torch":
        return ops.copy(ops.convert_to_tensor(value))
    return ops.convert_to_tensor(value)


def detach(structure):
    """Values to log, cut from the autograd graph (PyTorch keeps graphs alive otherwise)."""
    import keras.tree as tree

    return tree.map_structure(ops.stop_gradient, structure)
