"""How one WGAN step behaves under `tf.distribute` (and on one device).

The rules, in one place, for whoever adds a strategy (Mirrored,
MultiWorkerMirrored, TPU):

- **Loss scaling:** each replica computes its objective as a mean over its
  *local* batch and divides it by ``num_replicas``; the strategy sums the
  replicas' gradients, so the update equals the one-device update on the
  global batch (:func:`per_replica_loss`).
- **Randomness:** noise and interpolation coefficients are drawn for the
  *global* batch from the model's `keras.random.SeedGenerator` and every
  replica takes its own slice (:func:`global_draw`), so a seeded run draws the
  same numbers on any number of replicas.
- **Logged values:** each replica's per-step values are averaged across
  replicas (:func:`replica_mean`); per-layer weight gradients are summed
  across replicas before taking their norm (:func:`replica_sum`), which is the
  gradient the optimizer applies.

Outside a strategy (or in cross-replica context) every helper behaves as on
one device. On JAX and PyTorch there are no replica contexts: the step is
written for the global batch, and `keras.distribution.DataParallel` (JAX)
shards that one computation across devices, so every helper behaves as on
one device there too.
"""

from __future__ import annotations

# TensorFlow is imported inside the functions: importing this module must not
# need it (WGAN.__init__ reports a missing TensorFlow clearly).


def replica_info():
    """``(replica_id, num_replicas)`` of the current replica context."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: behave like a single device
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


def global_draw(fn, local_batch, replica_id, num_replicas):
    """Call ``fn(global_batch)`` and return this replica's slice of the draw."""
    values = fn(local_batch * num_replicas)
    if num_replicas == 1:
        return values
    start = replica_id * local_batch
    return values[start : start + local_batch]


def per_replica_loss(loss, num_replicas):
    """The share of a global-batch mean loss that one replica differentiates."""
    return loss / num_replicas


def _all_reduce(kind, values, num_replicas):
    if num_replicas == 1:
        return values
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context.all_reduce(getattr(tf.distribute.ReduceOp, kind), values)


def replica_mean(values, num_replicas):
    """Average a (nested) structure of per-replica values across replicas."""
    return _all_reduce("MEAN", values, num_replicas)


def replica_sum(values, num_replicas):
    """Sum a (nested) structure of per-replica values across replicas."""
    return _all_reduce("SUM", values, num_replicas)
