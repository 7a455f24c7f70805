import math

import keras
import numpy as np
import pytest
import scipy.stats

from keras_sngan import metrics
from keras_sngan.datasets import gaussian_mixture_modes, load_digits_split, sample_toy
from keras_sngan.poster.running.feature_classifier import (
    FeatureClassifier,
    load_or_train_feature_classifier,
    train_feature_classifier,
)
from keras_sngan.metrics import (
    classifier_metrics,
    critic_generalization_gap,
    frechet_distance,
    frechet_distance_from_features,
    label_coverage,
    mode_statistics,
    wasserstein1,
    wasserstein1_with_floor,
)

RNG = np.random.default_rng(0)


# --- Wasserstein-1 ----------------------------------------------------------


@pytest.mark.parametrize("shape, t", [((300, 2), (3.0, 4.0)), ((200, 2, 2, 1), (1.0, -2.0, 0.5, 2.0))])
def test_w1_of_translation_is_norm_of_shift(shape, t):
    """W1(mu, mu + t) = ||t||; a squared-Euclidean cost would give ||t||^2."""
    x = RNG.normal(size=shape)
    shift = np.asarray(t).reshape(shape[1:])
    assert wasserstein1(x, x + shift) == pytest.approx(np.linalg.norm(t), rel=1e-9)


def test_w1_matches_scipy_in_one_dimension():
    x = RNG.normal(size=300)
    y = RNG.exponential(size=200)
    assert wasserstein1(x, y) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-9)


def test_w1_with_floor_separates_good_and_shifted_generators():
    real = sample_toy("8gaussians", 1000, seed=1)
    reference = sample_toy("8gaussians", 1000, seed=2)
    good = wasserstein1_with_floor(sample_toy("8gaussians", 1000, seed=3), real, reference)
    assert good["floor"] == pytest.approx(wasserstein1(reference, real))
    assert good["floor"] > 0  # finite samples of the same law are not at distance 0
    # Real-vs-real W1 at n=1000 fluctuates between about 0.04 and 0.09 (mode
    # weights vary from sample to sample); a shift by 1 is far outside that.
    assert abs(good["excess"]) < 0.1
    shifted = wasserstein1_with_floor(sample_toy("8gaussians", 1000, seed=3) + [1.0, 0.0], real, reference)
    assert shifted["excess"] > 0.5


