"""Posterior samplers against the closed-form posterior of Bayesian linear regression:
SGHMC (Chen et al. 2014) samples and SWAG's (Maddox et al. 2019) Gaussian."""

import pytest
import torch

from vaekit.training.posterior import SGHMC, SWAG

torch.set_num_threads(1)


def regression(n=50, d=3, noise=0.5, prior_std=1.0, seed=0):
    """y = X w + N(0, noise²), w ~ N(0, prior_std² I): data and the exact posterior N(mu, cov)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w + noise * torch.randn(n, generator=g, dtype=torch.float64)
    precision = x.T @ x / noise**2 + torch.eye(d, dtype=torch.float64) / prior_std**2
    cov = torch.linalg.inv(precision)
    mu = cov @ x.T @ y / noise**2
    return x, y, noise, prior_std, mu, cov


def potential(w, x, y, noise, prior_std, batch=None, generator=None):
    """U(w) = −log p(y|X, w) − log p(w) up to a constant, summed over independent chains w ``(chains, d)``;
    with ``batch``, an unbiased minibatch estimate (an independent minibatch per chain)."""
    n = len(y)
    if batch is None:
        resid, scale = y - w @ x.T, 1.0  # (chains, n)
    else:
        idx = torch.rand(len(w), n, generator=generator).argsort(1)[:, :batch]  # (chains, batch)
        resid, scale = y[idx] - (x[idx] * w[:, None, :]).sum(-1), n / batch
    return scale * (resid**2).sum() / (2 * noise**2) + (w**2).sum() / (2 * prior_std**2)


@pytest.mark.parametrize("batch", [None, 25])
def test_sghmc_matches_closed_form_posterior(batch):
    """400 independent chains, 2,000 steps each (500 burn-in), every 25th step kept: the draws' mean and
    covariance against the exact Gaussian posterior, full-batch and minibatch gradients."""
    x, y, noise, prior_std, mu, cov = regression()
    torch.manual_seed(0)
    w = torch.zeros(400, 3, dtype=torch.float64, requires_grad=True)
    sampler = SGHMC([w], lr=5e-5 if batch else 1e-4, friction=0.1)
    g = torch.Generator().manual_seed(1)
    draws = []
    for step in range(2000):
        sampler.zero_grad()
        potential(w, x, y, noise, prior_std, batch, g).backward()
        sampler.step()
        if step >= 500 and step % 25 == 0:
            draws.append(w.detach().clone())
    draws = torch.cat(draws)
    std = cov.diagonal().sqrt()
    assert torch.all((draws.mean(0) - mu).abs() < 0.1 * std), (draws.mean(0), mu)
    sample_cov = torch.cov(draws.T)
    assert torch.allclose(sample_cov, cov, rtol=0.15, atol=0.1 * cov.diagonal().min()), (sample_cov, cov)


def test_sghmc_zero_temperature_is_momentum_sgd_to_the_map():
    x, y, noise, prior_std, mu, _ = regression()
    w = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    sampler = SGHMC([w], lr=1e-3, friction=0.1, temperature=0.0)
    for _ in range(3000):
        sampler.zero_grad()
        potential(w, x, y, noise, prior_std).backward()
        sampler.step()
    assert torch.allclose(w.detach()[0], mu, atol=1e-8)  # Gaussian posterior: MAP = mean


def test_sghmc_rejects_bad_settings():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        SGHMC([w], lr=0.0)
    with pytest.raises(ValueError, match="friction"):
        SGHMC([w], lr=1e-3, friction=1.5)


@pytest.mark.parametrize("max_rank", [0, 20])
def test_swag_recovers_mean_and_covariance_of_posterior_iterates(max_rank):
    """Iterates drawn from the exact posterior: SWAG's Gaussian must be that posterior (low rank + diag
    with K = 20 > d; diagonal SWAG gets the variances and zero correlations)."""
    _, _, _, _, mu, cov = regression()
    chol = torch.linalg.cholesky(cov)
    g = torch.Generator().manual_seed(0)
    swag = SWAG(3, max_rank=max_rank)
    for _ in range(10000):
        swag.collect(mu + chol @ torch.randn(3, generator=g, dtype=torch.float64))
    std = cov.diagonal().sqrt()
    assert torch.all((swag.mean - mu).abs() < 0.05 * std)
    assert torch.allclose(swag.variance, cov.diagonal(), rtol=0.05)
    draws = torch.stack([swag.sample(g) for _ in range(10000)])
    assert torch.all((draws.mean(0) - mu).abs() < 0.05 * std)
    target = cov if max_rank else torch.diag(cov.diagonal())
    if max_rank:  # the low-rank half comes from the last K = 20 deviations only: a noisy estimate
        expected = swag.covariance()
        assert torch.allclose(torch.cov(draws.T), expected, rtol=0.1, atol=0.05 * cov.diagonal().min())
        assert torch.allclose(torch.diag(expected), cov.diagonal(), rtol=0.6)
    else:
        assert torch.allclose(torch.cov(draws.T), target, rtol=0.06, atol=0.03 * cov.diagonal().min())


def test_swag_errors():
    with pytest.raises(RuntimeError, match="collect"):
        SWAG(2).sample()
    with pytest.raises(ValueError, match="3 weights"):
        SWAG(3).collect(torch.zeros(2))
