"""The OOD scores of issue 21 on tiny data: ensemble disagreement, likelihood regret with encoder
fine-tuning (Xiao et al. 2020, Algorithm 1), the typicality test over batches of M with its bootstrap
threshold (Nalisnick et al. 2019b, Algorithm 1), and the per-pixel background of the likelihood ratio."""

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vaekit import Config, build_model, data, fit
from vaekit.cli import main
from vaekit.detectors.bayesian_vae import BayesianVAE, PosteriorSettings
from vaekit.detectors.ood import OODDetector, compute_scores
from vaekit.evaluation import ood
from vaekit.evaluation.regret import _draws, _elbo_at

torch.set_num_threads(1)
TINY = {"latent_dim": 2, "hidden": (32, 32), "epochs": 8}
CONFIG = Config.from_flat(**TINY, kl_diagnostic_points=0)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").x, data.load("digits", "test").x


@pytest.fixture(scope="module")
def tiny_model(digits):
    model = build_model(CONFIG.model, (1, 8, 8), seed=CONFIG.train.seed)
    fit(model, digits[0], CONFIG)
    return model.eval()


def _binary(x, seed=0):
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- ensemble disagreement


def test_ensemble_disagreement_formula_and_identical_members(tiny_model, digits):
    ll = torch.tensor([[-10.0, -10.0, -3.0], [-10.0, -14.0, -5.0], [-10.0, -18.0, -7.0]])  # (M=3, batch=3)
    assert torch.allclose(ood.ensemble_disagreement(ll), torch.tensor([0.0, -4.0, -2.0]))
    with pytest.raises(ValueError, match=r"\(M, batch\)"):
        ood.ensemble_disagreement(ll[:1])
    # M identical members agree exactly: the score is 0 for every input, in or out of distribution
    same = BayesianVAE(
        [copy.deepcopy(tiny_model) for _ in range(3)],
        PosteriorSettings(kind="ensemble", num_posterior_samples=3),
        CONFIG,
    )
    x = torch.cat([_binary(digits[1][:10]), _binary(torch.full((10, 1, 8, 8), 0.5))])
    scores = compute_scores(x, ["ensemble_disagreement"], tiny_model, posterior=same, num_samples=4)
    assert torch.equal(scores["ensemble_disagreement"], torch.zeros(20))
    # a member with other decoder weights disagrees, and the score drops below 0
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in other.decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    mixed = BayesianVAE([tiny_model, other], PosteriorSettings(kind="ensemble", num_posterior_samples=2), CONFIG)
    assert (
        compute_scores(x, ["ensemble_disagreement"], tiny_model, posterior=mixed, num_samples=4)[
            "ensemble_disagreement"
        ]
        < 0
    ).all()


# ---------------------------------------------------------------- likelihood regret, Algorithm 1


