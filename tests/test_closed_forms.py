"""Estimators checked against closed forms: KL, likelihood densities, IWAE >= ELBO, exact PPCA."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch import nn

from vaekit import VAE, Gaussian, elbo, iwae_bound
from vaekit.config import Config
from vaekit.distributions import Bernoulli, ContinuousBernoulli, StandardNormal, diagonal_normal
from vaekit.evaluation import log_likelihood
from vaekit.models import build_model


def test_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g) + 0.3
    q, p = diagonal_normal(loc, scale), StandardNormal(torch.zeros(4), torch.ones(4))
    closed = torch.distributions.kl_divergence(q, p)
    torch.manual_seed(0)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(closed, mc, atol=0.02, rtol=0)


def test_bernoulli_and_gaussian_log_prob_match_scipy():
    g = torch.Generator().manual_seed(1)
    logits, x = torch.randn(2, 6, generator=g), torch.randint(0, 2, (2, 6), generator=g).float()
    ours = Bernoulli(1)(logits).log_prob(x)
    ref = scipy.stats.bernoulli(torch.sigmoid(logits).double().numpy()).logpmf(x.numpy()).sum(1)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)
    mean, y = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    ours = Gaussian(0.7)(mean).log_prob(y)
    ref = scipy.stats.norm(mean.double().numpy(), 0.7).logpdf(y.numpy()).sum(1)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)
    sig = Gaussian(0.2, mean_activation="sigmoid")(mean)
    torch.testing.assert_close(sig.mean, torch.sigmoid(mean))


@pytest.mark.parametrize("logit", [-3.0, -0.7, 0.0, 1e-4, 2.5])
def test_continuous_bernoulli_is_a_density_on_unit_interval(logit):
    dist = ContinuousBernoulli(1)(torch.tensor([[logit]]))
    total, _ = scipy.integrate.quad(lambda v: math.exp(dist.log_prob(torch.tensor([[v]])).item()), 0, 1)
    assert total == pytest.approx(1.0, abs=1e-4)


def trained_like_vae(seed=0):
    config = Config.from_flat(latent_dim=4, hidden=(32,), seed=seed, binarize="none")
    model = build_model(config.model, (12,), seed=config.train.seed)
    return model.eval()


def test_iwae_bound_above_elbo_and_grows_with_k():
    model = trained_like_vae()
    x = torch.bernoulli(torch.full((64, 12), 0.3), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    values = {k: iwae_bound(model, x.repeat(20, 1), num_samples=k).mean().item() for k in (1, 5, 50, 500)}
    torch.manual_seed(0)
    e = elbo(model, x, num_samples=500).mean().item()
    k1 = iwae_bound(model, x.repeat(200, 1), num_samples=1).mean().item()
    assert k1 == pytest.approx(e, abs=0.05)  # in expectation the K = 1 bound is the ELBO
    assert values[1] <= values[5] <= values[50] <= values[500]
    ll = log_likelihood(model, x, num_samples=500).mean().item()
    assert ll >= e


class ExactPosterior(nn.Module):
    """Encoder of the exact posterior of p(x|z) = N(Wz + b, s^2 I), p(z) = N(0, I) when W^T W is diagonal."""

    def __init__(self, w, b, s, scale_error=1.0):
        super().__init__()
        self.w, self.b, self.s, self.scale_error = w, b, s, scale_error
        m = w.T @ w + s**2 * torch.eye(w.shape[1])
        self.m_inv = torch.linalg.inv(m)

    def forward(self, x):
        loc = (x - self.b) @ self.w @ self.m_inv.T
        scale = self.scale_error * (self.s**2 * torch.diagonal(self.m_inv)).sqrt().expand_as(loc)
        return loc, scale


def ppca_model(scale_error=1.0):
    """A linear-Gaussian VAE (d=7, k=3, s=0.5) whose encoder is the exact posterior (scale times scale_error)."""
    g = torch.Generator().manual_seed(0)
    d, k, s = 7, 3, 0.5
    q_mat, _ = torch.linalg.qr(torch.randn(d, k, generator=g))
    w = q_mat * torch.tensor([2.0, 1.2, 0.6])  # orthogonal columns: diagonal exact posterior
    b = torch.randn(d, generator=g)
    decoder = nn.Linear(k, d)
    with torch.no_grad():
        decoder.weight.copy_(w)
        decoder.bias.copy_(b)
    model = VAE(ExactPosterior(w, b, s, scale_error), decoder, Gaussian(s), latent_dim=k, data_shape=(d,))
    x = torch.randn(20, d, generator=g) * 2
    return model, x


def test_linear_gaussian_vae_matches_probabilistic_pca():
    """ELBO = IWAE = exact log N(x; b, W W^T + s^2 I) when q is the exact posterior (Tipping & Bishop 1999).

    The KL gap KL(q(z|x) || p(z|x)) is zero, so the bound is tight.
    """
    torch.set_default_dtype(torch.float64)
    try:
        model, x = ppca_model()
        w, b, s, d = model.decoder.weight, model.decoder.bias, 0.5, 7
        exact = scipy.stats.multivariate_normal(
            b.detach().numpy(), (w @ w.T + s**2 * torch.eye(d)).detach().numpy()
        ).logpdf(x.numpy())
        # log w = log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z: IWAE is exact at any K.
        # The ELBO with the closed-form KL equals log p(x) in expectation over z.
        torch.manual_seed(0)
        np.testing.assert_allclose(elbo(model, x, num_samples=20_000).detach().numpy(), exact, atol=0.1)
        np.testing.assert_allclose(iwae_bound(model, x, 10).detach().numpy(), exact, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(log_likelihood(model, x, 100).numpy(), exact, rtol=1e-9, atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def test_log_likelihood_chunking_honours_num_samples_exactly():
    model, x = ppca_model(scale_error=1.3)  # an inexact posterior: weights vary, mildly
    rows = []
    hook = model.decoder.register_forward_hook(lambda m, inputs, out: rows.append(len(inputs[0])))
    torch.manual_seed(0)
    whole = log_likelihood(model, x, num_samples=3000, batch_size=len(x))
    assert sum(rows) == 3000 * len(x) and max(rows) <= 4096  # cache-sized decoder calls
    rows.clear()
    small = log_likelihood(model, x, num_samples=3000, batch_size=len(x), max_memory_mb=0.05)  # small chunks
    hook.remove()
    assert sum(rows) == 3000 * len(x) and max(rows) < 1000
    torch.testing.assert_close(whole, small, atol=0.06, rtol=0)  # same estimate up to MC error
    with pytest.raises(ValueError):
        log_likelihood(model, x, num_samples=0)


def test_fast_prior_kl_matches_the_generic_one():
    g = torch.Generator().manual_seed(3)
    q = diagonal_normal(torch.randn(5, 4, generator=g), torch.rand(5, 4, generator=g) + 0.1)
    generic = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.base_dist.loc, q.base_dist.scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(
        torch.distributions.kl_divergence(q, StandardNormal(torch.zeros(4), torch.ones(4))), generic
    )


def test_lean_distributions_are_torchs_own_numbers():
    """The hot-path builders (no argument broadcasting, one-call rsample, one fused BCE) give the
    shapes, draws and densities torch's own constructors give, bit for bit."""
    from torch.distributions import Bernoulli as TorchBernoulli
    from torch.distributions import Independent, Normal

    from vaekit.distributions import DiagonalNormal, IndependentBernoulli

    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(6, 3, generator=g), torch.rand(6, 3, generator=g) + 0.1
    ours, theirs = diagonal_normal(loc, scale), Independent(Normal(loc, scale), 1)
    assert isinstance(ours, (DiagonalNormal, Independent)) and not ours._validate_args
    assert (ours.batch_shape, ours.event_shape) == (theirs.batch_shape, theirs.event_shape)
    for shape in ((), (4,), (2, 5)):
        torch.manual_seed(1)
        a = ours.rsample(shape)
        torch.manual_seed(1)
        assert torch.equal(a, theirs.rsample(shape))
        assert torch.equal(ours.log_prob(a), theirs.log_prob(a))
    assert torch.equal(ours.entropy(), theirs.entropy()) and torch.equal(ours.variance, theirs.variance)
    wide = diagonal_normal(loc, torch.tensor(0.5))  # broadcast, as torch's Normal
    assert torch.equal(wide.log_prob(loc), Independent(Normal(loc, 0.5), 1).log_prob(loc))
    expanded, reference = ours.expand((2, 6)), theirs.expand((2, 6))
    assert isinstance(expanded, DiagonalNormal) and expanded.batch_shape == reference.batch_shape
    assert torch.equal(expanded.log_prob(loc), reference.log_prob(loc))
    prior = StandardNormal(torch.zeros(3), torch.ones(3))
    assert (prior.batch_shape, prior.event_shape) == (torch.Size(), torch.Size([3]))
    assert prior.expand((4,)).batch_shape == (4,)

    for logits_shape, value_shape, event_ndim in (
        ((5, 7), (5, 7), 1),
        ((2, 5, 7), (5, 7), 1),
        ((3, 4, 6, 6), (4, 6, 6), 3),
    ):
        logits, value = torch.randn(logits_shape, generator=g), torch.rand(value_shape, generator=g)
        ours = IndependentBernoulli(logits, event_ndim)
        theirs = Independent(TorchBernoulli(logits=logits, validate_args=False), event_ndim)
        assert (ours.batch_shape, ours.event_shape) == (theirs.batch_shape, theirs.event_shape)
        assert torch.equal(ours.log_prob(value), theirs.log_prob(value))
        assert torch.equal(ours.mean, theirs.mean)
        wider = (2, *ours.batch_shape)
        assert torch.equal(ours.expand(wider).log_prob(value), theirs.expand(wider).log_prob(value))


def test_one_draw_without_a_sample_dimension_is_the_same_draw():
    from vaekit.objectives import forward

    model = build_model(Config.from_flat(net="mlp", hidden=(16,), latent_dim=3).model, (8,), seed=0)
    x = torch.rand(5, 8)
    torch.manual_seed(2)
    one = forward(model, x, 1)
    torch.manual_seed(2)
    bare = forward(model, x, None)
    assert bare.z.shape == (5, 3) and bare.log_px.shape == (5,) and bare.px.batch_shape == (5,)
    assert torch.equal(one.z[0], bare.z) and torch.equal(one.log_px[0], bare.log_px)
