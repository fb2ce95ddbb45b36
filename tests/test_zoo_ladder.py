"""Ladder VAE (Sønderby et al. 2016): the precision-weighted merge is the normalised product of two
Gaussians (eqs. 18-19); the hierarchical prior and posterior are normalised densities; the IS
log-likelihood agrees with log p(x) by quadrature over (z1, z2); it trains from the CLI."""

import json
import math

import pytest
import torch

import contract
from vaekit.evaluation import log_likelihood
from vaekit.models.ladder import LadderPosterior, LadderPrior, merge


def tiny(seed=0):
    """A ladder with z1 and z2 of one dimension each, on 8x8 images."""
    from vaekit.config import Config
    from vaekit.models import build_model

    config = Config.from_flat(model="ladder", latent_dim=2, hidden=(16,), seed=seed, binarize="none")
    return build_model(config.model, (1, 8, 8), seed=seed).eval()


def grid(half=7.0, n=281):
    t = torch.linspace(-half, half, n, dtype=torch.float64)
    z1, z2 = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], -1), (t[1] - t[0]).item() ** 2


def test_the_merge_is_the_normalised_product_of_the_two_gaussians():
    g = torch.Generator().manual_seed(0)
    loc_a, loc_b = torch.randn(5, generator=g), torch.randn(5, generator=g)
    scale_a, scale_b = torch.rand(5, generator=g) + 0.2, torch.rand(5, generator=g) + 0.2
    loc, scale = merge(loc_a, scale_a, loc_b, scale_b)
    z = torch.linspace(-10, 10, 20001).unsqueeze(-1)
    product = torch.distributions.Normal(loc_a, scale_a).log_prob(z) + torch.distributions.Normal(
        loc_b, scale_b
    ).log_prob(z)
    density = (product - torch.logsumexp(product, 0) - math.log(z[1, 0] - z[0, 0])).exp()
    mean = (density * z).sum(0) * (z[1, 0] - z[0, 0])
    var = (density * (z - mean) ** 2).sum(0) * (z[1, 0] - z[0, 0])
    torch.testing.assert_close(mean, loc, atol=1e-4, rtol=0)
    torch.testing.assert_close(var.sqrt(), scale, atol=1e-4, rtol=0)


def test_prior_and_posterior_integrate_to_one_and_sample_what_they_score():
    model = tiny().double()
    x = contract.batch((1, 8, 8), n=3).double()
    z, cell = grid()
    q = model.encode(x)
    assert isinstance(q, LadderPosterior) and isinstance(model.prior(), LadderPrior)
    with torch.no_grad():
        mass_q = q.log_prob(z.unsqueeze(1)).exp().sum(0) * cell
        mass_p = model.prior().log_prob(z).exp().sum() * cell
        torch.testing.assert_close(mass_q, torch.ones(3, dtype=torch.float64), atol=2e-3, rtol=0)
        assert abs(mass_p.item() - 1) < 2e-3
        # the grid mean of q equals the mean of its draws
        weights = q.log_prob(z.unsqueeze(1)).exp() * cell  # (G, 3)
        grid_mean = (weights.unsqueeze(-1) * z.unsqueeze(1)).sum(0)
        torch.manual_seed(0)
        draws = q.sample((40000,)).mean(0)
    torch.testing.assert_close(draws, grid_mean, atol=0.03, rtol=0)


def test_the_is_log_likelihood_matches_quadrature_over_the_hierarchy():
    model = tiny(seed=1).double()
    x = (contract.batch((1, 8, 8), n=3) > 0.5).double()
    z, cell = grid()
    with torch.no_grad():
        joint = model.decode(z.unsqueeze(1).expand(-1, 3, -1)).log_prob(x) + model.prior().log_prob(z).unsqueeze(1)
        exact = torch.logsumexp(joint, 0) + math.log(cell)
        estimate = log_likelihood(model, x, num_samples=20000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0)


def test_bad_splits_are_refused():
    from vaekit.config import Config
    from vaekit.models import build_model

    for options in ({"top_dim": 4}, {"top_dim": 0}, {"hidden_top": 0}):
        with pytest.raises(ValueError, match="top_dim|hidden_top"):
            build_model(Config.from_flat(model="ladder", latent_dim=4, options=options).model, (1, 8, 8))


def test_it_trains_from_the_cli(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    code = main(
        [
            "train",
            "--model",
            "ladder",
            "--epochs",
            "1",
            "--latent-dim",
            "4",
            "--hidden",
            "16",
            "--options",
            '{"top_dim": 2, "hidden_top": 8}',
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
    assert (model.top_dim, model.bottom_dim) == (2, 2)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"])
