"""Tests of the WGAN model: real `fit` runs on tiny data, checked against oracles."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from conftest import KeepLogs
from keras_sngan import models
from keras_sngan.callbacks import LayerDiagnostics, NonFiniteLossError
from keras_sngan.wgan import WGAN

METHODS = ("clip", "gp", "sn", "none")
N_CRITIC = 3
BATCH = 16
WIDTH = 16


def toy_data(steps=4, seed=0):
    """`steps` dataset elements of n_critic * batch 2-d points (two blobs)."""
    rng = np.random.default_rng(seed)
    n = steps * N_CRITIC * BATCH
    centers = rng.choice([-2.0, 2.0], size=(n, 1))
    return (centers + 0.3 * rng.standard_normal((n, 2))).astype("float32")


def toy_dataset(steps=4, seed=0):
    x = toy_data(steps, seed)
    return tf.data.Dataset.from_tensor_slices(x).batch(N_CRITIC * BATCH, drop_remainder=True)


def make_gan(lipschitz, width=WIDTH, depth=2, **kwargs):
    critic = models.toy_critic(width=width, depth=depth, lipschitz=lipschitz)
    generator = models.toy_generator(width=width, depth=depth)
    kwargs.setdefault("n_critic", N_CRITIC)
    return WGAN(critic, generator, latent_dim=2, lipschitz=lipschitz, **kwargs)


def adam(lr=1e-3):
    return keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9)


def all_weights(gan):
    return [w.numpy() for w in gan.critic.weights + gan.generator.weights]


def assert_weights_close(a, b, **tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **tol)


@pytest.fixture
def deterministic():
    tf.config.experimental.enable_op_determinism()
    yield
    tf_config.disable_op_determinism()  # no public switch-off in TF 2.21


# --------------------------------------------------------------------- fit


@pytest.mark.parametrize("lipschitz", METHODS)
def test_fit_logs_finite_metrics(lipschitz):
    gan = make_gan(lipschitz)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    history = gan.fit(toy_dataset(), epochs=2, verbose=0)
    expected = {"critic_loss", "wasserstein", "generator_loss", "gradient_penalty", "grad_norm"}
    assert set(history.history) == expected
    for name, values in history.history.items():
        assert len(values) == 2 and np.all(np.isfinite(values)), (name, values)
    assert gan.critic_optimizer.iterations.numpy() == 2 * 4 * N_CRITIC
    assert gan.generator_optimizer.iterations.numpy() == 2 * 4


def test_each_critic_iteration_sees_a_fresh_real_batch():
    # Linear critic f(x) = w.x and a generator whose output is the constant c
    # (zero kernel, frozen by lr=0). With SGD(lr) the critic loss
    # -(mean f(real_k) - mean f(fake)) moves w by lr * (mean real_k - c) per
    # iteration, so after one step w = w0 + lr * (sum_k mean real_k - n c):
    # the sum over *all* samples of the element divided by the batch size.
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    generator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, kernel_initializer="zeros", bias_initializer="ones")]
    )
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="none", n_critic=N_CRITIC)
    lr = 0.1
    gan.compile(critic_optimizer=keras.optimizers.SGD(lr), generator_optimizer=keras.optimizers.SGD(0.0))
    x = toy_data(steps=1)
    w0 = np.array(critic.layers[0].kernel)
    gan.fit(x, batch_size=len(x), epochs=1, verbose=0)
    expected = w0[:, 0] + lr * (x.sum(axis=0) / BATCH - N_CRITIC * np.ones(2))
    np.testing.assert_allclose(np.array(critic.layers[0].kernel)[:, 0], expected, rtol=1e-5)


def test_clipping_bounds_every_critic_weight():
    clip = 0.005
    # A critic without constraints: the WGAN itself must clip every weight.
    critic = models.toy_critic(width=WIDTH, depth=2, lipschitz="none")
    gan = WGAN(critic, models.toy_generator(width=WIDTH), latent_dim=2, lipschitz="clip",
               clip_value=clip, n_critic=N_CRITIC)
    assert max(np.abs(w.numpy()).max() for w in critic.trainable_weights) > clip
    gan.compile(critic_optimizer=keras.optimizers.RMSprop(1e-2), generator_optimizer=adam())
    gan.fit(toy_dataset(steps=2), epochs=1, verbose=0)
    for w in critic.trainable_weights:
        assert np.abs(w.numpy()).max() <= clip + 1e-7, w.path
    # ...and the clipped critic is still updated (not frozen at +-c).
    assert any(np.abs(w.numpy()).max() < clip for w in critic.trainable_weights)


def input_gradient_norms(critic, x):
    """Oracle: ||grad_x f(x)|| per sample by central finite differences (float64)."""
    x = x.astype("float64")
    eps = 1e-3
    grads = np.zeros_like(x)
    for j in range(x.shape[1]):
        step = np.zeros_like(x)
        step[:, j] = eps
        plus = np.array(critic(x + step, training=False), dtype="float64")[:, 0]
        minus = np.array(critic(x - step, training=False), dtype="float64")[:, 0]
        grads[:, j] = (plus - minus) / (2 * eps)
    return np.linalg.norm(grads, axis=1)


def test_gradient_penalty_drives_grad_norm_toward_one():
    gan = make_gan("gp", width=64, depth=3, gp_weight=10.0, n_critic=5)
    gan.compile(critic_optimizer=adam(1e-3), generator_optimizer=adam(1e-4))
    rng = np.random.default_rng(1)
    probe = rng.uniform(-3, 3, size=(256, 2)).astype("float32")
    before = np.abs(input_gradient_norms(gan.critic, probe) - 1).mean()
    x = np.repeat(toy_data(steps=4), 5 // N_CRITIC + 1, axis=0)[: 5 * BATCH * 8]
    ds = tf.data.Dataset.from_tensor_slices(x).batch(5 * BATCH, drop_remainder=True)
    history = gan.fit(ds, epochs=5, verbose=0)
    after = np.abs(input_gradient_norms(gan.critic, probe) - 1).mean()
    assert after < 0.5 * before, (before, after)
    assert abs(history.history["grad_norm"][-1] - 1) < abs(history.history["grad_norm"][0] - 1)


def test_spectral_normalization_critic_layers_have_unit_sigma():
    gan = make_gan("sn", width=32)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    diagnostics = LayerDiagnostics(every=1)
    gan.fit(toy_dataset(), epochs=3, verbose=0, callbacks=[diagnostics])
    sn_layers = [layer for layer in gan.critic.layers if hasattr(layer, "normalized_kernel")]
    assert len(sn_layers) == 3
    for layer in sn_layers:
        kernel = np.array(layer.normalized_kernel(), dtype="float64")
        sigma = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05), layer.name
    last = [r for r in diagnostics.records if r["iteration"] == 12]
    assert [r["layer"] for r in last] == [layer.name for layer in sn_layers]
    assert all(abs(r["spectral_norm"] - 1) < 0.05 for r in last)


def test_layer_diagnostics_match_numpy_and_write_csv(tmp_path):
    gan = make_gan("none", track_layer_stats=True)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    path = tmp_path / "layers.csv"
    diagnostics = LayerDiagnostics(every=2, csv_path=str(path))
    history = gan.fit(toy_dataset(), epochs=1, verbose=0, callbacks=[diagnostics])
    names = ["dense_0", "dense_1", "score"]
    assert {f"layer_grad_norm/{n}" for n in names} <= set(history.history)
    assert sorted({r["iteration"] for r in diagnostics.records}) == [1, 3]
    final = [r for r in diagnostics.records if r["iteration"] == 3]
    for record, name in zip(final, names):
        assert record["layer"] == name
        assert np.isfinite(record["grad_norm"]) and record["grad_norm"] > 0
    lines = path.read_text().splitlines()
    assert lines[0] == "iteration,layer,depth,spectral_norm,grad_norm"
    assert len(lines) == 1 + 2 * len(names)
    # Spectral norm oracle after training: LAPACK 2-norm of the current kernel.
    diagnostics.on_train_batch_end(0)
    for record, name in zip(diagnostics.records[-3:], names):
        kernel = np.array(gan.critic.get_layer(name).kernel, dtype="float64")
        assert record["spectral_norm"] == pytest.approx(np.linalg.norm(kernel, 2), rel=1e-6)


@pytest.mark.parametrize("lipschitz", ["gp", "sn"])
def test_fit_with_xla(lipschitz):
    # XLA picks another stateless RNG algorithm, so the noise (and the
    # weights) differ from graph mode: check that the compiled step trains.
    gan = make_gan(lipschitz)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam(), jit_compile=True)
    before = all_weights(gan)
    history = gan.fit(toy_dataset(steps=2), epochs=2, verbose=0)
    assert gan.jit_compile is True
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(before, all_weights(gan)) if a.size > 1)


# ------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lipschitz": "spectral"}, "`lipschitz` must be one of .*'spectral'"),
        ({"n_critic": 0}, "`n_critic` must be an integer >= 1, received 0"),
        ({"n_critic": 2.5}, "`n_critic` must be an integer >= 1, received 2.5"),
        ({"gp_weight": -1.0}, "`gp_weight` must be a finite number >= 0.0, received -1.0"),
        ({"clip_value": 0}, "`clip_value` must be a finite number > 0.0, received 0"),
        ({"latent_dim": 3}, "`latent_dim`=3 does not match the generator"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    kwargs = {"critic": models.toy_critic(width=4), "generator": models.toy_generator(width=4),
              "latent_dim": 2, "lipschitz": "gp", **kwargs}
    with pytest.raises(ValueError, match=match):
        WGAN(**kwargs)


def test_critic_must_output_one_score_per_sample():
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"one score per sample.*\(3,\)"):
        WGAN(critic, models.toy_generator(width=4), latent_dim=2, lipschitz="gp")


def test_sn_needs_spectral_normalization_layers():
    with pytest.raises(ValueError, match="lipschitz='sn' needs a critic containing SpectralNormalization"):
        WGAN(models.toy_critic(width=4), models.toy_generator(width=4), latent_dim=2, lipschitz="sn")


def test_generator_output_must_fit_critic():
    generator = models.toy_generator(width=4, output_dim=3)
    with pytest.raises(ValueError, match="critic 'toy_critic' cannot be called on generator samples"):
        WGAN(models.toy_critic(width=4), generator, latent_dim=2, lipschitz="gp")


def test_bad_compile_and_data_contract():
    gan = make_gan("gp", width=4)
    with pytest.raises(ValueError, match="`loss` is not supported"):
        gan.compile(loss="mse")
    with pytest.raises(ValueError, match="`critic_optimizer` must be a keras optimizer"):
        gan.compile(critic_optimizer=42)
    gan.compile()
    x = toy_data(steps=1)[: N_CRITIC * BATCH - 1]
    with pytest.raises(ValueError, match=f"not a multiple of n_critic={N_CRITIC}"):
        gan.fit(x, batch_size=len(x), epochs=1, verbose=0)


class _PoisonCritic(keras.callbacks.Callback):
    """Set the critic's output bias to NaN after the second batch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            self.model.critic.get_layer("score").bias.assign([np.nan])


