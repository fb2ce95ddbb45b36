"""β-TCVAE estimators, the KL decomposition against quadrature, the capacity objective, and the
per-epoch logging of the decomposition."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch.distributions import Independent, Normal

from vaekit import Config, build_model, fit
from vaekit.distributions import StandardNormal
from vaekit.evaluation.kl import KLDiagnostics, kl_decomposition
from vaekit.objectives import ELBO, BetaTC, build_objective
from vaekit.objectives.betatc import kl_decomposition_terms, log_weight_matrix
from vaekit.training.loop import capacity_at

LOC = torch.tensor([[-1.0, 0.5], [0.8, 0.2], [0.3, -1.2]], dtype=torch.float64)
SCALE = torch.tensor([[0.5, 0.7], [0.6, 0.4], [0.9, 0.5]], dtype=torch.float64)


def test_weight_matrices():
    mss = log_weight_matrix(5, 100, "mss").exp()
    assert torch.allclose(mss.sum(1), torch.ones(5))
    assert mss[0, 0] == pytest.approx(1 / 100) and mss[0, 1] == pytest.approx(99 / (100 * 4))
    assert torch.allclose(log_weight_matrix(4, 4, "mss").exp(), torch.full((4, 4), 0.25))
    assert torch.allclose(log_weight_matrix(4, 10, "mws"), torch.full((4, 4), -math.log(40)))
    with pytest.raises(ValueError, match="sampling"):
        log_weight_matrix(4, 10, "exact")
    with pytest.raises(ValueError, match="dataset_size"):
        log_weight_matrix(4, 2, "mss")


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_terms_sum_to_log_ratio(sampling):
    q = Independent(Normal(LOC, SCALE), 1)
    z = q.sample()
    prior = StandardNormal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    terms = kl_decomposition_terms(q, z, prior, 50, sampling)
    total = terms["mi"] + terms["tc"] + terms["dimwise_kl"]
    assert torch.allclose(total, q.log_prob(z) - prior.log_prob(z))


def exact_terms():
    """MI, TC and dimension-wise KL of the mixture of the three posteriors by 2-D quadrature."""
    grid = np.linspace(-7, 7, 1401)
    step = grid[1] - grid[0]
    loc, scale = LOC.numpy(), SCALE.numpy()
    dens = [norm.pdf(grid[None, :], loc[:, d : d + 1], scale[:, d : d + 1]) for d in range(2)]  # (3, G) each
    joint = np.einsum("ni,nj->ij", dens[0], dens[1]) / 3
    prior = np.outer(norm.pdf(grid), norm.pdf(grid))
    kl_joint = np.sum(joint * np.log(joint / prior)) * step**2
    dimwise = 0.0
    for d in range(2):
        marginal = dens[d].mean(0)
        dimwise += np.sum(marginal * np.log(marginal / norm.pdf(grid))) * step
    average_kl = np.mean(np.sum(0.5 * (scale**2 + loc**2 - 1) - np.log(scale), axis=1))
    return {"mi": average_kl - kl_joint, "tc": kl_joint - dimwise, "dimwise_kl": dimwise, "kl": average_kl}


def test_decomposition_matches_quadrature():
    """Repeating each posterior R times leaves the mixture unchanged, so N = M = 3R is exact and the
    Monte Carlo averages converge to the three integrals."""
    repeats = 1500
    q = Independent(Normal(LOC.repeat(repeats, 1), SCALE.repeat(repeats, 1)), 1)
    torch.manual_seed(0)
    z = q.sample()
    terms = kl_decomposition_terms(
        q, z, StandardNormal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)), len(z), "mss"
    )
    exact = exact_terms()
    for key in ("mi", "tc", "dimwise_kl"):
        assert terms[key].mean().item() == pytest.approx(exact[key], abs=0.03), key
    total = sum(terms[k].mean().item() for k in ("mi", "tc", "dimwise_kl"))
    assert total == pytest.approx(exact["kl"], abs=0.03)
    assert exact["mi"] > 0.3 and exact["tc"] > 0.01  # a case where every term matters


def tiny(model="betatc", **changes):
    config = Config.from_flat(model=model, latent_dim=3, hidden=(32,), epochs=2, batch_size=64, **changes)
    return config, build_model(config.model, (1, 8, 8), seed=config.train.seed)


def test_betatc_loss_and_registry():
    config, model = tiny(alpha=1.0, beta=1.0, gamma=1.0)
    objective = build_objective(config, dataset_size=1000)
    assert objective == BetaTC(alpha=1.0, beta=1.0, gamma=1.0, sampling="mws", dataset_size=1000)
    assert build_objective(config.replace(beta=6.0, alpha=2.0), dataset_size=9) == BetaTC(2.0, 6.0, 1.0, "mws", 9)
    x = torch.rand(16, 1, 8, 8).bernoulli()
    out = BetaTC(beta=6.0, dataset_size=1000)(model, x)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert set(out.per_example()) == {"elbo", "reconstruction", "kl", "mi", "tc", "dimwise_kl"}
    for mode in ("mws", "mss"):
        assert torch.isfinite(BetaTC(beta=6.0, sampling=mode, dataset_size=1000)(model, x).loss)


def test_capacity_objective():
    config, model = tiny(model="vae", beta=10.0, capacity_max=20.0, capacity_steps=100)
    assert [capacity_at(config.objective, s) for s in (0, 50, 100, 500)] == [0.0, 10.0, 20.0, 20.0]
    x = torch.rand(8, 1, 8, 8).bernoulli()
    torch.manual_seed(1)
    out = ELBO(beta=10.0)(model, x, capacity=5.0)
    expected = -out.reconstruction.mean() + 10.0 * (out.kl.mean() - 5.0).abs()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="capacity"):
        Config.from_flat(model="betatc", capacity_max=5.0)
    with pytest.raises(ValueError, match="objective"):
        Config.from_flat(model="betatc", objective="iwae")
    with pytest.raises(ValueError, match="image-size"):
        Config.from_flat(data="digits", image_size=32)


def test_fit_logs_decomposition_per_epoch():
    config, model = tiny(beta=4.0)
    x = torch.rand(300, 1, 8, 8).bernoulli()
    history = fit(model, x[:240], config, val=x[240:], hooks=[KLDiagnostics(x[240:], 1000)])
    last = history[-1]
    assert len(last["val_kl_per_dim"]) == 3
    parts = last["val_kl_mi"] + last["val_kl_tc"] + last["val_kl_dimwise"]
    assert parts == pytest.approx(last["val_kl_mc"], abs=1e-5)
    assert sum(last["val_kl_per_dim"]) == pytest.approx(last["val_kl"], rel=1e-4)
    config, model = tiny(model="vae", capacity_max=3.0, capacity_steps=4, val_fraction=0.0)
    history = fit(model, x, config, hooks=[KLDiagnostics(x, 1000, prefix="train")])
    assert history[-1]["capacity"] == 3.0 and "train_kl_mi" in history[-1]


def test_kl_decomposition_needs_a_vae():
    _, model = tiny(model="ae")
    with pytest.raises(ValueError, match="stochastic"):
        kl_decomposition(model, torch.rand(4, 1, 8, 8))
