"""HVAE (Caterini et al. 2018): the tempered leapfrog map (z_0, γ) -> (z_K, ρ_K) has unit Jacobian
determinant (the leapfrog preserves volume; the cooling's β_0^{d/2} cancels ρ_0 = γ/√β_0), which is what
makes the bound of Alg. 1 a bound; the dynamics are reversible; with vanishing steps the bound is the
ELBO; the bound lies below the IS log-likelihood; it trains from the CLI."""

import json
import math

import torch

import contract
from vaekit.config import Config
from vaekit.evaluation import log_likelihood
from vaekit.models import build_model
from vaekit.objectives import HVAEBound, elbo


def model(seed=0, **options):
    config = Config.from_flat(
        model="hvae",
        latent_dim=3,
        hidden=(16,),
        seed=seed,
        binarize="none",
        options={"num_leapfrog": 4, "step_size": 0.2, **options},
    )
    return build_model(config.model, (1, 8, 8), seed=seed).double()


def test_the_tempered_leapfrog_map_has_unit_jacobian():
    m = model(initial_beta=0.3)
    x = contract.batch((1, 8, 8), n=1).double()
    d = m.latent_dim

    def flow(v):
        z, rho = m.flow(x, v[:d].unsqueeze(0), v[d:].unsqueeze(0))
        return torch.cat([z[0], rho[0]])

    v = torch.randn(2 * d, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(flow, v)
    assert abs(torch.linalg.slogdet(jacobian).logabsdet.item()) < 1e-8
    betas = m.betas()
    assert abs(betas[0].item() - 0.3) < 1e-6 and abs(betas[-1].item() - 1) < 1e-12
    assert (betas[1:] >= betas[:-1]).all()


def test_the_untempered_dynamics_are_reversible():
    m = model(tempering=False)
    x = contract.batch((1, 8, 8), n=2).double()
    z0, gamma = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    with torch.no_grad():
        z, rho = m.flow(x, z0, gamma)
        back, rho_back = m.flow(x, z, -rho)
    torch.testing.assert_close(back, z0)
    torch.testing.assert_close(-rho_back, gamma)


def test_with_vanishing_steps_the_bound_is_the_elbo_and_it_lies_below_log_px():
    m = model(step_size=1e-9, tempering=False)
    x = (contract.batch((1, 8, 8), n=4) > 0.5).double()
    with torch.no_grad():
        torch.manual_seed(0)
        hvae = -HVAEBound(20000)(m, x).elbo
        torch.manual_seed(0)
        plain = elbo(m, x, num_samples=20000)
    torch.testing.assert_close(hvae, -plain, atol=0.05, rtol=0)
    m = model(initial_beta=0.5)
    with torch.no_grad():
        torch.manual_seed(0)
        bound = HVAEBound(2000)(m, x).elbo
        ll = log_likelihood(m, x, num_samples=5000, generator=torch.Generator().manual_seed(0))
    assert (bound <= ll + 0.05).all(), (bound, ll)


def test_it_trains_from_the_cli(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            "hvae",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--options",
            '{"num_leapfrog": 2}',
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
    assert io.load(tmp_path / "run").num_leapfrog == 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"])