def test_non_finite_loss_stops_training_with_a_clear_error():
    gan = make_gan("none", width=4)
    gan.compile()
    with pytest.raises(NonFiniteLossError, match=r"'critic_loss' became nan at epoch 1, batch 3"):
        gan.fit(toy_dataset(steps=4), epochs=1, verbose=0, callbacks=[_PoisonCritic()])


# ------------------------------------------- precision, scale, persistence


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("lipschitz", ["gp", "sn"])
def test_mixed_precision_trains_without_nans(policy, lipschitz):
    keras.config.set_dtype_policy(policy)
    gan = make_gan(lipschitz)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    if policy == "mixed_float16":
        assert isinstance(gan.critic_optimizer, keras.optimizers.LossScaleOptimizer)
    history = gan.fit(toy_dataset(), epochs=2, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert all(w.dtype == "float32" for w in gan.critic.trainable_weights)
    assert all(np.all(np.isfinite(np.array(w))) for w in gan.critic.trainable_weights)


@pytest.mark.parametrize("lipschitz", ["gp", "sn", "clip"])
def test_mirrored_strategy_step_equals_single_device(lipschitz, mirrored_strategy):
    x = toy_data(steps=2)

    def one_run(strategy):
        keras.utils.set_random_seed(11)
        with strategy.scope():
            gan = make_gan(lipschitz, seed=5)
            # SGD, not Adam: Adam is invariant to the gradient scale (it would
            # hide a missing 1/num_replicas) and amplifies rounding noise in
            # near-zero gradients.
            gan.compile(critic_optimizer=keras.optimizers.SGD(0.05),
                        generator_optimizer=keras.optimizers.SGD(0.05))
        ds = tf.data.Dataset.from_tensor_slices(x).batch(N_CRITIC * BATCH, drop_remainder=True)
        history = gan.fit(ds, epochs=1, verbose=0)
        return all_weights(gan), history.history

    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2
    single, h1 = one_run(tf.distribute.OneDeviceStrategy(devices[0].name))
    assert mirrored_strategy.num_replicas_in_sync == 2
    mirrored, h2 = one_run(mirrored_strategy)
    assert_weights_close(single, mirrored, rtol=1e-4, atol=1e-6)
    for name in h1:
        np.testing.assert_allclose(h1[name], h2[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_same_seed_gives_identical_history(deterministic):
    histories = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        gan = make_gan("gp")
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
        histories.append(gan.fit(toy_dataset(), epochs=2, verbose=0).history)
    assert histories[0] == histories[1]


class _Crash(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("simulated preemption")


@pytest.mark.parametrize("lipschitz", ["sn", "gp"])
def test_backup_and_restore_resumes_to_the_same_weights(tmp_path, deterministic, lipschitz):
    def run(backup_dir, crash=None):
        keras.utils.set_random_seed(21)
        gan = make_gan(lipschitz)
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
        callbacks = [keras.callbacks.BackupAndRestore(str(backup_dir))]
        callbacks += [crash] if crash else []
        gan.fit(toy_dataset(), epochs=3, verbose=0, callbacks=callbacks)
        return gan

    reference = run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated preemption"):
        run(tmp_path / "b", crash=_Crash(epoch=1, batch=2))
    # A fresh process would draw other initial weights: use another seed to
    # make sure everything comes from the backup.
    keras.utils.set_random_seed(99)
    resumed = run(tmp_path / "b")
    assert_weights_close(all_weights(reference), all_weights(resumed), rtol=1e-6, atol=1e-7)
    for name in ("critic_optimizer", "generator_optimizer"):
        ref, res = getattr(reference, name), getattr(resumed, name)
        assert int(ref.iterations.numpy()) == int(res.iterations.numpy())
        assert_weights_close([np.array(v) for v in ref.variables],
                             [np.array(v) for v in res.variables], rtol=1e-6, atol=1e-7)


def test_keras_file_round_trip(tmp_path):
    gan = make_gan("sn", track_layer_stats=False)
    gan.compile(critic_optimizer=adam(2e-4), generator_optimizer=adam())
    gan.fit(toy_dataset(steps=2), epochs=1, verbose=0)
    path = tmp_path / "wgan.keras"
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, WGAN)
    assert loaded.get_config()["lipschitz"] == "sn" and loaded.n_critic == N_CRITIC
    assert_weights_close(all_weights(gan), all_weights(loaded), rtol=0, atol=0)
    assert float(loaded.critic_optimizer.learning_rate) == pytest.approx(2e-4)
    assert_weights_close([np.array(v) for v in gan.critic_optimizer.variables],
                         [np.array(v) for v in loaded.critic_optimizer.variables], rtol=0, atol=0)
    np.testing.assert_array_equal(np.array(gan.seed_generator.state), np.array(loaded.seed_generator.state))
    # Training continues identically from the saved state.
    gan.fit(toy_dataset(steps=1), epochs=1, verbose=0)
    loaded.fit(toy_dataset(steps=1), epochs=1, verbose=0)
    assert_weights_close(all_weights(gan), all_weights(loaded), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lipschitz", ["sn", "gp"])
def test_savedmodel_export_reproduces_critic_and_generator(tmp_path, lipschitz):
    gan = make_gan(lipschitz)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    gan.fit(toy_dataset(steps=2), epochs=1, verbose=0)
    x = toy_data(steps=1)[:10]
    z = np.random.default_rng(0).standard_normal((10, 2)).astype("float32")
    for model, inputs in ((gan.critic, x), (gan.generator, z)):
        path = str(tmp_path / model.name)
        model.export(path, verbose=False)
        reloaded = tf.saved_model.load(path)  # keep a reference while serving
        served = reloaded.serve(tf.constant(inputs))
        np.testing.assert_allclose(np.array(served), np.array(model(inputs, training=False)),
                                   rtol=1e-6, atol=1e-6)


def test_validation_is_refused_before_training():
    gan = make_gan("sn")
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    before = all_weights(gan)
    with pytest.raises(ValueError, match="no validation step.*critic_generalization_gap"):
        gan.fit(toy_dataset(), validation_data=toy_dataset(), verbose=0)
    with pytest.raises(ValueError, match="no validation step"):
        gan.evaluate(toy_dataset(), verbose=0)
    assert_weights_close(before, all_weights(gan), rtol=0, atol=0)


def test_critic_diagnostics_match_a_linear_critic_by_hand():
    """f(x) = w.x + b and a constant generator: every number is known in closed form."""
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="linear")])
    w = np.array([[3.0], [4.0]], "float32")
    critic.layers[0].kernel.assign(w)
    generator = models.toy_generator(width=8, depth=1)
    for variable in generator.weights:
        variable.assign(np.zeros(variable.shape, "float32"))
    constant = np.array([0.5, -0.5], "float32")
    generator.layers[-1].bias.assign(constant)  # every fake sample is `constant`
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="gp", n_critic=1, gp_weight=2.0)
    before = all_weights(gan)
    real = toy_data(steps=1)[:BATCH]
    metrics, per_layer = gan.critic_diagnostics(real)

    wasserstein = float((real.mean(0) - constant) @ w[:, 0])
    assert metrics["wasserstein"] == pytest.approx(wasserstein, rel=1e-5)
    assert metrics["grad_norm"] == pytest.approx(5.0, rel=1e-5)
    assert metrics["gradient_penalty"] == pytest.approx(16.0, rel=1e-5)
    assert metrics["critic_loss"] == pytest.approx(-wasserstein + 2.0 * 16.0, rel=1e-5)
    # d/dw [-(mean real - c).w + lambda (||w|| - 1)^2] = -(mean real - c) + 2 lambda (||w|| - 1) w / ||w||
    grad = -(real.mean(0) - constant) + 2 * 2.0 * (5.0 - 1.0) * w[:, 0] / 5.0
    assert per_layer == {"linear": pytest.approx(float(np.linalg.norm(grad)), rel=1e-5)}
    assert_weights_close(before, all_weights(gan), rtol=0, atol=0)


