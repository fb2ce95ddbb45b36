"""Hyperspherical VAE (Davidson et al. 2018): the vMF normaliser against the closed form on S², the
sampler's draws against the exact mean (I_{m/2}/I_{m/2−1}) μ, the closed-form KL to the uniform
prior against the Monte Carlo KL of the draws, log I_ν's gradient by finite differences, the CLI."""

import json
import math

import pytest
import torch

from vaekit.models.hyperspherical import (
    HypersphericalUniform,
    VonMisesFisher,
    log_bessel,
)


def vmf(m, kappa, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(len(kappa), m, generator=g, dtype=torch.float64)
    return VonMisesFisher(loc / loc.norm(dim=-1, keepdim=True), torch.tensor(kappa, dtype=torch.float64))


def test_the_normaliser_on_the_two_sphere_is_kappa_over_4_pi_sinh_kappa():
    q = vmf(3, [0.5, 2.0, 30.0])
    k = q.concentration
    torch.testing.assert_close(q.log_normaliser(), (k / (4 * math.pi * torch.sinh(k))).log())


@pytest.mark.parametrize("m", [3, 5, 16])
def test_the_draws_lie_on_the_sphere_with_the_exact_mean_and_the_kl_is_their_monte_carlo_kl(m):
    torch.manual_seed(0)
    q = vmf(m, [1.0, 5.0, 50.0])
    z = q.sample((40000,))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(40000, 3, dtype=torch.float64))
    torch.testing.assert_close(z.mean(0), q.mean, atol=0.01, rtol=0)
    prior = HypersphericalUniform(m, torch.zeros(m, dtype=torch.float64))
    exact = torch.distributions.kl_divergence(q, prior)
    monte_carlo = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    torch.testing.assert_close(monte_carlo, exact, atol=0.02, rtol=0.01)


def test_the_draws_are_reparameterised_in_mu_and_kappa():
    loc = torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64, requires_grad=True)
    kappa = torch.tensor([4.0], dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(loc, kappa).rsample((64,))
    (z * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    assert loc.grad.abs().sum() > 0 and kappa.grad.abs().sum() > 0


def test_log_bessel_has_the_finite_difference_gradient():
    kappa = torch.tensor([0.3, 2.0, 40.0, 400.0], dtype=torch.float64, requires_grad=True)
    for order in (0.5, 1.0, 7.0):
        assert torch.autograd.gradcheck(lambda k, order=order: log_bessel(k, order), (kappa,))
    torch.testing.assert_close(log_bessel(kappa, 0.0), torch.special.i0(kappa).log())


def test_it_trains_from_the_cli(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            "hyperspherical",
            "--epochs",
            "1",
            "--latent-dim",
            "3",
            "--hidden",
            "16",
            "--eval-num-samples",
            "8",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "run",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code in (0, None)
    model = io.load(tmp_path / "run")
    assert model.encode(torch.rand(2, 1, 8, 8)).rsample().norm(dim=-1).allclose(torch.ones(2))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"]) and summary["test"]["kl"] > 0
