"""Poincaré VAE (Mathieu et al. 2019): the wrapped normal's log density is the change of variables of
its sampler (against autograd's Jacobian of exp_μ), integrates to one over the 2-D ball, tends to the
Euclidean normal N(μ, σ²/4) as the curvature goes to 0 (and its Monte Carlo KL to the Gaussian KL);
rsample is differentiable; the gyroplane layer equals geoopt's distance to a gyroplane; the IS
log-likelihood of a trained model matches quadrature over the ball; bad options; the CLI."""

import json
import math

import pytest
import torch

from vaekit.models.poincare import (
    GyroplaneLayer,
    WrappedNormal,
    conformal_factor,
    log_volume,
    poincare_ball,
)

D64 = torch.float64


def wrapped(c, tangent, scale):
    """N^W(exp_0(tangent), diag scale²) in float64 on the ball of curvature −c."""
    loc = poincare_ball(c).expmap0(torch.tensor(tangent, dtype=D64))
    return WrappedNormal(loc, torch.tensor(scale, dtype=D64), c)


def disk_grid(c, n):
    """Cell centres of an n × n grid on [−R, R]² that lie in the ball (R = 1/√c), and the cell area."""
    radius = 1 / math.sqrt(c)
    t = torch.linspace(-radius, radius, n, dtype=D64)
    z = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    return z[z.norm(dim=-1) < radius * (1 - 1e-9)], (t[1] - t[0]).item() ** 2


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_log_prob_is_the_change_of_variables_through_the_exponential_map(c):
    """log N^W(z) + d log λ_z (the density on R^d) = log N(v; 0, σ²) − log|det ∂z/∂v| for z = exp_μ(v/λ_μ),
    the Jacobian by autograd; and v comes back from z as λ_μ log_μ(z)."""
    q = wrapped(c, [0.3, -0.2, 0.4], [0.4, 0.8, 0.6])
    ball = poincare_ball(c)

    def push(v):
        return ball.expmap(q.loc, v / conformal_factor(q.loc, c))

    gaussian = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3, dtype=D64), q.scale), 1)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = q.scale * torch.randn(3, generator=g, dtype=D64)
        z = push(v)
        log_det = torch.linalg.slogdet(torch.autograd.functional.jacobian(push, v))[1]
        torch.testing.assert_close(q.log_prob(z) + log_volume(z, c), gaussian.log_prob(v) - log_det)
        torch.testing.assert_close(q.tangent(z), v)


@pytest.mark.parametrize(("c", "tangent", "scale"), [(1.0, [0.3, -0.5], [0.5, 1.0]), (0.3, [0.0, 0.0], [1.0, 0.7])])
def test_the_density_integrates_to_one_over_the_two_dimensional_ball(c, tangent, scale):
    q = wrapped(c, tangent, scale)
    z, cell = disk_grid(c, 401)
    mass = (q.log_prob(z) + log_volume(z, c)).exp().sum() * cell
    assert abs(mass.item() - 1) < 1e-4, mass


def test_at_small_curvature_it_is_the_euclidean_normal_with_a_quarter_of_the_variance():
    """As c -> 0, λ -> 2 and exp_μ(v/λ_μ) -> μ + v/2: N^W(μ, σ²) -> N(μ, σ²/4) in ambient coordinates;
    its Monte Carlo KL to the prior tends to the Gaussian closed form."""
    loc, scale = torch.tensor([0.3, -0.2], dtype=D64), torch.tensor([0.5, 0.2], dtype=D64)
    euclid = torch.distributions.Independent(torch.distributions.Normal(loc, scale / 2), 1)
    z = euclid.sample((50,))
    for c, tol in ((1e-4, 1e-3), (1e-6, 1e-5)):
        q = WrappedNormal(loc, scale, c)
        assert (q.log_prob(z) + log_volume(z, c) - euclid.log_prob(z)).abs().max() < tol
    c = 1e-6
    q, p = WrappedNormal(loc, scale, c), WrappedNormal(torch.zeros(2, dtype=D64), torch.ones(2, dtype=D64), c)
    torch.manual_seed(0)
    draws = q.sample((20000,))
    monte_carlo = (q.log_prob(draws) - p.log_prob(draws)).mean()
    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2, dtype=D64), 0.5), 1)
    exact = torch.distributions.kl_divergence(euclid, prior)
    assert abs(monte_carlo - exact) < 0.03, (monte_carlo, exact)