# ------------------------------------- the user's models: losses, modes, BN


def test_regularization_losses_join_both_objectives():
    """L2 on the critic kernel and on the generator bias, one SGD step, against a hand computation.

    f(x) = w.x (kernel L2 0.5) and G(z) = z V + b with V = 0 (bias L2 0.25),
    so every fake sample is b0 in the critic step. Critic step:
    w1 = w0 - lr (-(mean real - b0) + 2 * 0.5 w0). Generator step (critic
    at w1): d/db [-mean w1.(z V + b) + 0.25 ||b||^2] = -w1 + 0.5 b.
    """
    lr = 0.1
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        1, use_bias=False, kernel_regularizer=keras.regularizers.L2(0.5), name="linear")])
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        2, kernel_initializer="zeros", bias_initializer="ones",
        bias_regularizer=keras.regularizers.L2(0.25), name="affine")])
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="none", n_critic=1)
    gan.compile(critic_optimizer=keras.optimizers.SGD(lr), generator_optimizer=keras.optimizers.SGD(lr))
    x = toy_data(steps=1)[:BATCH]
    w0 = keras.ops.convert_to_numpy(critic.layers[0].kernel)[:, 0].astype("float64")
    b0 = np.ones(2)
    kept = {}

    class Keep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            kept.update(logs)

    gan.fit(x, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Keep()])
    mean_real = x.astype("float64").mean(0)
    w1 = w0 - lr * (-(mean_real - b0) + 2 * 0.5 * w0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(critic.layers[0].kernel)[:, 0], w1, rtol=1e-5)
    b1 = b0 - lr * (-w1 + 2 * 0.25 * b0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(generator.layers[0].bias), b1, rtol=1e-5)
    critic_objective = -(mean_real - b0) @ w0 + 0.5 * np.sum(w0**2)
    assert kept["critic_loss"] == pytest.approx(critic_objective, rel=1e-5)


