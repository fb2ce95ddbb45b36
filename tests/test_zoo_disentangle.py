"""FactorVAE and DIP-VAE I/II: the DIP moment penalty against numpy's covariance, the FactorVAE
discriminator's total-correlation estimate against the closed form of a correlated Gaussian, and
the one-optimizer split (each loss term reaches only its own parameters)."""

import math

import numpy as np
import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.models import build_model
from vaekit.objectives import build_objective
from vaekit.objectives.dip import DIP, aggregate_covariance, moment_penalty
from vaekit.objectives.factor import FactorLoss


def test_dip_covariances_are_numpys_and_the_penalty_is_eq_6():
    model, shape, _ = contract.make("dip-vae-ii", ("bernoulli", 1.0), "mlp")
    x = contract.batch(shape, n=16)
    q = model.encode(x)
    mu, var = q.mean.detach().double().numpy(), q.variance.detach().double().numpy()
    cov_i = aggregate_covariance(q, "i").detach().double().numpy()
    np.testing.assert_allclose(cov_i, np.cov(mu.T, bias=True), rtol=1e-4, atol=1e-6)
    cov_ii = aggregate_covariance(q, "ii").detach().double().numpy()
    np.testing.assert_allclose(cov_ii, np.cov(mu.T, bias=True) + np.diag(var.mean(0)), rtol=1e-4, atol=1e-6)
    c = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert moment_penalty(c, 3.0, 7.0).item() == pytest.approx(3.0 * 2 * 0.25 + 7.0 * 1.0)


def test_dip_options_and_loss():
    assert build_objective(Config.from_flat(model="dip-vae-i")) == DIP(10.0, 100.0, "i", 1.0)
    assert build_objective(Config.from_flat(model="dip-vae-ii")) == DIP(10.0, 10.0, "ii", 1.0)
    assert build_objective(Config.from_flat(model="dip-vae-i", options={"lambda_od": 2.0, "lambda_d": 3.0})) == DIP(
        2.0, 3.0, "i", 1.0
    )
    model, shape, _ = contract.make("dip-vae-i", ("bernoulli", 1.0), "mlp")
    x = contract.batch(shape, n=8)
    torch.manual_seed(0)
    out = DIP(2.0, 3.0, "i")(model, x)
    torch.manual_seed(0)
    q = model.encode(x)
    z = q.rsample()
    elbo = model.decode(z).log_prob(x) - torch.distributions.kl_divergence(q, model.prior())
    torch.testing.assert_close(out.loss, -elbo.mean() + moment_penalty(aggregate_covariance(q, "i"), 2.0, 3.0))
    with pytest.raises(ValueError, match="kind"):
        DIP(kind="iii")


def test_the_discriminator_estimates_the_total_correlation_of_a_correlated_gaussian():
    """Trained on draws of a bivariate Gaussian with correlation ρ and their dimension-wise permutation,
    D's mean logit on the draws is TC = −½ log(1 − ρ²) (Kim & Mnih 2018, eq. 3) to within 0.1 nats
    (a finitely trained discriminator underestimates the log density ratio: 0.46 for 0.51 nats here
    with a 64-64 discriminator; the default 256-256-256 one gives 0.44 at 5× the cost)."""
    from vaekit.objectives.factor import permute_dims

    config = Config.from_flat(model="factorvae", latent_dim=3, hidden=(16,), options={"disc_hidden": [64, 64]})
    model = build_model(config.model, (4,), seed=0)
    torch.manual_seed(0)
    rho = 0.8
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3)
    for _ in range(1500):
        z = torch.randn(256, 3) @ chol.T
        real, shuffled = model.tc_logits(z), model.tc_logits(permute_dims(z))
        loss = torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(shuffled).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        estimate = model.tc_logits(torch.randn(20000, 3) @ chol.T).mean().item()
    assert estimate == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.1)  # 0.46 against 0.51: the known underestimate


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {k: (None if p.grad is None else p.grad.clone()) for k, p in model.named_parameters()}


def test_each_factorvae_term_reaches_only_its_own_parameters():
    """With one optimizer: D's gradient does not depend on γ (the VAE's term never reaches D), and the
    encoder's and decoder's gradients are those of −ELBO + γ·logit D(z) alone (D's loss never reaches them)."""
    model, shape, _ = contract.make("factorvae", ("bernoulli", 1.0), "mlp")
    x = contract.batch(shape, n=8)
    out = {}
    for gamma in (0.0, 50.0):
        torch.manual_seed(0)
        out[gamma] = grads(model, FactorLoss(gamma)(model, x).loss)
    for k in out[0.0]:
        if k.startswith("discriminator."):
            torch.testing.assert_close(out[0.0][k], out[50.0][k])
    torch.manual_seed(0)
    q = model.encode(x)
    z = q.rsample()
    vae_part = (
        torch.distributions.kl_divergence(q, model.prior())
        - model.decode(z).log_prob(x)
        + 50.0 * model.tc_logits(z, detach_discriminator=True)
    ).mean()
    alone = grads(model, vae_part)
    for k, g in alone.items():
        if k.startswith("discriminator."):
            assert g is None or g.abs().sum() == 0
        else:
            torch.testing.assert_close(out[50.0][k], g)


def test_factorvae_options_and_the_disentanglement_benchmark_lists_both():
    from vaekit.benchmarks.disentanglement import MODELS as BENCHMARK
    from vaekit.models import build_model

    assert build_objective(Config.from_flat(model="factorvae", options={"gamma": 35.0}, beta=2.0)) == FactorLoss(
        35.0, 2.0
    )
    for options in ({"gamma": -1.0}, {"disc_hidden": []}):
        with pytest.raises(ValueError):
            build_model(Config.from_flat(model="factorvae", options=options, latent_dim=2, hidden=(8,)).model, (5,))
    assert {BENCHMARK[k]["model"] for k in ("factor-vae", "dip-vae-i", "dip-vae-ii")} == {
        "factorvae",
        "dip-vae-i",
        "dip-vae-ii",
    }


@pytest.mark.parametrize("name", ["factorvae", "dip-vae-ii"])
def test_trains_from_the_cli_on_the_digits(tmp_path, name):
    import json

    from vaekit.cli import main

    assert main(
        [
            "train",
            "--model",
            name,
            "--epochs",
            "1",
            "--latent-dim",
            "3",
            "--hidden",
            "32",
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
    ) in (0, None)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"])
