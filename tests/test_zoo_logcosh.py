"""LogCosh-VAE: its reconstruction density is normalised (scipy quadrature), its log-density is the
log-cosh loss plus constants, and the IS log-likelihood goes through the model's own decode."""

import math

import pytest
import torch

import contract
from vaekit.models.logcosh import LogCosh, log_cosh


@pytest.mark.parametrize("alpha,scale", [(10.0, 1.0), (1.0, 0.3), (0.5, 2.0)])
def test_the_density_integrates_to_one(alpha, scale):
    from scipy.integrate import quad

    d = LogCosh(torch.tensor(0.2, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64), alpha)
    total, _ = quad(lambda x: math.exp(d.log_prob(torch.tensor(x, dtype=torch.float64)).item()), -200, 200, limit=500)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_log_prob_is_the_log_cosh_loss_plus_constants_and_stable():
    loc = torch.zeros(3)
    x = torch.tensor([0.0, 0.5, 300.0])
    d = LogCosh(loc, torch.ones(3), 10.0)
    expected = -torch.log(torch.cosh(10 * x[:2].double())).float() / 10 - d.log_norm
    torch.testing.assert_close(d.log_prob(x)[:2], expected)
    assert torch.isfinite(d.log_prob(x)).all()  # log cosh(3000) overflows cosh, not log_cosh
    torch.testing.assert_close(log_cosh(torch.tensor([3000.0])), torch.tensor([3000.0 - math.log(2)]))


def test_the_likelihood_uses_the_models_decode_not_the_heads_fused_density():
    from vaekit.evaluation import log_likelihood
    from vaekit.objectives import iwae_bound

    model, shape, _ = contract.make("logcosh-vae", ("gaussian", 0.3), "mlp")
    model.eval()
    x = contract.batch(shape)
    q = model.encode(x)
    z = q.mean
    head = model.likelihood(model.decoder(z))
    own = model.decode(z)
    assert not torch.allclose(own.log_prob(x), head.log_prob(x))
    torch.manual_seed(0)
    with torch.no_grad():
        ll = log_likelihood(model, x, num_samples=256)
        bound = iwae_bound(model, x, num_samples=256)
    assert (ll - bound).abs().mean() < 1.0, (ll, bound)  # the head's fused density was ~15 nats off


def test_alpha_is_checked():
    from vaekit.config import Config
    from vaekit.models import build_model

    with pytest.raises(ValueError, match="alpha"):
        build_model(Config.from_flat(model="logcosh-vae", options={"alpha": 0}, latent_dim=2, hidden=(8,)).model, (5,))