def test_batch_normalization_critic_is_refused_with_gradient_penalty():
    def critic(norm):
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(4), norm, keras.layers.Dense(1)])

    with pytest.raises(ValueError, match=r"lipschitz='gp'.*BatchNormalization layers \['bn'\].*LayerNormalization"):
        WGAN(critic(keras.layers.BatchNormalization(name="bn")), models.toy_generator(width=4),
             latent_dim=2, lipschitz="gp")
    WGAN(critic(keras.layers.LayerNormalization()), models.toy_generator(width=4), latent_dim=2, lipschitz="gp")
    WGAN(critic(keras.layers.BatchNormalization()), models.toy_generator(width=4), latent_dim=2, lipschitz="none")


def test_generator_step_uses_the_training_mode_critic_without_changing_it():
    """A BatchNormalization critic: the generator follows the batch-statistics function.

    The generator's output is the constant b (zero kernel), so in training
    mode BatchNorm subtracts the batch mean and the critic's output does not
    depend on b: the generator step must leave b exactly unchanged (in
    inference mode, with moving statistics, b would move). And it must not
    touch the critic's moving statistics: after one step they hold exactly
    one momentum update with the mean of the critic step's batch [real, fake].
    """
    momentum = 0.9
    critic = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=momentum, name="bn"),
                               keras.layers.Dense(1)])
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        2, kernel_initializer="zeros", bias_initializer="ones")])
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="none", n_critic=1)
    gan.compile(critic_optimizer=keras.optimizers.SGD(0.0), generator_optimizer=keras.optimizers.SGD(0.5))
    x = toy_data(steps=1)[:BATCH]
    gan.fit(x, batch_size=BATCH, epochs=1, verbose=0)
    # In inference mode the step would move b by about lr * |w| / sqrt(moving_var) ~ 0.1;
    # in training mode only float32 rounding of a zero gradient is left.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(generator.layers[0].bias), np.ones(2), atol=1e-4)
    batch_mean = np.concatenate([x, np.ones((BATCH, 2), "float32")]).mean(0)
    moving_mean = keras.ops.convert_to_numpy(critic.get_layer("bn").moving_mean)
    np.testing.assert_allclose(moving_mean, (1 - momentum) * batch_mean, rtol=1e-5)