def test_rsample_is_reparameterised_in_the_tangent_loc_and_the_scale():
    def draw(tangent, scale):
        torch.manual_seed(0)
        return WrappedNormal(poincare_ball(1.0).expmap0(tangent), scale).rsample((4,))

    tangent = torch.tensor([[0.2, -0.4, 0.1]], dtype=D64, requires_grad=True)
    scale = torch.tensor([[0.5, 0.3, 0.9]], dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(draw, (tangent, scale))
    assert draw(tangent, scale).norm(dim=-1).max() < 1


@pytest.mark.parametrize("c", [0.5, 1.0])
def test_the_gyroplane_layer_is_geoopts_signed_distance_scaled_by_the_normals_length(c):
    layer = GyroplaneLayer(3, 5, c)
    ball = poincare_ball(c)
    z = ball.expmap0(torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=D64))
    p, a = layer.planes()
    reference = ball.dist2plane(z.unsqueeze(-2), p, a, signed=True) * ball.lambda_x(p) * a.norm(dim=-1)
    torch.testing.assert_close(layer(z), reference)
    torch.testing.assert_close(layer(z.unsqueeze(0)), reference.unsqueeze(0))  # any leading shape


def test_the_is_log_likelihood_of_a_trained_model_matches_quadrature_over_the_ball():
    """log p(x) = log ∫ p(x|z) N^W(z; 0, I) λ_z² dz on a 201 × 201 grid over the unit disk (unchanged to
    1e-4 nats on 401 × 401 and 1201 × 1201) vs vaekit's IS estimate with K = 5000, for a 2-D P-VAE trained
    5 epochs on the digits with the IWAE bound (K = 8), whose q is a good proposal: within 0.05 nats
    for 3 IS seeds. (Trained with the ELBO, its posteriors can be bimodal around q's mean and the IS
    estimate at K = 5000 scatters by ±0.3 nats around the quadrature: docs/models.md.)"""
    from vaekit import data as datasets
    from vaekit.config import Config
    from vaekit.evaluation import log_likelihood
    from vaekit.models import build_model
    from vaekit.training import fit

    train, test = datasets.load("digits").x, datasets.load("digits", split="test").x
    config = Config.from_flat(
        model="poincare", latent_dim=2, hidden=(32,), epochs=5, batch_size=64, seed=0, objective="iwae", num_samples=8
    )
    model = build_model(config.model, train.shape[1:], seed=0)
    fit(model, train, config)
    model = model.double().eval()
    x = (test[:4] > 0.5).double()
    z, cell = disk_grid(1.0, 201)
    with torch.no_grad():
        prior = model.prior().log_prob(z) + log_volume(z, 1.0)
        joint = model.decode(z.unsqueeze(1).expand(-1, len(x), -1)).log_prob(x) + prior.unsqueeze(1)
        exact = torch.logsumexp(joint, 0) + math.log(cell)
        estimate = log_likelihood(model, x, num_samples=5000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate, exact, atol=0.06, rtol=0)


@pytest.mark.parametrize(
    "options",
    [{"curvature": 0.0}, {"curvature": -1.0}, {"prior_scale": 0}, {"decoder_input": "mobius"}, {"num_gyroplanes": 0}],
)
def test_bad_options_are_refused(options):
    from vaekit.config import Config
    from vaekit.models import build_model

    with pytest.raises(ValueError, match="curvature|prior_scale|decoder_input|num_gyroplanes"):
        build_model(Config.from_flat(model="poincare", latent_dim=2, hidden=(8,), options=options).model, (1, 8, 8))


@pytest.mark.parametrize("decoder_input", ["gyroplane", "logmap0"])
def test_it_trains_from_the_cli(tmp_path, decoder_input):
    from vaekit import io
    from vaekit.cli import main

    options = {"curvature": 0.5, "decoder_input": decoder_input, "num_gyroplanes": 12}
    args = ["train", "--model", "poincare", "--epochs", "1", "--latent-dim", "3", "--hidden", "16"]
    args += ["--options", json.dumps(options), "--eval-num-samples", "8", "--runs-dir", str(tmp_path)]
    assert main([*args, "--name", "run", "--no-progress", "--threads", "1"]) in (0, None)
    model = io.load(tmp_path / "run")
    assert model.curvature == 0.5 and model.decoder_input == decoder_input
    codes = model.transform(torch.rand(5, 1, 8, 8))
    assert codes.shape == (5, 3) and (codes.norm(dim=-1) < 1 / math.sqrt(0.5)).all()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["log_likelihood"]) and summary["test"]["kl"] > 0
