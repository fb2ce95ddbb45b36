"""Flow posteriors (planar, radial: Rezende & Mohamed 2015; IAF: Kingma et al. 2016): log q(z|x)
equals the change-of-variables formula with the Jacobian computed by autograd, the inversions
recover the base draws, the density integrates to one, the KL is the Monte Carlo estimate, and each
trains from the CLI."""

import json
import math

import pytest
import torch

import contract
from vaekit.config import Config
from vaekit.models import build_model
from vaekit.models.flow_posterior import FlowPosterior

FLOWS = ["planar-flow", "radial-flow", "iaf"]


def model(name, latent_dim=3, seed=0, num_flows=3):
    config = Config.from_flat(
        model=name, latent_dim=latent_dim, hidden=(16,), seed=seed, binarize="none", options={"num_flows": num_flows}
    )
    m = build_model(config.model, (1, 8, 8), seed=seed).double()
    with torch.no_grad():  # move the flows away from their near-identity start
        for p in m.flows.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("name", FLOWS)
def test_log_prob_is_the_change_of_variables_formula(name):
    m = model(name)
    x = contract.batch((1, 8, 8), n=2).double()
    q = m.encode(x)
    assert isinstance(q, FlowPosterior)
    torch.manual_seed(0)
    z0 = q.loc + q.scale * torch.randn_like(q.loc)
    for i in range(2):

        def push(v, i=i):
            z = v
            for t in q.transforms:
                z, _ = t(z, q.context[i])
            return z

        jacobian = torch.autograd.functional.jacobian(push, z0[i])
        log_q0 = torch.distributions.Normal(q.loc[i], q.scale[i]).log_prob(z0[i]).sum()
        expected = log_q0 - torch.linalg.slogdet(jacobian).logabsdet
        z = push(z0[i])
        # the inverse path (z not the last draw) and the stored path agree with autograd
        torch.testing.assert_close(q.log_prob(z.unsqueeze(0).expand(2, -1).clone())[i], expected)
    draws = q.rsample((5,))
    torch.testing.assert_close(q.log_prob(draws), q.log_prob(draws.clone()))


@pytest.mark.parametrize("name", FLOWS)
def test_the_inverse_recovers_the_base_draw(name):
    m = model(name)
    q = m.encode(contract.batch((1, 8, 8), n=3).double())
    z0 = q.loc + q.scale * torch.randn(4, *q.loc.shape, dtype=torch.float64)
    z = z0
    for t in q.transforms:
        z, _ = t(z, q.context)
    back = z
    for t in reversed(q.transforms):
        back = t.inverse(back, q.context)
    torch.testing.assert_close(back, z0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["planar-flow", "radial-flow", "iaf"])
def test_the_posterior_density_integrates_to_one(name):
    m = model(name, latent_dim=2)
    q = m.encode(contract.batch((1, 8, 8), n=1).double())
    t = torch.linspace(-9, 9, 361, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 1, 2)
    with torch.no_grad():
        mass = q.log_prob(z).exp().sum() * (t[1] - t[0]) ** 2
    assert abs(mass.item() - 1) < 5e-3, mass


def test_the_kl_is_the_monte_carlo_estimate():
    from vaekit.objectives import kl_to_prior

    m = model("planar-flow")
    q = m.encode(contract.batch((1, 8, 8), n=2).double())
    with pytest.raises(NotImplementedError):
        torch.distributions.kl_divergence(q, m.prior())
    z = q.rsample((50,))
    torch.testing.assert_close(kl_to_prior(m, q, z), (q.log_prob(z) - m.prior().log_prob(z)).mean(0))


@pytest.mark.parametrize("name", FLOWS)
def test_it_trains_from_the_cli(name, tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            name,
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--options",
            '{"num_flows": 2, "iaf_hidden": 8}',
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
    assert len(io.load(tmp_path / "run").flows) == 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"])
