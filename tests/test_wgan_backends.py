"""The WGAN on every Keras backend: checked against a plain-JAX oracle and across backends.

This module runs in both passes of ``make test`` (TensorFlow, then JAX): it
uses only ``keras`` and NumPy, so each check holds on the backend the process
runs. The oracle (`oracle_wgan_jax`) is written in plain JAX from
``gan_toy.py`` and Miyato et al., with no Keras and no keras_sngan.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import wgan_lockstep
from conftest import KeepLogs

pytest.importorskip("jax")


def _oracle_available(oracle):
    import importlib.util

    if importlib.util.find_spec(oracle) is None:
        pytest.skip(f"the plain {oracle} oracle needs {oracle} installed (make test-torch installs torch)")


@pytest.mark.parametrize("oracle", ["jax", "torch"])
@pytest.mark.parametrize("method", ["gp", "clip", "sn", "none"])
def test_one_iteration_equals_the_plain_oracles(method, oracle):
    """Same weights, data and draws: n_critic critic updates and a generator update agree to float32 rounding.

    Two iterations (6 critic and 2 generator updates) with plain gradient
    descent, penalty, clipping and SN power iteration included, against an
    oracle in plain JAX and one in plain PyTorch.
    """
    _oracle_available(oracle)
    _, _, error = wgan_lockstep.lockstep(method, iterations=2, oracle=oracle)
    assert error < 1e-5, error


@pytest.mark.parametrize("oracle", ["jax", "torch"])
@pytest.mark.parametrize("method, bug", [("gp", "penalty_sign"), ("clip", "clip_late")])
def test_lockstep_sees_an_oracle_built_to_disagree(method, bug, oracle):
    _oracle_available(oracle)
    _, _, error = wgan_lockstep.lockstep(method, iterations=2, bug=bug, oracle=oracle)
    assert error > 1e-3, error


# ------------------------------------------------------------------ fit on this backend
import keras  # noqa: E402

from keras_sngan import SpectralNormalization, models  # noqa: E402
from keras_sngan.wgan import WGAN  # noqa: E402

N_CRITIC, BATCH, WIDTH = 3, 16, 16
METHODS = ("clip", "gp", "sn", "none")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def toy_data(steps=4, seed=0):
    rng = np.random.default_rng(seed)
    n = steps * N_CRITIC * BATCH
    return (rng.choice([-2.0, 2.0], size=(n, 1)) + 0.3 * rng.standard_normal((n, 2))).astype("float32")


def make_gan(lipschitz, **kwargs):
    critic = models.toy_critic(width=WIDTH, depth=2, lipschitz=lipschitz)
    generator = models.toy_generator(width=WIDTH, depth=2)
    return WGAN(critic, generator, latent_dim=2, lipschitz=lipschitz, n_critic=N_CRITIC, **kwargs)


def weights(gan):
    return [numpy(v) for v in gan.critic.weights + gan.generator.weights]


def adam():
    return keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9)


@pytest.mark.parametrize("lipschitz", METHODS)
def test_fit_logs_the_same_metrics_and_counts_updates(lipschitz):
    gan = make_gan(lipschitz)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    history = gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=2, verbose=0)
    assert set(history.history) == {"critic_loss", "wasserstein", "generator_loss", "gradient_penalty", "grad_norm"}
    for name, values in history.history.items():
        assert len(values) == 2 and np.all(np.isfinite(values)), (name, values)
    # the optimizers' states survive the (stateless, on JAX) steps
    assert int(numpy(gan.critic_optimizer.iterations)) == 2 * 4 * N_CRITIC
    assert int(numpy(gan.generator_optimizer.iterations)) == 2 * 4
    assert any(np.abs(numpy(m)).max() > 0 for m in gan.critic_optimizer.variables[1:])


@pytest.mark.parametrize("lipschitz", ["gp", "sn"])
def test_compiled_step_equals_the_eager_step(lipschitz):
    """``jit_compile`` (XLA on JAX and TF, torch.compile on torch) and ``run_eagerly`` train alike."""
    if lipschitz == "gp" and keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match="cannot differentiate twice"):
            make_gan("gp").compile(jit_compile=True)
        return
    # TensorFlow's XLA picks another stateless RNG algorithm than its kernels (other noise, so
    # other weights: tests/test_wgan.py checks that XLA trains): there the traced graph is compared.
    compiled = {"jit_compile": keras.backend.backend() != "tensorflow"}
    runs = []
    for mode in ({"run_eagerly": True}, compiled):
        keras.utils.set_random_seed(4)
        gan = make_gan(lipschitz, seed=4)
        # plain gradient descent: Adam's first steps (about lr * sign(g)) turn the rounding of
        # near-zero gradients into full steps
        sgd = keras.optimizers.SGD(1e-2)
        gan.compile(critic_optimizer=sgd, generator_optimizer=keras.optimizers.SGD(1e-2), **mode)
        gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
        runs.append(weights(gan))
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_same_seed_gives_the_same_weights_twice():
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        gan = make_gan("sn", seed=3)
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
        gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=2, verbose=0)
        runs.append(weights(gan) + [numpy(gan.seed_generator.state)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_noise_seed_and_clipping_survive_the_step():
    clip = 0.005
    critic = models.toy_critic(width=WIDTH, depth=2, lipschitz="none")  # no constraints: the WGAN clips
    gan = WGAN(critic, models.toy_generator(width=WIDTH), latent_dim=2, lipschitz="clip", clip_value=clip,
               n_critic=N_CRITIC, seed=1)
    gan.compile(critic_optimizer=keras.optimizers.RMSprop(1e-2), generator_optimizer=adam())
    seed_before = numpy(gan.seed_generator.state).copy()
    gan.fit(toy_data(steps=2), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
    assert not np.array_equal(seed_before, numpy(gan.seed_generator.state))
    for w in critic.trainable_weights:
        assert np.abs(numpy(w)).max() <= clip + 1e-7, w.path
    assert any(np.abs(numpy(w)).max() < clip for w in critic.trainable_weights)


def test_sn_vectors_advance_in_the_critic_update_only():
    """The critic update advances the power-iteration vectors; the generator update leaves them.

    With SGD(0) nothing else changes, so after one step (n_critic = 1) the
    vectors must be exactly one power iteration of the critic call on
    [real, fake] from the initial vectors (numpy), and not a second one.
    """
    critic = keras.Sequential([keras.Input((2,)), SpectralNormalization(keras.layers.Dense(3), name="sn")])
    critic = keras.Sequential([critic, keras.layers.Dense(1)])
    gan = WGAN(critic, models.toy_generator(width=4, depth=1), latent_dim=2, lipschitz="sn", n_critic=1, seed=0)
    gan.compile(critic_optimizer=keras.optimizers.SGD(0.0), generator_optimizer=keras.optimizers.SGD(0.0))
    layer = critic.layers[0].get_layer("sn")
    (u_var, v_var), = layer._vectors
    u0, v0 = np.array([[0.6, 0.8]], "float32"), np.array([[1.0, 0.0, 0.0]], "float32")  # far from converged
    u_var.assign(u0)
    v_var.assign(v0)
    w = numpy(layer.layer.kernel)
    gan.fit(toy_data(steps=1)[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    u1 = v0 @ w.T
    u1 /= np.linalg.norm(u1)
    v1 = u1 @ w
    v1 /= np.linalg.norm(v1)
    assert not np.allclose(u0, u1)
    np.testing.assert_allclose(numpy(u_var), u1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy(v_var), v1, rtol=1e-5, atol=1e-6)


def test_batch_normalization_statistics_in_the_generator_are_updated():
    """One step, n_critic = 1, injected noise: the generator's moving mean holds exactly two updates.

    The critic update's generator call (noise z1) and the generator update's
    (z2) both run in training mode: moving_mean = m (1 - m) mean(h1) +
    (1 - m) mean(h2) with h = z W + b of the Dense before the BatchNormalization
    (SGD(0): the weights do not move).
    """
    from unittest import mock

    from keras_sngan.wgan import critic_step, generator_step

    momentum = 0.5
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d"),
                                  keras.layers.BatchNormalization(momentum=momentum, name="bn")])
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="none", n_critic=1, seed=0)
    gan.compile(critic_optimizer=keras.optimizers.SGD(0.0), generator_optimizer=keras.optimizers.SGD(0.0))
    rng = np.random.default_rng(1)
    z1, z2 = (rng.standard_normal((BATCH, 2)).astype("float32") + 3.0 * k for k in (1, 2))
    noises = [z1, z2]

    def draw_noise(gan_, local_batch, replica):
        return keras.ops.convert_to_tensor(noises.pop(0))

    with mock.patch.object(critic_step, "draw_noise", draw_noise), \
            mock.patch.object(generator_step, "draw_noise", draw_noise):
        gan.fit(toy_data(steps=1)[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    w, b = (numpy(v) for v in generator.get_layer("d").weights)
    expected = momentum * (1 - momentum) * (z1 @ w + b).mean(0) + (1 - momentum) * (z2 @ w + b).mean(0)
    np.testing.assert_allclose(numpy(generator.get_layer("bn").moving_mean), expected, rtol=1e-5, atol=1e-6)


def test_a_non_finite_loss_stops_training_with_the_metric_named():
    from keras_sngan.callbacks import NonFiniteLossError

    gan = make_gan("none")
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    data = toy_data()
    data[:] = np.nan
    with pytest.raises(NonFiniteLossError, match=r"metric '(critic_loss|wasserstein|generator_loss|gradient_penalty"
                                                 r"|grad_norm)' became nan at epoch 1, batch 1"):
        gan.fit(data, batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)


def test_critic_export_where_keras_exports():
    """SavedModel export of the trained critic: TensorFlow, and JAX with TensorFlow installed (jax2tf)."""
    import importlib.util

    if keras.backend.backend() == "torch" or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("Keras exports SavedModels from TensorFlow, and from JAX through jax2tf (TensorFlow installed)")
    import tempfile

    gan = make_gan("sn")
    gan.compile()
    gan.fit(toy_data(steps=1), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
    x = toy_data(steps=1)[:8]
    with tempfile.TemporaryDirectory() as tmp:
        gan.critic.export(tmp)
        import tensorflow as tf

        loaded = tf.saved_model.load(tmp)
        served = loaded.serve(tf.constant(x)).numpy()
        np.testing.assert_allclose(served, numpy(gan.critic(x)), rtol=1e-5, atol=1e-6)


def test_regularizers_and_dropout_critic_train():
    reg = keras.regularizers.L2(1e-2)
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu", kernel_regularizer=reg),
                               keras.layers.Dropout(0.3, seed=1), keras.layers.Dense(1, activity_regularizer=reg)])
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_regularizer=reg)])
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="gp", n_critic=N_CRITIC, seed=0)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    dropout_seed = critic.layers[1].seed_generator.state
    seed_before = numpy(dropout_seed).copy()
    history = gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
    # the dropout layer's seed advanced: its state came back out of the (stateless, on JAX) step (seeded:
    # unseeded, Keras' PyTorch backend draws from torch's global generator instead)
    assert not np.array_equal(seed_before, numpy(dropout_seed))
    # the critic loss includes its own regularizers: it exceeds -W + gp_weight * penalty by their sum
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["critic_loss"] > -logs["wasserstein"] + 10.0 * logs["gradient_penalty"] - 1e-6


def test_inputs_numpy_pydataset_and_generator_train_alike():
    data = toy_data(steps=2)
    element = N_CRITIC * BATCH

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return data[i * element:(i + 1) * element]

    def generator():
        for i in range(2):
            yield (data[i * element:(i + 1) * element],)

    runs = []
    for source, kwargs in ((data, {"batch_size": element, "shuffle": False}), (Batches(), {}),
                           (generator(), {"steps_per_epoch": 2})):
        keras.utils.set_random_seed(5)
        gan = make_gan("none", seed=5)
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
        gan.fit(source, epochs=1, verbose=0, **kwargs)
        runs.append(weights(gan))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_partial_last_array_batch_is_split_like_an_explicit_batch():
    """60 samples at batch 48, n_critic 3: steps of 48 and of 12 (4 per critic batch), as two explicit fits."""
    data = toy_data(steps=2)[:60]
    keras.utils.set_random_seed(6)
    gan = make_gan("none", seed=6)
    gan.compile(critic_optimizer=keras.optimizers.SGD(1e-2), generator_optimizer=keras.optimizers.SGD(1e-2))
    gan.fit(data, batch_size=48, epochs=1, shuffle=False, verbose=0)
    keras.utils.set_random_seed(6)
    other = make_gan("none", seed=6)
    other.compile(critic_optimizer=keras.optimizers.SGD(1e-2), generator_optimizer=keras.optimizers.SGD(1e-2))
    other.fit(data[:48], batch_size=48, epochs=1, shuffle=False, verbose=0)
    other.fit(data[48:], batch_size=12, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(weights(gan), weights(other)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_execution_and_layer_stats():
    runs = []
    # Keras' PyTorch trainer refuses steps_per_execution > 1 itself
    for k in (1, 2) if keras.backend.backend() != "torch" else (1,):
        keras.utils.set_random_seed(8)
        gan = make_gan("sn", seed=8, track_layer_stats=True)
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam(), steps_per_execution=k)
        history = gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
        runs.append(weights(gan))
        assert any(name.startswith("layer_grad_norm/") for name in history.history)
        assert all(np.isfinite(v[-1]) for v in history.history.values())
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_loss_scale_overflow_steps_are_skipped_not_fatal():
    """Forced overflow (scale 2**40: every float16 gradient is inf): updates skipped, scale halved, no error.

    The loss-scale optimizer's state (its scale) must come out of each step:
    2 steps of n_critic critic updates halve it 2 * n_critic times.
    """
    keras.config.set_dtype_policy("mixed_float16")
    gan = make_gan("sn", track_layer_stats=True)
    opt = keras.optimizers.LossScaleOptimizer(adam(), initial_scale=2.0**40)
    gan.compile(critic_optimizer=opt, generator_optimizer=adam())
    before = [numpy(w) for w in gan.critic.trainable_weights]
    keep = KeepLogs()
    gan.fit(toy_data(steps=2), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0, callbacks=[keep])
    assert len(keep.steps) == 2
    for step in keep.steps:
        assert all(np.isfinite(step[m]) for m in gan.loss_metric_names), step
        assert all(not np.isfinite(v) for k, v in step.items() if k.startswith("layer_grad_norm/")), step
    assert float(numpy(opt.dynamic_scale)) == 2.0 ** (40 - 2 * N_CRITIC)
    for a, w in zip(before, gan.critic.trainable_weights):
        np.testing.assert_array_equal(a, numpy(w))


def test_layer_gradient_norms_are_unscaled_with_the_scale_that_was_used():
    """dynamic_growth_steps=1 doubles the scale at every critic update; the logged norms do not change."""
    runs = []
    for growth in (1, 10**6):
        keras.utils.set_random_seed(7)
        keras.config.set_dtype_policy("mixed_float16")
        gan = make_gan("gp", track_layer_stats=True, seed=1)
        opt = keras.optimizers.LossScaleOptimizer(adam(), initial_scale=1.0, dynamic_growth_steps=growth)
        gan.compile(critic_optimizer=opt, generator_optimizer=adam())
        keep = KeepLogs()
        gan.fit(toy_data(steps=2), batch_size=N_CRITIC * BATCH, epochs=1, shuffle=False, verbose=0,
                callbacks=[keep])
        runs.append((float(numpy(opt.dynamic_scale)), keep.steps))
    (growing_scale, growing), (fixed_scale, fixed) = runs
    assert growing_scale == 2.0 ** (2 * N_CRITIC) and fixed_scale == 1.0
    names = [k for k in fixed[0] if k.startswith("layer_grad_norm/")]
    assert names
    for a, b in zip(growing, fixed):
        for name in names:
            assert a[name] == pytest.approx(b[name], rel=1e-2), name


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nans(policy):
    keras.config.set_dtype_policy(policy)
    try:
        gan = make_gan("sn")
        gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
        if policy == "mixed_float16":
            assert isinstance(gan.critic_optimizer, keras.optimizers.LossScaleOptimizer)
        history = gan.fit(toy_data(), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(np.isfinite(v[-1]) for v in history.history.values())


def test_keras_file_round_trip_continues_identically(tmp_path):
    gan = make_gan("sn", seed=2)
    gan.compile(critic_optimizer=adam(), generator_optimizer=adam())
    gan.fit(toy_data(steps=2), batch_size=N_CRITIC * BATCH, epochs=1, verbose=0)
    path = tmp_path / "wgan.keras"
    gan.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(weights(gan), weights(loaded)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(numpy(gan.seed_generator.state), numpy(loaded.seed_generator.state))
    for a, b in zip(gan.critic_optimizer.variables, loaded.critic_optimizer.variables):
        np.testing.assert_array_equal(numpy(a), numpy(b))
    data = toy_data(steps=1, seed=1)
    gan.fit(data, batch_size=N_CRITIC * BATCH, epochs=1, shuffle=False, verbose=0)
    loaded.fit(data, batch_size=N_CRITIC * BATCH, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(weights(gan), weights(loaded)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    critic = keras.saving.load_model(_save(loaded.critic, tmp_path / "critic.keras"))
    np.testing.assert_allclose(numpy(critic(data[:8])), numpy(loaded.critic(data[:8])), rtol=1e-6)


def _save(model, path):
    model.save(path)
    return path


def test_critic_diagnostics_match_a_linear_critic_by_hand():
    """f(x) = w.x: W = w.(mean real - mean fake), d(-W)/dw = mean fake - mean real, ||grad_x f|| = ||w||."""
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, name="lin")])
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        2, kernel_initializer="zeros", bias_initializer="ones")])
    gan = WGAN(critic, generator, latent_dim=2, lipschitz="none", n_critic=1)
    real = toy_data(steps=1)[:BATCH]
    metrics, per_layer = gan.critic_diagnostics(real)
    w = numpy(critic.layers[0].kernel)[:, 0]
    fake_mean = np.ones(2)
    np.testing.assert_allclose(metrics["wasserstein"], w @ (real.mean(0) - fake_mean), rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(w), rtol=1e-5)
    np.testing.assert_allclose(per_layer["lin"], np.linalg.norm(fake_mean - real.mean(0)), rtol=1e-5)


# ------------------------------------------------------------------ keras.io's WGAN-GP models
def keras_io_models(sn=False, size=12):
    """keras.io's WGAN-GP critic (5x5 strided convs, LeakyReLU, Dropout) and generator (BN, UpSampling, Cropping), small."""
    def wrap(layer):
        return SpectralNormalization(layer) if sn else layer

    critic = keras.Sequential([
        keras.Input((size, size, 1)),
        wrap(keras.layers.Conv2D(8, 5, strides=2, padding="same")), keras.layers.LeakyReLU(0.2),
        wrap(keras.layers.Conv2D(16, 5, strides=2, padding="same")), keras.layers.LeakyReLU(0.2),
        keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dropout(0.2), wrap(keras.layers.Dense(1)),
    ])
    generator = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(4 * 4 * 16, use_bias=False), keras.layers.BatchNormalization(),
        keras.layers.LeakyReLU(0.2), keras.layers.Reshape((4, 4, 16)), keras.layers.UpSampling2D(),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False), keras.layers.BatchNormalization(),
        keras.layers.LeakyReLU(0.2), keras.layers.UpSampling2D(), keras.layers.Conv2D(1, 3, padding="same"),
        keras.layers.Cropping2D(2), keras.layers.Activation("tanh"),
    ])
    return critic, generator


