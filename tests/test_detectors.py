"""Detectors users can trust (issue 16): batch-independent scores, scikit-learn's own checks,
conformal thresholds whose false-alarm rate holds, normalizing-flow densities, the PyOD adapter."""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist
from scipy.stats import multivariate_normal
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit import AnomalyDetector, data
from vaekit.detectors.flows import FlowDetector, grid_step
from vaekit.evaluation.anomaly import SCORES
from vaekit.evaluation.conformal import conformal_offset, conformal_pvalues, false_alarm_interval

torch.set_num_threads(1)
#: Tiny settings that keep scikit-learn's ~45 checks per estimator to a few seconds.
FAST_VAE = {"latent_dim": 2, "hidden": (8,), "epochs": 2, "batch_size": 32, "score_num_samples": 3, "random_state": 0}
FAST_FLOW = {"transforms": 2, "hidden": (8,), "bins": 4, "epochs": 2, "batch_size": 32, "random_state": 0}


@parametrize_with_checks(
    [AnomalyDetector(**FAST_VAE), FlowDetector(flow="maf", **FAST_FLOW), FlowDetector(flow="nsf", **FAST_FLOW)]
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data sets: "calibration set too small"
        check(estimator)


# ---------------------------------------------------------------- batch independence


@pytest.fixture(scope="module")
def digits_detectors():
    x = data.load("digits", "train").x[:400].numpy()
    vae = AnomalyDetector(latent_dim=2, hidden=(32,), epochs=3, random_state=0).fit(x)
    maf = FlowDetector(transforms=2, hidden=(32,), epochs=2, random_state=0).fit(x)
    return vae, maf, data.load("digits", "test").x.numpy()


def test_scores_do_not_depend_on_the_rest_of_the_batch(digits_detectors):
    """Permuting, splitting and batching give bit-identical scores (==, not a tolerance), every score."""
    vae, maf, x = digits_detectors
    order = np.random.default_rng(0).permutation(len(x))
    for name in SCORES:
        vae.set_params(score_type=name)
        full = vae.score_samples(x)
        assert np.array_equal(vae.score_samples(x[order]), full[order]), name
        parts = np.concatenate([vae.score_samples(x[i : i + n]) for i, n in ((0, 1), (1, 7), (8, 300), (308, 52))])
        assert np.array_equal(parts, full), name
        assert np.array_equal(vae.score_samples(x[::-1]), full[::-1]), name  # negative strides
    vae.set_params(score_type="reconstruction_probability")
    full = maf.score_samples(x)
    assert np.array_equal(maf.score_samples(x[order]), full[order])
    assert np.array_equal(np.concatenate([maf.score_samples(x[:1]), maf.score_samples(x[1:])]), full)


def test_common_random_numbers_are_fixed_by_random_state(digits_detectors):
    vae, _, x = digits_detectors
    assert torch.equal(vae.noise_, vae.noise_) and vae.noise_.shape == (10, 2)
    state = torch.get_rng_state()
    first = vae.score_samples(x[:50])
    assert torch.equal(state, torch.get_rng_state())  # scoring leaves the global RNG alone
    torch.manual_seed(123)  # and the global RNG plays no part in the scores
    assert np.array_equal(vae.score_samples(x[:50]), first)
    other = AnomalyDetector(latent_dim=2, hidden=(32,), epochs=3, random_state=0).fit(
        data.load("digits", "train").x[:400].numpy()
    )
    assert np.array_equal(other.score_samples(x[:50]), first)  # same random_state: same model, same noise


# ---------------------------------------------------------------- conformal calibration


def test_conformal_pvalues_are_exactly_uniform_ranks():
    cal = np.array([0.5, 1.0, 2.0, 3.0])
    assert conformal_pvalues(cal, [0.0, 0.5, 2.5, 9.0]).tolist() == [0.2, 0.4, 0.8, 1.0]
    # k = floor(0.4 * 5) = 2: outlier iff score < 2nd smallest = 1.0  <=>  p <= 0.4
    assert conformal_offset(cal, 0.4) == 1.0 and conformal_offset(cal, 0.1) == -np.inf
    # exchangeable normal rows: P(p <= a) = floor(a (n+1)) / (n+1), checked over 20,000 draws
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(20000, 20))
    p = np.array([conformal_pvalues(row[:19], row[19:])[0] for row in draws])
    for a in (0.05, 0.1, 0.5):
        expected = np.floor(a * 20) / 20
        assert abs((p <= a).mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / len(p))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_false_alarm_rate_holds_on_held_out_digits(seed):
    """Fit on normal training digits (all classes but 0); the FPR on the test split's normal digits is
    within the beta-binomial 99 % interval of the conformal threshold (Bates et al. 2023, sec. 3.1)."""
    train, test = data.load("digits", "train"), data.load("digits", "test")
    normal_train = train.x[train.labels["digit"] != 0].numpy()
    normal_test = test.x[test.labels["digit"] != 0].numpy()
    detector = AnomalyDetector(
        latent_dim=2, hidden=(64,), epochs=5, fpr=0.1, calibration_fraction=0.3, random_state=seed
    ).fit(normal_train)
    alarms = int((detector.predict(normal_test) == -1).sum())
    low, high = false_alarm_interval(len(detector.calibration_scores_), len(normal_test), 0.1, level=0.99)
    assert low <= alarms <= high, (alarms, low, high, len(normal_test))
    p = detector.pvalues(normal_test)
    assert np.array_equal(p <= 0.1, detector.predict(normal_test) == -1)