# ------------------------------------------------------- mixed precision


# Loss-scale overflow and unscaled per-layer norms: tests/test_wgan_backends.py (every backend).


# ---------------------------------------------------- per-step values, spe


def test_steps_per_execution_matches_one_step_per_execution(deterministic):
    """steps_per_execution=2 trains exactly as 1 and logs the values of the steps it reports."""
    runs = []
    for spe in (1, 2):
        keras.utils.set_random_seed(5)
        gan = make_gan("gp", track_layer_stats=True, seed=2)
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam(), steps_per_execution=spe)
        keep = KeepLogs()
        gan.fit(toy_dataset(steps=4), epochs=1, verbose=0, callbacks=[keep])
        runs.append((all_weights(gan), keep.steps))
    (w1, logs1), (w2, logs2) = runs
    assert_weights_close(w1, w2, rtol=0, atol=0)
    assert len(logs1) == 4 and len(logs2) == 2
    assert logs2 == [logs1[1], logs1[3]]  # per-step values of steps 2 and 4, not running means
    assert logs1[0] != logs1[1]


def test_importing_the_wgan_needs_no_tensorflow_and_a_backend_without_gradients_fails_clearly():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from keras_sngan.wgan import WGAN\n"
        "from keras_sngan import models\n"
        "assert 'tensorflow' not in sys.modules\n"
        "try:\n"
        "    WGAN(models.toy_critic(width=4), models.toy_generator(width=4), 2, lipschitz='gp')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    import os

    env = dict(os.environ, KERAS_BACKEND="numpy")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no automatic differentiation" in result.stdout and "'numpy'" in result.stdout