def test_w1_input_errors():
    with pytest.raises(ValueError, match="same number of samples"):
        wasserstein1_with_floor(np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(ValueError, match="received 2 and 3 values per sample"):
        wasserstein1(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="subsample"):
        wasserstein1(np.zeros((6000, 1)), np.zeros((6000, 1)))


# --- mode statistics ----------------------------------------------------------


@pytest.fixture(params=["8gaussians", "25gaussians"])
def mixture(request):
    return gaussian_mixture_modes(request.param)


def test_samples_on_the_modes_are_all_high_quality(mixture):
    centers, std = mixture
    stats = mode_statistics(np.repeat(centers, 3, axis=0), centers, std)
    assert stats["high_quality_fraction"] == 1.0
    assert stats["modes_covered"] == stats["num_modes"] == len(centers)
    np.testing.assert_array_equal(stats["counts"], 3)


def test_far_away_samples_are_never_high_quality(mixture):
    centers, std = mixture
    stats = mode_statistics(10.0 * centers + 5.0, centers, std)
    assert stats["high_quality_fraction"] == 0.0 and stats["modes_covered"] == 0


def test_three_of_eight_modes():
    centers, std = gaussian_mixture_modes("8gaussians")
    samples = np.concatenate([centers[[0, 3, 5]]] * 10 + [np.full((30, 2), 9.0)])
    stats = mode_statistics(samples, centers, std)
    assert stats["modes_covered"] == 3
    assert stats["high_quality_fraction"] == pytest.approx(0.5)


def test_three_sigma_boundary_and_min_count():
    centers, std = np.zeros((2, 2)) + [[0.0, 0.0], [1.0, 0.0]], 0.01
    inside = [[0.0, 2.9 * std]] * 5
    outside = [[1.0, 3.1 * std]] * 5
    stats = mode_statistics(np.array(inside + outside), centers, std)
    assert stats["high_quality_fraction"] == 0.5
    np.testing.assert_array_equal(stats["counts"], [5, 0])
    assert mode_statistics(np.array(inside), centers, std, min_count=6)["modes_covered"] == 0


def test_real_mixture_samples_score_the_gaussian_value(mixture):
    """P(||x - mu|| <= 3 sigma) = 1 - exp(-9/2) = 0.9889 for an isotropic 2-D mode."""
    centers, std = mixture
    name = "8gaussians" if len(centers) == 8 else "25gaussians"
    stats = mode_statistics(sample_toy(name, 20_000, seed=5), centers, std)
    assert stats["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert stats["modes_covered"] == len(centers)


# --- Frechet distance --------------------------------------------------------


def test_frechet_distance_closed_form_diagonal():
    """Commuting covariances: ||dmu||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_general_covariances():
    """Against tr((S1^1/2 S2 S1^1/2)^1/2) computed by eigendecompositions."""
    d = 5
    m1, m2 = RNG.normal(size=(d, d)), RNG.normal(size=(d, d))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
    mu1, mu2 = RNG.normal(size=d), RNG.normal(size=d)

    def sym_sqrt(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r1 = sym_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * sym_sqrt(r1 @ s2 @ r1))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_singular_covariances_are_exact_and_warning_free():
    """Rank-deficient covariances (dead feature units, one generated class): the analytic value, no warning."""
    import warnings

    rotation = np.linalg.qr(RNG.normal(size=(3, 3)))[0]
    s1 = rotation @ np.diag([1.0, 0.0, 0.0]) @ rotation.T
    s2 = rotation @ np.diag([4.0, 9.0, 0.0]) @ rotation.T
    mu = np.array([1.0, 2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # ||mu||^2 + (1 + 13) - 2 sqrt(1 * 4 + 0 * 9 + 0 * 0). The zero eigenvalues come
        # out as round-off of size eps * 4, and their square roots add up to d sqrt(eps * 4).
        tol = 3 * np.sqrt(np.finfo(np.float64).eps * 4.0)
        assert frechet_distance(mu, s1, np.zeros(3), s2) == pytest.approx(9.0 + 14.0 - 4.0, abs=tol)
        assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=tol)


def test_frechet_distance_rejects_a_matrix_that_is_not_a_covariance():
    with pytest.raises(ValueError, match=r"sigma2 has the eigenvalue -1 < 0"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0]))


def test_frechet_from_features_of_a_translation():
    """Same covariance, means differ by t: the distance is exactly ||t||^2."""
    features = RNG.normal(size=(500, 6)) @ RNG.normal(size=(6, 6))
    t = np.arange(6.0)
    assert frechet_distance_from_features(features, features + t) == pytest.approx(t @ t, rel=1e-6)


# --- classifier-based coverage -------------------------------------------------


def test_label_coverage_known_cases():
    collapsed = label_coverage(np.full(100, 7), 10)
    assert collapsed["kl_to_uniform"] == pytest.approx(math.log(10))
    assert collapsed["classes_covered"] == 1
    uniform = label_coverage(np.repeat(np.arange(10), 10), 10)
    assert uniform["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert uniform["classes_covered"] == 10
    three = label_coverage(np.repeat([1, 4, 8], 20), 10)
    assert three["kl_to_uniform"] == pytest.approx(math.log(10 / 3))
    assert three["classes_covered"] == 3
    # 100 labels, 10 classes: a class needs ceil(0.2 * 10) = 2 hits to count.
    stray = label_coverage(np.array([0] * 99 + [1]), 10)
    assert stray["min_count"] == 2 and stray["classes_covered"] == 1
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        label_coverage(np.array([0, 10]), 10)


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = load_digits_split()
    path = tmp_path_factory.mktemp("clf") / "digits.keras"
    classifier = load_or_train_feature_classifier(
        str(path), x_train, y_train, x_test, y_test, epochs=20, seed=0
    )
    return classifier, str(path)


def test_classifier_trains_and_caches(digits_classifier):
    classifier, path = digits_classifier
    assert classifier.test_accuracy > 0.9
    x_train, y_train, x_test, y_test = load_digits_split()
    accuracy = np.mean(classifier.predict_labels(x_test) == y_test)
    assert accuracy == pytest.approx(classifier.test_accuracy, abs=1e-6)
    # Second call loads the cached file: no training data needed, same features.
    cached = load_or_train_feature_classifier(path, None, None, None, None)
    assert cached.test_accuracy == classifier.test_accuracy
    np.testing.assert_allclose(cached.features(x_test), classifier.features(x_test), atol=1e-5)
    with pytest.raises(ValueError, match=r"must end in '\.keras'"):
        load_or_train_feature_classifier(path + ".h5", None, None, None, None)


def test_classifier_metrics_rank_generators(digits_classifier):
    classifier, _ = digits_classifier
    x_train, y_train, x_test, y_test = load_digits_split()
    real_reference = x_train[:360]
    perfect = classifier_metrics(classifier, x_train[360:720], x_test, real_reference=real_reference)
    collapsed = classifier_metrics(classifier, x_train[y_train == 3][:100], x_test)
    noise = classifier_metrics(classifier, RNG.uniform(-1, 1, size=(360, 8, 8, 1)), x_test)
    assert perfect["classifier_test_accuracy"] == classifier.test_accuracy
    assert perfect["frechet_distance"] < 2 * perfect["frechet_distance_floor"] + 1e-6
    # Both failure modes are far above the floor. (Their order is not fixed:
    # uniform noise can land nearer the real feature mean than one digit class.)
    assert collapsed["frechet_distance"] > 10 * perfect["frechet_distance_floor"]
    assert noise["frechet_distance"] > 10 * perfect["frechet_distance_floor"]
    assert perfect["classes_covered"] == 10 and perfect["kl_to_uniform"] < 0.05
    assert collapsed["classes_covered"] == 1 and collapsed["kl_to_uniform"] > 2.0
    same = classifier_metrics(classifier, x_test, x_test)
    assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-6)


def test_inception_extractor_loads_local_weights(tmp_path):
    """Real-FID features, with random (not ImageNet) InceptionV3 weights.

    ImageNet weights cannot be fetched here; random weights saved to a local
    file exercise the same path: load from the file, resize 8x8 grayscale to
    299x299 RGB, average-pooled 2048-d features equal to the source model's.
    """
    source = keras.applications.InceptionV3(
        include_top=False, weights=None, pooling="avg", input_shape=(299, 299, 3)
    )
    weights = str(tmp_path / "inception_notop.weights.h5")
    source.save_weights(weights)
    x = RNG.uniform(-1, 1, size=(6, 8, 8, 1)).astype("float32")
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(x, (299, 299)))
    expected = source.predict(np.repeat(resized, 3, axis=-1), verbose=0)
    extract = metrics.inception_feature_extractor(weights, batch_size=4)
    features = extract(x)
    assert features.shape == (6, 2048)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-7)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        metrics.inception_feature_extractor(str(tmp_path / "missing.h5"))


def test_inception_fid_is_frechet_of_extracted_features(monkeypatch):
    """inception_fid = Frechet distance of the extractor's features.

    A tiny fake extractor (mean of each image plus a fixed offset) stands in
    for InceptionV3 so the 2048-d matrix square root (~9 s each here) is not
    paid in the test; the extractor itself is tested above.
    """
    seen = {}

    def fake_extractor(weights_path, *, batch_size=32):
        seen["args"] = (weights_path, batch_size)
        return lambda images: np.stack(
            [images.mean(axis=(1, 2, 3)), images.std(axis=(1, 2, 3))], axis=1
        ).astype(np.float64)

    monkeypatch.setattr(metrics.inception, "inception_feature_extractor", fake_extractor)
    x = RNG.normal(size=(50, 4, 4, 1))
    value = metrics.inception_fid(x, x + 2.0, "weights.h5", batch_size=7)
    # Adding 2 shifts every image mean by 2 and leaves stds unchanged: FD = 2^2.
    assert value == pytest.approx(4.0, rel=1e-6)
    assert seen["args"] == ("weights.h5", 7)


# --- critic generalisation gap ------------------------------------------------


def _linear_critic(w, b):
    critic = keras.layers.Dense(1)
    critic.build((None, len(w)))
    critic.set_weights([np.asarray(w, "float32")[:, None], np.array([b], "float32")])
    return critic


def _constant_generator(latent_dim, value):
    generator = keras.layers.Dense(len(value))
    generator.build((None, latent_dim))
    generator.set_weights([np.zeros((latent_dim, len(value)), "float32"), np.asarray(value, "float32")])
    return generator


def test_gap_of_a_linear_critic_by_hand():
    """f(x) = w.x + b, constant fakes G(z) = c: every term is known exactly."""
    w, b, c = np.array([1.0, -2.0]), 0.5, np.array([0.3, -0.1])
    train = RNG.normal(size=(30, 2)) + [1.0, 0.0]
    heldout = RNG.normal(size=(30, 2))
    result = critic_generalization_gap(
        _linear_critic(w, b), _constant_generator(3, c), train, heldout, latent_dim=3, n=1000
    )
    assert result["n"] == 30  # all points of both sets, so the means are exact
    assert result["w_train"] == pytest.approx(w @ train.mean(0) - w @ c, abs=1e-5)
    assert result["w_heldout"] == pytest.approx(w @ heldout.mean(0) - w @ c, abs=1e-5)
    assert result["gap"] == pytest.approx(w @ (train.mean(0) - heldout.mean(0)), abs=1e-5)
    scores = np.concatenate([train, heldout]) @ w + b
    assert result["std_gap"] == pytest.approx(result["gap"] / scores.std(), rel=1e-4)
    capped = critic_generalization_gap(
        _linear_critic(w, b), _constant_generator(3, c), train, heldout[:10], latent_dim=3
    )
    assert capped["n"] == 10


def test_memorising_critic_has_gap_one():
    """A critic scoring 1 exactly on its training points and 0 elsewhere."""
    train = RNG.normal(size=(50, 2)).astype("float32")
    heldout = RNG.normal(size=(50, 2)).astype("float32")
    seen = {tuple(p) for p in train}

    def critic(x):
        return np.array([float(tuple(p) in seen) for p in np.asarray(x)])

    def generator(z):
        return np.asarray(z)[:, :2] + 100.0

    result = critic_generalization_gap(critic, generator, train, heldout, latent_dim=4, n=50)
    # Scores 1 on the 50 training points and 0 on the 50 held-out ones: standard deviation 1/2.
    assert result == {"w_train": 1.0, "w_heldout": 0.0, "gap": 1.0, "std_gap": 2.0, "n": 50}


def test_gap_uses_the_same_fakes_in_both_terms():
    """With noisy fakes the gap of a critic that cannot tell train from held-out points is exactly 0."""
    train = np.ones((20, 2), "float32")
    critic = _linear_critic(np.array([1.0, 1.0]), 0.0)
    generator = keras.layers.Dense(2)
    generator.build((None, 3))
    result = critic_generalization_gap(critic, generator, train, train.copy(), latent_dim=3, n=20)
    assert result["w_train"] != 0.0
    assert result["gap"] == 0.0 and result["std_gap"] == 0.0


def test_gap_argument_errors():
    with pytest.raises(ValueError, match=r"`latent_dim` must be an integer >= 1, received 0"):
        critic_generalization_gap(abs, abs, np.zeros((4, 2)), np.zeros((4, 2)), latent_dim=0)
    with pytest.raises(ValueError, match="same sample shape"):
        critic_generalization_gap(abs, abs, np.zeros((4, 2)), np.zeros((4, 3)), latent_dim=2)


def test_feature_classifier_is_a_dataclass_over_a_keras_model():
    x_train, y_train, x_test, y_test = load_digits_split()
    classifier = train_feature_classifier(x_train[:200], y_train[:200], x_test, y_test, epochs=1)
    assert isinstance(classifier, FeatureClassifier)
    assert classifier.features(x_test[:5]).shape == (5, 64)
    assert classifier.predict_proba(x_test[:5]).sum(1) == pytest.approx(np.ones(5), abs=1e-5)
