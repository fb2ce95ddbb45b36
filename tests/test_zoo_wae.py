"""WAE-MMD, InfoVAE-MMD and SWAE: the MMD and sliced-Wasserstein estimators against closed forms
and scipy, the objectives' weights, and that the regulariser pulls the codes to the prior."""

import math

import numpy as np
import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.models import build_model
from vaekit.objectives import build_objective
from vaekit.objectives.mmd import MMDRegularised, kernel_matrix, mmd_unbiased
from vaekit.objectives.sliced import SlicedWasserstein, sliced_wasserstein


def test_mmd_is_the_unbiased_u_statistic_of_a_brute_force_double_sum():
    from scipy.spatial.distance import cdist

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64) + 1
    for kernel, k in (("imq", lambda d2, c: c / (c + d2)), ("rbf", lambda d2, c: np.exp(-d2 / c))):

        def gram(a, b, k=k):
            d2 = cdist(a.numpy(), b.numpy(), "sqeuclidean")
            return sum(k(d2, 2 * 3 * s) for s in (0.5, 1.0, 2.0))

        kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
        expected = (kxx.sum() - np.trace(kxx)) / 42 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean()
        got = mmd_unbiased(x, y, kernel, (0.5, 1.0, 2.0)).item()
        assert got == pytest.approx(expected, rel=1e-10)


def rbf_mean(delta2: float, var: float, d: int, c: float) -> float:
    """E exp(−‖x − y‖²/c) for x − y ~ N(δ, var·I_d): Π_d (1 + 2 var/c)^{-1/2} exp(−‖δ‖²/(c + 2 var))."""
    return (1 + 2 * var / c) ** (-d / 2) * math.exp(-delta2 / (c + 2 * var))


def test_mmd_estimator_is_unbiased_against_the_closed_form_for_gaussians():
    """For P = N(μ, s² I), Q = N(0, I) and the RBF kernel, MMD² = E k(x, x′) + E k(y, y′) − 2 E k(x, y)
    in closed form; the mean of 400 estimates from n = 50 lies within 4 standard errors of it, and
    for P = Q within 4 standard errors of 0 (a biased V-statistic would sit ~ 1/n above)."""
    torch.manual_seed(0)
    d, c, mu, s = 2, 4.0, 0.7, 1.3
    exact = rbf_mean(0.0, 2 * s * s, d, c) + rbf_mean(0.0, 2.0, d, c) - 2 * rbf_mean(d * mu * mu, s * s + 1, d, c)
    for shift, scale, target in ((mu, s, exact), (0.0, 1.0, 0.0)):
        draws = torch.stack(
            [
                mmd_unbiased(
                    shift + scale * torch.randn(50, d, dtype=torch.float64),
                    torch.randn(50, d, dtype=torch.float64),
                    "rbf",
                    (c / (2 * d),),
                )
                for _ in range(400)
            ]
        )
        se = draws.std().item() / math.sqrt(len(draws))
        assert abs(draws.mean().item() - target) < 4 * se, (draws.mean().item(), target, se)
    assert exact > 0.05


def test_mmd_refuses_bad_input_and_is_zero_without_pairs():
    with pytest.raises(ValueError, match="kernel"):
        kernel_matrix(torch.zeros(2, 2), torch.zeros(2, 2), "laplace")
    with pytest.raises(ValueError, match="scales"):
        kernel_matrix(torch.zeros(2, 2), torch.zeros(2, 2), "imq", (0.0,))
    with pytest.raises(ValueError, match="x and y"):
        mmd_unbiased(torch.zeros(3, 2), torch.zeros(3, 4))
    assert mmd_unbiased(torch.zeros(1, 2), torch.ones(5, 2)).item() == 0


def test_each_projection_is_scipys_1d_wasserstein_distance():
    from scipy.stats import wasserstein_distance

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.rand(40, 3, generator=g, dtype=torch.float64)
    theta = torch.randn(3, 6, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0)
    expected = np.mean([wasserstein_distance((x @ theta[:, j]).numpy(), (y @ theta[:, j]).numpy()) for j in range(6)])
    assert sliced_wasserstein(x, y, p=1, directions=theta).item() == pytest.approx(expected, rel=1e-10)


