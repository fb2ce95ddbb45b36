"""The IS log-likelihood with a prior other than N(0, I) (issue 26, Part 1): it must use the model's
own prior. Checked against the exact marginal of a linear-Gaussian model (a Gaussian-mixture prior
and a VampPrior, both with closed-form p(x)), and against brute-force quadrature over a 2-D latent
grid for nonlinear decoders. Each case is built so that assuming N(0, I) would be far off.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.config import Config
from vaekit.distributions import Gaussian
from vaekit.evaluation import log_likelihood
from vaekit.models import MixturePriorVAE, VampPrior, build_model

D, d, SIGMA = 4, 2, 0.5
W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)  # orthogonal columns
B = torch.tensor([0.1, 0.2, -0.3, 0.0], dtype=torch.float64)


class LinearPosterior(nn.Module):
    """The exact diagonal posterior of z ~ N(m, diag s²), x = W z + b + N(0, σ² I) (W has orthogonal
    columns, so the posterior is diagonal); ``shift``/``inflate`` make it inexact on purpose."""

    def __init__(self, m, s, shift=0.0, inflate=1.0):
        super().__init__()
        self.m, self.s, self.shift, self.inflate = m, s, shift, inflate

    def forward(self, x):
        precision = 1 / self.s**2 + (W * W).sum(0) / SIGMA**2
        var = 1 / precision
        loc = var * ((x - B) @ W / SIGMA**2 + self.m / self.s**2)
        return loc + self.shift, (var.sqrt() * self.inflate).expand_as(loc)


def linear_decoder():
    dec = nn.Linear(d, D).double()
    with torch.no_grad():
        dec.weight.copy_(W)
        dec.bias.copy_(B)
    return dec


def exact_marginal(x, m, s):
    """log N(x; W m + b, W diag(s²) Wᵀ + σ² I)."""
    cov = W @ torch.diag(s**2) @ W.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    return MultivariateNormal(W @ m + B, cov).log_prob(x)


def mixture_model(encoder, m, s):
    model = MixturePriorVAE(
        encoder, linear_decoder(), Gaussian(SIGMA, (D,)), latent_dim=d, data_shape=(D,), num_components=1
    ).double()
    with torch.no_grad():
        model.component_loc.copy_(m[None])
        model.component_raw_scale.copy_(torch.log(torch.expm1(s - 1e-3))[None])
    return model.eval()


M = torch.tensor([2.5, -3.0], dtype=torch.float64)
S = torch.tensor([0.4, 0.3], dtype=torch.float64)
X = (
    W @ M
    + B
    + torch.tensor([[0.3, -0.2, 0.1, 0.4], [-0.5, 0.2, 0.3, -0.1], [0.0, 0.6, -0.2, 0.2]], dtype=torch.float64)
)


def test_exact_posterior_gives_the_exact_marginal_under_a_non_standard_prior():
    """With the exact posterior every importance weight equals p(x): any K gives log p(x) exactly."""
    model = mixture_model(LinearPosterior(M, S), M, S)
    ll = log_likelihood(model, X, num_samples=50)
    exact = exact_marginal(X, M, S)
    torch.testing.assert_close(ll, exact, rtol=0, atol=1e-8)
    # what the N(0, I) shortcut would give is far away: the test tells them apart
    wrong = exact_marginal(X, torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64))
    assert (wrong - exact).abs().min() > 5


def test_inexact_posterior_converges_to_the_exact_marginal():
    model = mixture_model(LinearPosterior(M, S, shift=0.2, inflate=1.6), M, S)
    torch.manual_seed(0)
    ll = log_likelihood(model, X, num_samples=20000)
    torch.testing.assert_close(ll, exact_marginal(X, M, S), rtol=0, atol=0.02)


def test_vampprior_linear_gaussian_matches_its_closed_form_mixture():
    """VampPrior with a linear-Gaussian decoder: p(x) = (1/K) Σ_k N(x; W μ_k + b, W Σ_k Wᵀ + σ² I),
    μ_k, Σ_k the encoder's posterior at pseudo-input u_k."""
    encoder = LinearPosterior(M, S)
    model = (
        VampPrior(encoder, linear_decoder(), Gaussian(SIGMA, (D,)), latent_dim=d, data_shape=(D,), num_components=3)
        .double()
        .eval()
    )
    with torch.no_grad():
        model.pseudo_inputs.copy_(
            torch.tensor([[3.0, -5.0, 2.0, 3.0], [0.0, -8.0, 4.0, 5.0], [4.0, -3.0, 1.0, 1.0]], dtype=torch.float64)
        )
        loc, scale = encoder(model.components())
    exact = torch.logsumexp(torch.stack([exact_marginal(X, loc[k], scale[k]) for k in range(3)]), 0) - math.log(3)
    torch.manual_seed(0)
    ll = log_likelihood(model, X, num_samples=20000)
    torch.testing.assert_close(ll, exact, rtol=0, atol=0.03)


def brute_force(model, x, half_width=8.0, n=401):
    """log ∫ p(x|z) p(z) dz by the midpoint rule on an n x n grid over [−w, w]² (float64)."""
    grid = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)  # (n², 2)
    step = grid[1] - grid[0]
    with torch.no_grad():
        log_prior = model.prior().log_prob(z)
        out = []
        for xi in x:
            log_px = model.decode(z).log_prob(xi.expand(len(z), *xi.shape))
            out.append(torch.logsumexp(log_px + log_prior, 0) + 2 * torch.log(step))
    return torch.stack(out)