# ---------------------------------------------------- arrays with a remainder
def remainder_gan():
    gan = make_gan("gp", width=8, n_critic=5)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    return gan


def test_arrays_with_a_last_batch_that_does_not_divide_train_like_explicit_batches(deterministic):
    """1024 samples at batch_size=320, n_critic=5: three full steps, then the last 64 split 5 x 12.

    Oracle: the same samples given as a dataset of explicit elements 320, 320,
    320 and 60 (all multiples of n_critic, so nothing is trimmed there).
    """
    x = np.concatenate([toy_data(steps=8, seed=1)] * 6)[:1024]
    keras.utils.set_random_seed(3)
    gan = remainder_gan()
    history = gan.fit(x, batch_size=320, epochs=1, shuffle=False, verbose=0)
    assert int(gan.generator_optimizer.iterations.numpy()) == 4
    assert int(gan.critic_optimizer.iterations.numpy()) == 20
    assert np.isfinite(history.history["critic_loss"]).all()

    elements = [x[0:320], x[320:640], x[640:960], x[960:1020]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(elements), output_signature=tf.TensorSpec((None, 2), tf.float32)
    ).apply(tf.data.experimental.assert_cardinality(len(elements)))
    keras.utils.set_random_seed(3)
    oracle = remainder_gan()
    oracle.fit(dataset, epochs=1, verbose=0)
    assert_weights_close(all_weights(gan), all_weights(oracle), rtol=1e-5, atol=1e-6)