def test_sliced_wasserstein_matches_the_gaussian_closed_form():
    """Along a direction θ, W₂²(θ·N(μ, s²I), θ·N(0, I)) = (θ·μ)² + (s − 1)²; averaged over uniform
    directions, SW₂² = ‖μ‖²/d + (s − 1)². Checked on given directions (no Monte Carlo error over θ)
    and on the default random ones."""
    from vaekit.objectives.sliced import random_directions

    torch.manual_seed(0)
    d, mu, s = 4, torch.tensor([1.0, -0.5, 0.0, 2.0], dtype=torch.float64), 1.5
    x = mu + s * torch.randn(8000, d, dtype=torch.float64)
    y = torch.randn(8000, d, dtype=torch.float64)
    theta = random_directions(d, 300, x)
    along = ((theta.T @ mu).square() + (s - 1) ** 2).mean().item()
    assert sliced_wasserstein(x, y, directions=theta).item() == pytest.approx(along, rel=0.02)
    exact = mu.square().sum().item() / d + (s - 1) ** 2
    assert sliced_wasserstein(x, y, num_projections=1000).item() == pytest.approx(exact, rel=0.1)
    with pytest.raises(ValueError, match="same|shape"):
        sliced_wasserstein(x[:5], y[:6])


@pytest.mark.parametrize(
    "name,options,expected",
    [
        ("wae", None, MMDRegularised(10.0, "imq", (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), 0.0)),
        ("wae-rbf", {"reg_weight": 3.0, "scales": [1.0]}, MMDRegularised(3.0, "rbf", (1.0,), 0.0)),
        (
            "infovae",
            {"alpha": 0.5, "lbd": 100.0},
            MMDRegularised(99.5, "imq", (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), 0.5),
        ),
        ("swae", {"num_projections": 7}, SlicedWasserstein(10.0, 7, 2.0)),
    ],
)
def test_the_objective_takes_the_models_options(name, options, expected):
    config = Config.from_flat(model=name, options=options)
    assert build_objective(config) == expected


@pytest.mark.parametrize(
    "name,options",
    [
        ("wae", {"kernel": "laplace"}),
        ("wae", {"reg_weight": 0}),
        ("infovae", {"alpha": 2.0}),
        ("infovae", {"alpha": 0.0, "lbd": 0.5}),
        ("swae", {"num_projections": 0}),
        ("swae", {"p": 0.5}),
    ],
)
def test_bad_options_are_refused_when_the_model_is_built(name, options):
    config = Config.from_flat(model=name, options=options, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError):
        build_model(config.model, (1, 8, 8))


def test_the_infovae_loss_is_the_elbo_reweighted_plus_the_mmd():
    model, shape, _ = contract.make("infovae", ("bernoulli", 1.0), "mlp")
    x = contract.batch(shape)
    torch.manual_seed(0)
    out = MMDRegularised(5.0, "imq", (1.0,), 0.25)(model, x)
    torch.manual_seed(0)
    q = model.encode(x)
    z = q.rsample()
    kl = torch.distributions.kl_divergence(q, model.prior())
    mmd = mmd_unbiased(z, model.prior().sample((4,)), "imq", (1.0,))
    expected = (0.25 * kl - model.decode(z).log_prob(x)).mean() + 5.0 * mmd
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.elbo, out.reconstruction - out.kl)


@pytest.mark.parametrize("name", ["wae", "swae"])
def test_the_regulariser_pulls_the_codes_to_the_prior_on_the_digits(name):
    """Trained alike on the digits, the WAE's / SWAE's test codes are closer (MMD², IMQ) to N(0, I)
    than a plain autoencoder's."""
    from vaekit import data as datasets
    from vaekit.training import fit

    train, test = datasets.load("digits").x, datasets.load("digits", split="test").x
    mmd = {}
    for model_name in ("ae", name):
        config = Config.from_flat(
            model=model_name,
            latent_dim=4,
            hidden=(64,),
            epochs=8,
            batch_size=64,
            seed=0,
            likelihood="gaussian",
            likelihood_scale=0.3,
        )
        model = build_model(config.model, train.shape[1:], seed=0)
        fit(model, train, config)
        model.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            codes = model.transform(test)
            mmd[model_name] = mmd_unbiased(codes, torch.randn_like(codes)).item()
    assert mmd[name] < 0.5 * mmd["ae"], mmd