@pytest.mark.parametrize("name", ["vampprior", "mixture-prior"])
def test_nonlinear_decoder_matches_brute_force_quadrature(name):
    config = Config.from_flat(
        model=name, latent_dim=2, hidden=(16,), net="mlp", likelihood="bernoulli", options={"num_components": 3}
    )
    torch.manual_seed(0)
    model = build_model(config.model, (6,), seed=1).double().eval()
    with torch.no_grad():
        model.encoder.head.linear.bias[2:] += 2.0  # wide posteriors: the proposal covers the prior's modes
        for p in model.decoder.parameters():  # a decoder whose p(x|z) changes with z, so the prior matters
            p.mul_(3.0)
        if name == "mixture-prior":  # move the prior well away from N(0, I)
            model.component_loc.copy_(torch.tensor([[2.0, 2.0], [-2.0, 1.5], [0.0, -2.5]], dtype=torch.float64))
            model.component_raw_scale.fill_(0.0)
        else:
            model.pseudo_inputs.mul_(4.0)
    x = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1]], dtype=torch.float64)
    exact = brute_force(model, x)
    torch.manual_seed(0)
    ll = log_likelihood(model, x, num_samples=20000)
    torch.testing.assert_close(ll, exact, rtol=0, atol=0.15)  # IS at K = 20,000: ~0.1 nats of noise here
    # the N(0, I) answer differs by far more: the test can tell them apart
    standard = brute_force(_with_standard_prior(model), x)
    assert (standard - exact).abs().max() > 0.5


def _with_standard_prior(model):
    """The same networks under the N(0, I) prior."""
    from vaekit.models import VAE

    return VAE(model.encoder, model.decoder, model.likelihood, 2, (6,)).double().eval()


def test_sampling_uses_the_prior():
    """Samples come from the model's own prior: decoder means at draws of the mixture, whose
    components sit far from the origin."""
    config = Config.from_flat(model="mixture-prior", latent_dim=2, hidden=(16,), options={"num_components": 2})
    model = build_model(config.model, (6,)).eval()
    with torch.no_grad():
        model.component_loc.copy_(torch.tensor([[6.0, 6.0], [6.0, -6.0]]))
        model.component_raw_scale.fill_(-4.0)
    from vaekit.distributions import sample_prior

    z = sample_prior(model.prior(), 4000, generator=torch.Generator().manual_seed(0))
    assert (z[:, 0] - 6).abs().max() < 0.5 and 0.4 < (z[:, 1] > 0).float().mean() < 0.6
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(
        model.sample(5, generator=g),
        model.decode(sample_prior(model.prior(), 5, generator=torch.Generator().manual_seed(0))).mean,
    )
    assert (
        F.mse_loss(
            sample_prior(model.prior(), 10, temperature=0.5, generator=torch.Generator().manual_seed(1))[:, 0],
            torch.full((10,), 6.0),
        )
        < 0.1
    )


def test_vampprior_pseudo_inputs_start_at_init_mean_and_reload_from_their_saved_settings(tmp_path):
    """``init_mean`` sets where the pseudo-inputs start (the paper's 0.05, Tomczak & Welling 2018 sec. 5;
    default 0.5 on [0, 1] data); it is saved with the weights, and a bad value is refused."""
    from vaekit import io

    config = Config.from_flat(
        model="vampprior", latent_dim=2, hidden=(8,), options={"num_components": 40, "init_mean": 0.05}
    )
    model = build_model(config.model, (1, 8, 8), seed=0)
    assert abs(model.pseudo_inputs.mean().item() - 0.05) < 0.005 and model.extra_config()["init_mean"] == 0.05
    default = build_model(Config.from_flat(model="vampprior", latent_dim=2, hidden=(8,)).model, (1, 8, 8), seed=0)
    assert abs(default.pseudo_inputs.mean().item() - 0.5) < 0.005
    io.save(model, tmp_path / "m")
    torch.testing.assert_close(io.load(tmp_path / "m").pseudo_inputs, model.pseudo_inputs)
    with pytest.raises(ValueError, match="init_mean"):
        build_model(Config.from_flat(model="vampprior", options={"init_mean": True}).model, (1, 8, 8), seed=0)


def test_vampprior_linear_parameterization_is_a_shared_bias_layer_on_the_identity(tmp_path):
    """``parameterization="linear"`` (pythae's VAMP): u_k = hardtanh(W e_k + b) with one bias b for
    all K components; the prior reads these pseudo-inputs, they train, and reload bit-identically."""
    from vaekit import io

    config = Config.from_flat(
        model="vampprior", latent_dim=2, hidden=(8,), options={"num_components": 5, "parameterization": "linear"}
    )
    model = build_model(config.model, (1, 8, 8), seed=0)
    layer = model.pseudo_input_layer
    assert not hasattr(model, "pseudo_inputs") and layer.weight.shape == (64, 5) and layer.bias.shape == (64,)
    expected = torch.clamp(layer(torch.eye(5)), 0.0, 1.0).reshape(5, 1, 8, 8)
    torch.testing.assert_close(model.components(), expected)
    bound = 1 / 5**0.5  # torch's default nn.Linear init, as pythae leaves it
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    model.prior().log_prob(torch.randn(3, 2)).sum().backward()
    assert layer.bias.grad is not None and layer.bias.grad.abs().sum() > 0
    io.save(model, tmp_path / "m")
    loaded = io.load(tmp_path / "m")
    assert loaded.extra_config()["parameterization"] == "linear"
    torch.testing.assert_close(loaded.components(), model.components(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="parameterization"):
        build_model(Config.from_flat(model="vampprior", options={"parameterization": "mlp"}).model, (1, 8, 8), seed=0)