def test_false_alarm_interval_matches_the_beta_law():
    low, high = false_alarm_interval(999, 1000, 0.05, level=0.99)
    # k = 50 of n = 999: FPR ~ Beta(50, 950), mean 0.05; the count interval brackets 50 and is ~ +-20
    assert low < 50 < high and 25 < low and high < 80
    assert beta_dist(50, 950).mean() == pytest.approx(0.05)


# ---------------------------------------------------------------- flows


def test_flow_log_density_matches_a_gaussian():
    """A MAF fitted to 4,000 draws of a correlated 2-D Gaussian recovers its log-density (nats)."""
    cov = np.array([[2.0, 1.2], [1.2, 1.0]])
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([1.0, -2.0], cov, size=4000)
    flow = FlowDetector(transforms=3, hidden=(32, 32), epochs=15, batch_size=128, random_state=0).fit(x)
    test = rng.multivariate_normal([1.0, -2.0], cov, size=500)
    truth = multivariate_normal([1.0, -2.0], cov).logpdf(test)
    assert flow.preprocess_ == "standardize" and flow.step_ == 0.0
    assert np.abs(flow.score_samples(test) - truth).mean() < 0.08


def test_flow_logit_density_integrates_to_one_on_the_unit_square():
    """The logit preprocessing's Jacobian is in the score: exp(score) integrates to 1 over [0, 1]^2."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.beta(2, 5, 3000), rng.beta(3, 3, 3000)], 1)
    flow = FlowDetector(transforms=2, hidden=(16,), epochs=5, preprocess="logit", dequantize=0.0, random_state=0).fit(x)
    grid = (np.arange(400) + 0.5) / 400
    points = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    assert np.exp(flow.score_samples(points)).mean() == pytest.approx(1.0, abs=0.03)


def test_flow_grid_step_save_load_and_images(tmp_path):
    images = data.load("digits", "train").x[:300]
    assert grid_step(images.numpy()) == pytest.approx(1 / 16)
    assert grid_step(np.random.default_rng(0).normal(size=(200, 3))) == 0.0  # 600 distinct values
    flow = FlowDetector(flow="nsf", transforms=2, hidden=(16,), bins=4, epochs=1, random_state=0).fit(images)
    assert flow.preprocess_ == "standardize" and flow.data_shape_ == (1, 8, 8)
    flow.save(tmp_path / "flow")
    loaded = FlowDetector.load(tmp_path / "flow")
    assert np.array_equal(loaded.score_samples(images), flow.score_samples(images))
    assert np.array_equal(loaded.pvalues(images), flow.pvalues(images))
    assert not list(tmp_path.glob("flow/*.pkl"))


# ---------------------------------------------------------------- PyOD


def test_pyod_adapter_follows_pyods_contract():
    pyod_base = pytest.importorskip("pyod.models.base")
    from pyod.utils.data import generate_data

    from vaekit.detectors.pyod import PyODAdapter

    x_train, x_test, y_train, y_test = generate_data(
        n_train=300, n_test=200, n_features=4, contamination=0.1, random_state=0
    )
    vae = AnomalyDetector(latent_dim=2, hidden=(32,), epochs=30, random_state=0)
    adapter = PyODAdapter(vae, contamination=0.1).fit(x_train)
    assert isinstance(adapter, pyod_base.BaseDetector)
    assert adapter.decision_scores_.shape == (300,) and set(np.unique(adapter.labels_)) == {0, 1}
    assert adapter.labels_.mean() == pytest.approx(0.1, abs=1 / 300)
    scores = adapter.decision_function(x_test)
    assert np.array_equal(scores, -adapter.detector_.score_samples(x_test))  # higher = more anomalous
    assert np.array_equal(adapter.predict(x_test), (scores > adapter.threshold_).astype(int))
    proba = adapter.predict_proba(x_test)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(1), 1)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y_test, scores) > 0.9  # pyod's synthetic outliers are easy
    conformal = PyODAdapter(vae, threshold="conformal").fit(x_train)
    assert conformal.threshold_ == -conformal.detector_.offset_
    assert np.array_equal(conformal.predict(x_test) == 1, conformal.pvalues(x_test) <= vae.fpr)
    with pytest.raises(ValueError, match="threshold must be"):
        PyODAdapter(vae, threshold="median").fit(x_train)