@pytest.mark.parametrize("lipschitz", ["gp", "sn"])
def test_keras_io_wgan_gp_models_train(lipschitz):
    critic, generator = keras_io_models(sn=lipschitz == "sn")
    gan = WGAN(critic, generator, latent_dim=8, lipschitz=lipschitz, n_critic=2, seed=0)
    gan.compile()
    images = np.random.default_rng(0).uniform(-1, 1, (32, 12, 12, 1)).astype("float32")
    bn = generator.layers[1]
    history = gan.fit(images, batch_size=16, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert np.any(numpy(bn.moving_mean) != 0.0)


# ------------------------------------------------------------------ across backends
def test_tensorflow_and_jax_train_to_the_same_weights(tmp_path):
    """Same start, data and injected draws, 4 iterations, every method: TF and JAX agree to float32 rounding."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None or keras.backend.backend() != "tensorflow":
        pytest.skip("runs once, in the TensorFlow pass (it starts a process per backend itself)")
    here = os.path.dirname(__file__)
    for method in METHODS:
        outputs = {}
        for backend in ("tensorflow", "jax"):
            out = tmp_path / f"{method}-{backend}.npz"
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            result = subprocess.run([sys.executable, os.path.join(here, "wgan_lockstep.py"), method, "4", str(out)],
                                    env=env, capture_output=True, text=True, timeout=300, cwd=here)
            assert result.returncode == 0, result.stderr[-3000:]
            outputs[backend] = np.load(out)
        tf_run, jax_run = outputs["tensorflow"], outputs["jax"]
        for key in tf_run.files:
            a, b = tf_run[key], jax_run[key]
            assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-3), (method, key)


# ------------------------------------------------------------------ backend-neutral batches
def test_shuffled_batches_cover_each_epoch_once_and_reshuffle():
    from keras_sngan.datasets import ShuffledBatches

    x = np.arange(23, dtype="float32").reshape(23, 1)
    batches = ShuffledBatches(x, step=5, seed=3)
    assert len(batches) == 4
    epochs = []
    for _ in range(2):
        seen = np.concatenate([batch[0][:, 0] for batch in batches])
        assert len(seen) == 20 and len(set(seen)) == 20 and set(seen) <= set(range(23))
        epochs.append(seen)
        batches.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])
    again = ShuffledBatches(x, step=5, seed=3)
    np.testing.assert_array_equal(np.concatenate([b[0][:, 0] for b in again]), epochs[0])
    with pytest.raises(IndexError):
        batches[4]


# ------------------------------------------------------------------ SIGKILL and resume
@pytest.mark.parametrize("method", ["sn", "gp"])
def test_a_run_killed_with_sigkill_resumes_bit_identically(tmp_path, method):
    """BackupAndRestore: killed after epoch 2 of 4 in a real process, restarted (other init seed), same bits."""
    script = os.path.join(os.path.dirname(__file__), "wgan_resume_script.py")
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")

    def run(backup, out, seed, kill=None):
        args = [sys.executable, script, method, str(tmp_path / backup), str(tmp_path / out), str(seed)]
        return subprocess.run(args + ([str(kill)] if kill is not None else []), env=env, capture_output=True,
                              text=True, timeout=600)

    whole = run("a", "whole.npz", 1)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run("b", "killed.npz", 1, kill=1)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "killed.npz").exists()
    resumed = run("b", "resumed.npz", 99)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "resumed.npz")
    assert a.files == b.files
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ------------------------------------------------------------------ several devices (JAX)
DATA_PARALLEL_SCRIPT = """
import numpy as np, jax, keras
from keras_sngan import models
from keras_sngan.wgan import WGAN
assert len(jax.devices()) == 2, jax.devices()
rng = np.random.default_rng(0)
data = (rng.choice([-2.0, 2.0], size=(192, 1)) + 0.3 * rng.standard_normal((192, 2))).astype("float32")
runs = []
for devices in (1, 2):
    if devices == 2:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    keras.utils.set_random_seed(0)
    gan = WGAN(models.toy_critic(width=16, depth=2, lipschitz="{method}"), models.toy_generator(width=16, depth=2),
               latent_dim=2, lipschitz="{method}", n_critic=3, seed=0)
    gan.compile(critic_optimizer=keras.optimizers.SGD(1e-2), generator_optimizer=keras.optimizers.SGD(1e-2))
    gan.fit(data, batch_size=96, epochs=2, shuffle=False, verbose=0)
    if devices == 2:
        kernel = gan.critic.trainable_variables[0].value
        assert len(kernel.sharding.device_set) == 2, kernel.sharding
    runs.append([keras.ops.convert_to_numpy(v) for v in gan.weights])
for a, b in zip(*runs):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
print("same")
"""


@pytest.mark.parametrize("method", ["gp", "sn"])
def test_data_parallel_on_two_devices_equals_one_device(method):
    """keras.distribution.DataParallel over 2 (host) devices trains to one device's weights."""
    if keras.backend.backend() != "jax":
        pytest.skip("keras.distribution runs on JAX (tf.distribute is tested in tests/test_wgan.py)")
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", DATA_PARALLEL_SCRIPT.format(method=method)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same" in result.stdout


# ------------------------------------------------------------------ gan_toy.py's settings, trained
def gan_toy_modes(iterations=1500, seed=0):
    """8gaussians at gan_toy.py's settings (512 wide, batch 256, lambda 0.1, 5 critic steps): modes covered."""
    from keras_sngan import datasets
    from keras_sngan.metrics import mode_statistics

    keras.utils.set_random_seed(seed)
    data = datasets.load_dataset("8gaussians", batch_size=256, n_critic=5, seed=seed)
    gan = WGAN(models.toy_critic(lipschitz="gp"), models.toy_generator(), latent_dim=2, lipschitz="gp",
               n_critic=5, gp_weight=0.1, seed=seed)
    gan.compile()  # Adam(1e-4, 0.5, 0.9), as gan_toy.py
    epochs = -(-iterations // data.steps_per_epoch)
    steps = [data.steps_per_epoch] * (epochs - 1) + [iterations - data.steps_per_epoch * (epochs - 1)]
    for epoch, count in enumerate(steps):
        gan.fit(data.train, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=count, verbose=0)
    centers, std = datasets.gaussian_mixture_modes("8gaussians")
    return mode_statistics(numpy(gan.generate(2000)), centers, std)


@pytest.mark.slow
def test_jax_trainer_covers_the_8_gaussians_at_gan_toy_settings():
    """At least 6 of 8 modes by iteration 1500 (the TensorFlow trainer: 8 of 8 by 2000, docs/performance)."""
    if keras.backend.backend() != "jax":
        pytest.skip("the TensorFlow trainer's runs are checked by the pipeline and tests/test_oracle.py")
    stats = gan_toy_modes()
    assert stats["modes_covered"] >= 6, stats