@pytest.mark.parametrize("binary", [True, False])
def test_encoder_regret_is_per_example_fine_tuning(tiny_model, digits, binary):
    """The vectorised version equals fine-tuning a deep copy of the encoder on each x alone with
    torch.optim.Adam (same draws), and leaves the model untouched: on binary x through the exact
    first-layer reduction (one shift vector per example instead of a copy of the first layer), on
    grey x through full copies of the encoder."""
    from vaekit.evaluation.regret import _binary_first_layer

    x = _binary(digits[1][:3]) if binary else digits[1][:3]
    assert (_binary_first_layer(tiny_model.encoder, x) is not None) == binary
    steps, lr, num_samples, seed = 15, 1e-3, 8, 4
    weights = [p.clone() for p in tiny_model.parameters()]
    fast = ood.likelihood_regret(tiny_model, x, steps, lr, num_samples, seed, method="encoder")
    assert all(torch.equal(p, w) and p.requires_grad for p, w in zip(tiny_model.parameters(), weights))
    noise = torch.randn((steps, 3, 2), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        eps = _draws(tiny_model.encode(x).mean, num_samples, seed)
    expected = []
    for i in range(3):
        encoder = copy.deepcopy(tiny_model.encoder)
        xi, ei = x[i : i + 1], eps[:, i : i + 1]
        with torch.no_grad():
            loc, scale = encoder(xi)
            before = _elbo_at(tiny_model, xi, loc, scale, loc + scale * ei)
        adam = torch.optim.Adam(encoder.parameters(), lr=lr)
        for step in range(steps):
            adam.zero_grad()
            loc, scale = encoder(xi)
            loss = -_elbo_at(tiny_model, xi, loc, scale, (loc + scale * noise[step][i : i + 1])[None]).sum()
            loss.backward()
            adam.step()
        with torch.no_grad():
            loc, scale = encoder(xi)
            expected.append(-(_elbo_at(tiny_model, xi, loc, scale, loc + scale * ei) - before))
    for p in tiny_model.parameters():
        p.grad = None
    torch.testing.assert_close(fast, torch.cat(expected), rtol=1e-4, atol=1e-4)


def test_encoder_regret_sign_conventions(tiny_model, digits):
    """Both methods return −LR (higher = in-distribution); the per-example-posterior one is clamped at
    0, Algorithm 1 is not: a step size that wrecks the encoder copy makes the ELBO worse, score > 0."""
    x = _binary(digits[1][:20])
    a = ood.likelihood_regret(tiny_model, x, 30, 1e-3, 8, seed=1)
    assert a.shape == (20,) and (a < 0).double().mean() > 0.5  # fine-tuning mostly improves the ELBO
    torch.testing.assert_close(
        a, ood.likelihood_regret(tiny_model, x, 30, 1e-3, 8, seed=1, chunk_size=7)
    )  # chunks: same
    wrecked = ood.likelihood_regret(tiny_model, x, 5, 1.0, 8, seed=1)
    assert (wrecked > 0).any()  # no clamp at 0
    assert (ood.likelihood_regret(tiny_model, x, 5, 1.0, 8, seed=1, method="posterior") <= 0).all()
    noise = _binary(torch.full((20, 1, 8, 8), 0.5), 1)
    assert ood.likelihood_regret(tiny_model, noise, 30, 1e-3, 8, seed=1).mean() < a.mean()  # noise: larger regret
    with pytest.raises(ValueError, match="unknown likelihood-regret method"):
        ood.likelihood_regret(tiny_model, x, method="weights")


# ---------------------------------------------------------------- typicality over batches of M


def test_typicality_batches_and_bootstrap_threshold():
    ll = torch.tensor([-100.0, -80.0, -60.0, -70.0, -75.0])
    assert torch.equal(ood.typicality(ll, -80.0), -(ll + 80).abs())  # M = 1: the single-input test
    # M = 2: consecutive pairs (the last one alone); every row gets its batch's score
    assert torch.equal(ood.typicality(ll, -80.0, 2), torch.tensor([-10.0, -10.0, -15.0, -15.0, -5.0]))
    batches = torch.tensor([[0, 1], [2, 3]])
    assert torch.equal(ood.typicality_statistic(ll, -80.0, batches), torch.tensor([10.0, 15.0]))
    # the bootstrap threshold is the (1 − α) quantile of the statistic over resampled M-batches
    held_out = torch.randn(400, generator=torch.Generator().manual_seed(0)).double() * 10 - 80
    eps = ood.bootstrap_threshold(held_out, -80.0, 25, 0.05, 2000, torch.Generator().manual_seed(1))
    again = ood.random_batches(400, 25, 2000, torch.Generator().manual_seed(1))
    assert eps == pytest.approx(float(torch.quantile(ood.typicality_statistic(held_out, -80.0, again), 0.95)))
    assert eps == pytest.approx(1.96 * 10 / 5, rel=0.15)  # |mean of 25 N(0, 10²)| has its 95 % quantile at 1.96·2
    assert ood.bootstrap_threshold(held_out, -80.0, 1, 0.05, 2000, torch.Generator().manual_seed(1)) > 3 * eps
    # in-distribution batches are rejected at rate ≈ α; a 5-nat shift of the mean is caught at M = 25
    g = torch.Generator().manual_seed(2)
    fresh = torch.randn(2000, generator=g).double() * 10 - 80
    rejected = ood.typicality_statistic(fresh, -80.0, ood.random_batches(2000, 25, 1000, g, replace=False)) > eps
    assert 0.02 < rejected.double().mean() < 0.09
    shifted = fresh - 5
    caught = ood.typicality_statistic(shifted, -80.0, ood.random_batches(2000, 25, 1000, g, replace=False)) > eps
    assert caught.double().mean() > 0.6
    with pytest.raises(ValueError, match="batch size M"):
        ood.typicality(ll, -80.0, 0)
    with pytest.raises(ValueError, match="alpha"):
        ood.bootstrap_threshold(held_out, -80.0, 5, 1.5)


def test_detector_typicality_threshold_is_the_bootstrap(digits):
    train, test = digits[0].numpy(), digits[1][:100].numpy()
    detector = OODDetector(score_type="typicality", typicality_batch_size=10, model_options=TINY, num_samples=4).fit(
        train
    )
    assert detector.offset_ < 0
    a = detector.score_samples(test)
    assert all(len(set(a[i : i + 10])) == 1 for i in range(0, 100, 10))  # one score per batch of 10 rows
    noise = np.random.default_rng(0).uniform(size=(100, 1, 8, 8))
    assert (detector.predict(noise) == -1).all() and (detector.predict(test) == 1).mean() >= 0.7


# ---------------------------------------------------------------- per-pixel background


def test_pixel_background_log_prob_shapes_and_formula():
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0]]).reshape(3, 1, 2, 2)
    background = ood.PixelBackground("bernoulli").fit(x)
    p = (x.sum(0) + 1) / 5  # Laplace-smoothed
    expected = torch.distributions.Bernoulli(probs=p).log_prob(x).flatten(1).sum(1)
    lp = background.log_prob(x)
    assert lp.shape == (3,)
    torch.testing.assert_close(lp, expected)
    normal = ood.PixelBackground("normal").fit(x)
    assert normal.log_prob(x).shape == (3,) and torch.isfinite(normal.log_prob(x)).all()
    again = ood.PixelBackground.from_state(*background.state())
    assert torch.equal(again.log_prob(x), lp)
    with pytest.raises(ValueError, match="shape"):
        background.log_prob(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="unknown background family"):
        ood.PixelBackground("poisson")