def test_datasets_and_generators_with_a_partial_last_element():
    x = np.concatenate([toy_data(steps=8, seed=2)] * 6)[:1024]
    gan = remainder_gan()
    gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(320), epochs=1, verbose=0)
    assert int(gan.generator_optimizer.iterations.numpy()) == 4

    def batches():
        for start in range(0, len(x), 320):
            yield (x[start:start + 320],)  # Keras wants generators to yield tuples

    gan = remainder_gan()
    gan.fit(batches(), steps_per_epoch=4, epochs=1, verbose=0)  # a generator's length is unknown to Keras
    assert int(gan.generator_optimizer.iterations.numpy()) == 4


def test_array_batch_size_must_divide_by_n_critic_before_any_step():
    gan = remainder_gan()
    before = all_weights(gan) if gan.built else None
    with pytest.raises(ValueError, match=r"batch_size=32 is not a multiple of n_critic=5"):
        gan.fit(toy_data(steps=4), epochs=1, verbose=0)  # Keras' default batch_size
    with pytest.raises(ValueError, match=r"batch_size=322 is not a multiple of n_critic=5"):
        gan.fit(toy_data(steps=4), batch_size=322, epochs=1, verbose=0)
    assert int(gan.generator_optimizer.iterations.numpy()) == 0
    if before is not None:
        assert_weights_close(before, all_weights(gan), rtol=0, atol=0)


def test_a_last_array_batch_smaller_than_n_critic_is_dropped():
    x = np.concatenate([toy_data(steps=8, seed=4)] * 6)[:963]  # 3 x 320 + 3
    gan = remainder_gan()
    gan.fit(x, batch_size=320, epochs=1, verbose=0)
    assert int(gan.generator_optimizer.iterations.numpy()) == 3


def test_a_dataset_element_smaller_than_n_critic_fails_clearly():
    x = np.concatenate([toy_data(steps=8, seed=4)] * 6)[:963]
    gan = remainder_gan()
    with pytest.raises(tf.errors.InvalidArgumentError, match="fewer samples than n_critic=5"):
        gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(320), epochs=1, verbose=0)
