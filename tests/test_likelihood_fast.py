"""The fast importance-sampled log-likelihood gives today's estimate on the same seed.

``reference_log_likelihood`` is a copy of vaekit 0.2's implementation (re-encode per chunk,
``q.rsample``, ``torch.distributions`` log-densities, running logaddexp). The fast one makes its
draws in the same order and chunks, so the two must agree to float32 rounding: 1e-5 nats on the
mean over examples.
"""

import math

import pytest
import torch

from vaekit import Config, build_model
from vaekit.evaluation import log_likelihood
from vaekit.evaluation.likelihood import decoder_rows
from vaekit.models import condition


def _chunk_sizes(total, chunk):
    return [min(chunk, total - start) for start in range(0, total, chunk)]


@torch.no_grad()
def reference_log_likelihood(model, x, num_samples=1000, batch_size=None, max_memory_mb=256):
    """vaekit 0.2's evaluation.log_likelihood, verbatim but for the inlined importance weights."""
    batch_size = batch_size or len(x)
    per_pair = 4 * 4 * max(math.prod(x.shape[1:]), 256)
    results = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        chunk = max(1, int(max_memory_mb * 2**20 // (per_pair * len(xb))))
        running = None
        for k in _chunk_sizes(num_samples, chunk):
            q = model.encode(xb)
            z = q.rsample((k,))
            log_w = model.decode(z).log_prob(xb) + model.prior().log_prob(z) - q.log_prob(z)
            lse = torch.logsumexp(log_w, dim=0)
            running = lse if running is None else torch.logaddexp(running, lse)
        results.append(running - math.log(num_samples))
    return torch.cat(results)


CASES = {
    "bernoulli-mlp": (dict(likelihood="bernoulli", latent_dim=8), (1, 8, 8)),
    "bernoulli-conv-28": (dict(likelihood="bernoulli", net="conv", latent_dim=8), (1, 28, 28)),
    "gaussian-sigmoid": (dict(likelihood="gaussian", likelihood_scale=0.2, decoder_activation="sigmoid"), (64,)),
    "gaussian-learned": (dict(likelihood="gaussian", likelihood_scale="learned"), (64,)),
    "continuous-bernoulli": (dict(likelihood="continuous-bernoulli"), (1, 8, 8)),  # the generic path
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_estimate_as_the_reference(case):
    flat, shape = CASES[case]
    model = build_model(Config.from_flat(**flat).model, shape, True, seed=1).eval()
    g = torch.Generator().manual_seed(0)
    x = (
        (torch.rand(40, *shape, generator=g) > 0.5).float()
        if "bernoulli" == flat["likelihood"]
        else torch.rand(40, *shape, generator=g)
    )
    torch.manual_seed(7)
    expected = reference_log_likelihood(model, x, num_samples=300, batch_size=16, max_memory_mb=1e6)
    torch.manual_seed(7)
    fast = log_likelihood(model, x, num_samples=300, batch_size=16, max_memory_mb=4)  # several decoder calls
    assert abs(fast.mean().item() - expected.mean().item()) <= 1e-5
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=1e-6)


def test_conditional_view_same_estimate():
    model = build_model(
        Config.from_flat(model="cvae", likelihood="bernoulli").model, (1, 8, 8), True, seed=1, num_classes=3
    ).eval()
    x = (torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    torch.manual_seed(3)
    expected = reference_log_likelihood(condition(model, 2), x, 200, max_memory_mb=1e6)
    torch.manual_seed(3)
    fast = log_likelihood(condition(model, 2), x, 200)
    assert abs(fast.mean().item() - expected.mean().item()) <= 1e-5


@pytest.mark.parametrize("budget", [256, 0.5])
def test_default_settings_same_draws_as_the_reference(budget):
    """With the defaults (one block, 0.2's draw chunks from the memory budget) the same seed gives
    the same estimate: the draws are made in 0.2's chunks even where the decoding is not."""
    model = build_model(Config.from_flat(likelihood="bernoulli").model, (1, 8, 8), True, seed=1).eval()
    x = (torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    torch.manual_seed(11)
    expected = reference_log_likelihood(model, x, 1000, max_memory_mb=budget)
    torch.manual_seed(11)
    fast = log_likelihood(model, x, 1000, max_memory_mb=budget)
    assert abs(fast.mean().item() - expected.mean().item()) <= 1e-5


def test_decoder_rows_fit_the_cache_and_the_budget():
    model = build_model(Config.from_flat(net="mlp", hidden=(512,)).model, (1, 28, 28), True, seed=0)
    rows = decoder_rows(model, 784, 256)
    assert 256 <= rows <= 4096 and rows % 64 == 0
    assert decoder_rows(model, 784, 1) < rows  # a small budget gives smaller calls