def test_categorical_background_and_level_perturbation_for_8_bit_pixels():
    """8-bit images: Ren et al.'s perturbation replaces a pixel by a uniform random level k/255 (the
    images stay on the grid), and the per-pixel 256-way categorical is the Laplace-smoothed histogram."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (400, 1, 2, 2), generator=g) / 255
    noisy = ood.perturb(x, 0.5, g, levels=256)
    assert torch.equal((noisy * 255).round() / 255, noisy) and 0.4 < (noisy != x).double().mean() < 0.6
    with pytest.raises(ValueError, match="levels"):
        ood.perturb(x, 0.5, levels=1)
    background = ood.PixelBackground("categorical").fit(x[:3])
    counts = torch.zeros(256)
    counts[(x[:3, 0, 1, 0] * 255).round().long()] += 1  # pixel (1, 0) of the three fitted images
    level = int((x[0, 0, 1, 0] * 255).round())
    expected_pixel = math.log((counts[level] + 1) / (3 + 256))
    assert background.params["log_probs"][0, 1, 0, level].item() == pytest.approx(expected_pixel, rel=1e-5)
    lp = background.log_prob(x[:3])
    assert lp.shape == (3,) and (lp < 0).all() and lp.max() > 4 * math.log(1 / 256)  # above uniform
    assert torch.equal(ood.PixelBackground.from_state(*background.state()).log_prob(x[:3]), lp)
    with pytest.raises(ValueError, match="8-bit"):
        ood.PixelBackground("categorical").fit(torch.full((2, 1, 2, 2), 0.5))


def test_pixel_background_ratio_separates_what_the_likelihood_cannot():
    """Ren et al.'s (2019, sec. 3) picture on 8×16 binary images: the first 32 pixels are the semantic
    part (one of two shapes S1, S2, 1 % of pixels flipped), the other 96 background (on at rate 0.2).
    The exact model of the in-distribution data scores OOD images, S1 with 2 pixels moved toward
    S2 over a blank background, *higher* (the blank background is likely); the per-pixel background
    fitted on perturbed in-distribution data explains the background part and not the shapes, so the
    ratio separates."""
    g = torch.Generator().manual_seed(0)
    shapes = torch.bernoulli(torch.full((2, 32), 0.5), generator=g)
    n = 300

    def flip(x, rate):
        return torch.where(torch.rand(x.shape, generator=g) < rate, 1 - x, x)

    semantic = flip(shapes[torch.randint(2, (n,), generator=g)], 0.01)
    x_in = torch.cat([semantic, torch.bernoulli(torch.full((n, 96), 0.2), generator=g)], 1).reshape(n, 1, 8, 16)
    differ = (shapes[0] != shapes[1]).nonzero()[:2, 0]
    odd = shapes[0].clone()
    odd[differ] = shapes[1][differ]
    x_out = torch.cat([flip(odd.expand(n, 32), 0.01), torch.zeros(n, 96)], 1).reshape(n, 1, 8, 16)

    def model_ll(x):  # the in-distribution's exact log-likelihood: a mixture of the two shapes × background
        top, bottom = x.flatten(1)[:, :32], x.flatten(1)[:, 32:]
        per_shape = torch.stack(
            [
                (top * math.log(0.99) + (1 - top) * math.log(0.01)) * s
                + (top * math.log(0.01) + (1 - top) * math.log(0.99)) * (1 - s)
                for s in shapes
            ]
        )
        shape_ll = torch.logsumexp(per_shape.sum(-1), 0) - math.log(2)
        return shape_ll + (bottom * math.log(0.2) + (1 - bottom) * math.log(0.8)).sum(1)

    background = ood.PixelBackground().fit(ood.perturb(x_in, 0.05, g))
    y = np.r_[np.zeros(n), np.ones(n)]
    raw = -torch.cat([model_ll(x_in), model_ll(x_out)])
    assert roc_auc_score(y, raw.numpy()) < 0.2  # the likelihood prefers the OOD images
    ratio = torch.cat([ood.likelihood_ratio(model_ll(x), background.log_prob(x)) for x in (x_in, x_out)])
    assert ratio.shape == (2 * n,)
    assert roc_auc_score(y, -ratio.numpy()) > 0.9


def test_detector_pixel_background_end_to_end(digits, tmp_path):
    train, test = digits[0].numpy(), digits[1][:60].numpy()
    detector = OODDetector(score_type="likelihood_ratio", background="pixel", model_options=TINY, num_samples=4).fit(
        train
    )
    assert isinstance(detector.background_, ood.PixelBackground)
    a = detector.score_samples(test)
    again = OODDetector.load(detector.save(tmp_path / "pixel"))
    assert isinstance(again.background_, ood.PixelBackground) and np.array_equal(again.score_samples(test), a)
    with pytest.raises(ValueError, match="unknown background"):
        OODDetector(score_type="likelihood_ratio", background="pixelcnn").fit(train)


# ---------------------------------------------------------------- CLI


def test_cli_new_score_options(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--runs-dir",
                str(runs),
                "--name",
                "r",
                "--epochs",
                "3",
                "--latent-dim",
                "2",
                "--hidden",
                "32",
                "--eval-num-samples",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    run = runs / "r"
    x = np.r_[data.load("digits", "test").x[:20].numpy(), np.random.default_rng(0).uniform(size=(20, 1, 8, 8))]
    np.save(tmp_path / "x.npy", x)
    base = ["ood", str(run), "--input", str(tmp_path / "x.npy"), "--num-samples", "4", "--no-progress"]
    for extra in (
        ["--score", "likelihood_ratio", "--background", "pixel"],
        ["--score", "typicality", "--typicality-batch-size", "5"],
        ["--score", "likelihood_regret", "--regret-steps", "3"],
        ["--score", "likelihood_regret", "--regret", "posterior", "--regret-steps", "3"],
        ["--score", "ensemble_disagreement", "--posterior", "swag", "--num-posterior-samples", "2"],
    ):
        capsys.readouterr()
        assert main(base + extra + ["--output", str(tmp_path / "s.csv"), "--overwrite"]) == 0, extra
        assert f"scored 40 rows with {extra[1]}" in capsys.readouterr().out
        lines = (tmp_path / "s.csv").read_text().splitlines()
        assert len(lines) == 41
    capsys.readouterr()
    assert main(base + ["--score", "likelihood_regret", "--regret", "weights"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown regret 'weights'" in err
