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


@pytest.mark.slow
def test_the_analytic_per_layer_kl_has_the_monte_carlo_expectation_and_less_variance():
    from vaekit.distributions import kl_or_estimate

    model = tiny(seed=2).double()
    x = contract.batch((1, 8, 8), n=3).double()
    with torch.no_grad():
        q, prior = model.encode(x), model.prior()
        torch.manual_seed(0)
        z = q.sample((5000,))
        monte_carlo = q.log_prob(z) - prior.log_prob(z)  # (draws, batch)
        # the default estimator is this Monte Carlo one, averaged over the draws
        torch.testing.assert_close(kl_or_estimate(q, prior, z), monte_carlo.mean(0))
        q.analytic_kl = True
        analytic = torch.stack([kl_or_estimate(q, prior, z[i : i + 1]) for i in range(300)])
        analytic_mean = kl_or_estimate(q, prior, z)
    # both are unbiased for the same KL: the means agree within a few Monte Carlo standard errors
    error = (monte_carlo.var(0) / z.shape[0]).sqrt()
    assert ((analytic_mean - monte_carlo.mean(0)).abs() < 4 * error + 1e-3).all()
    assert (analytic.var(0) < monte_carlo.var(0)).all()


def test_the_kl_option_reaches_the_posterior_and_bad_options_are_refused():
    from vaekit.config import Config
    from vaekit.models import build_model

    def build(**options):
        config = Config.from_flat(model="ladder", latent_dim=4, hidden=(16,), binarize="none", options=options)
        return build_model(config.model, (1, 8, 8))

    x = contract.batch((1, 8, 8), n=2)
    assert build(kl="analytic").encode(x).analytic_kl and not build().encode(x).analytic_kl
    for options in ({"kl": "exact"}, {"batch_norm": 1}):
        with pytest.raises(ValueError, match="kl|batch_norm"):
            build(**options)


@pytest.mark.slow
def test_batch_norm_sits_in_every_hidden_layer_and_evaluation_does_not_depend_on_the_batch():
    from vaekit.config import Config
    from vaekit.models import build_model
    from vaekit.nets import FeatureBatchNorm

    config = Config.from_flat(
        model="ladder", latent_dim=4, hidden=(16, 16), binarize="none", options={"batch_norm": True}
    )
    model = build_model(config.model, (1, 8, 8), seed=0)
    # bottom-up 2 + d1 + up 2, top-down 2, decoder 2 (sec. 3: BN in the deterministic layers)
    assert sum(isinstance(m, FeatureBatchNorm) for m in model.modules()) == 9
    x = contract.batch((1, 8, 8), n=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    from vaekit.objectives.elbo import elbo

    for _ in range(3):  # running statistics move away from their initial values
        optimizer.zero_grad()
        (-elbo(model, x).mean()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        whole, single = model.encode(x).mean, model.encode(x[:1]).mean
        # the decoder and p(z1|z2) take (samples, batch, dim) codes: the leading dimensions are one batch
        z = model.encode(x).sample((5,))
        torch.testing.assert_close(model.decode(z).mean[:, :1], model.decode(z[:, :1]).mean)
        torch.testing.assert_close(model.prior().log_prob(z)[:, :2], model.prior().log_prob(z[:, :2]))
    torch.testing.assert_close(whole[:1], single)


@pytest.mark.slow
def test_batch_norm_and_the_analytic_kl_train_from_the_cli_and_reload(tmp_path):
    from vaekit import io
    from vaekit.cli import main

    args = ["train", "--model", "ladder", "--epochs", "1", "--latent-dim", "4", "--hidden", "16"]
    args += ["--options", '{"top_dim": 2, "batch_norm": true, "kl": "analytic"}', "--eval-num-samples", "8"]
    code = main([*args, "--runs-dir", str(tmp_path), "--name", "run", "--no-progress", "--threads", "1"])
    assert code in (0, None)
    model = io.load(tmp_path / "run").eval()
    assert (model.batch_norm, model.kl) == (True, "analytic")
    # the running statistics were saved: the reloaded model is the trained one
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert norm.num_batches_tracked.item() > 0 and not torch.allclose(
        norm.running_var, torch.ones_like(norm.running_var)
    )
    x = (contract.batch((1, 8, 8), n=4) > 0.5).float()
    g = torch.Generator
    first = log_likelihood(model, x, num_samples=16, generator=g().manual_seed(0))
    again = log_likelihood(io.load(tmp_path / "run").eval(), x, num_samples=16, generator=g().manual_seed(0))
    torch.testing.assert_close(first, again)


def test_the_flat_mlps_take_the_same_batch_norm_and_any_leading_dimensions():
    from vaekit.nets import FeatureBatchNorm, MLPDecoder, MLPEncoder

    encoder, decoder = (
        MLPEncoder((1, 8, 8), 3, hidden=(16, 8), batch_norm=True),
        MLPDecoder((1, 8, 8), 3, (16, 8), batch_norm=True),
    )
    assert [sum(isinstance(m, FeatureBatchNorm) for m in net.modules()) for net in (encoder, decoder)] == [2, 2]
    assert not any(isinstance(m, FeatureBatchNorm) for m in MLPEncoder((1, 8, 8), 3).modules())
    decoder.eval()
    z = torch.randn(5, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(decoder(z).reshape(5, 4, -1)[:, 1], decoder(z[:, 1]).reshape(5, -1))


def test_batch_norm_is_the_default_and_folders_saved_before_it_load_without_it(tmp_path):
    from vaekit import io
    from vaekit.config import Config
    from vaekit.models import build_model

    def build(**options):
        config = Config.from_flat(model="ladder", latent_dim=4, hidden=(16,), binarize="none", options=options)
        return build_model(config.model, (1, 8, 8), seed=0)

    assert build().batch_norm and not build(batch_norm=False).batch_norm
    old = build(batch_norm=False).eval()
    io.save(old, tmp_path / "old")
    record = json.loads((tmp_path / "old" / "config.json").read_text())
    assert record["extra"].pop("batch_norm") is False and record["extra"].pop("kl") == "mc"
    assert record["config"]["model"]["options"].pop("batch_norm") is False
    (tmp_path / "old" / "config.json").write_text(json.dumps(record))  # as the ladder saved it before the option
    loaded = io.load(tmp_path / "old")
    assert (loaded.batch_norm, loaded.kl) == (False, "mc")
    x = contract.batch((1, 8, 8), n=3)
    torch.testing.assert_close(loaded.encode(x).mean, old.encode(x).mean)
