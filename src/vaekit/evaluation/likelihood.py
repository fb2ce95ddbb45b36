"""Likelihood evaluation: importance-sampled log p(x), ELBO, reconstruction error, active units."""

from __future__ import annotations

import math

import torch

from ..distributions import kl_per_dim
from ..objectives import elbo_terms, log_importance_weights

#: Default bound on the memory of one chunk of importance samples, in MiB.
DEFAULT_MAX_MEMORY_MB = 256


def _chunk_sizes(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def _batches(x: torch.Tensor, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


@torch.no_grad()
def log_likelihood(model, x: torch.Tensor, num_samples: int = 1000, batch_size: int | None = None,
                   max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) (Burda et al. 2015, eq. 8 at evaluation; Rezende 2014).

    log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), K = ``num_samples``
    exactly. The K samples are drawn in chunks, combined with a running logsumexp, so memory is
    bounded by ``max_memory_mb`` whatever K is; examples are processed ``batch_size`` at a time.

    Args:
        model: a VAE (an AE has no likelihood).
        x: ``(batch, *data_shape)``.
        num_samples: K importance samples per example.
        batch_size: examples per chunk (default: all of them, within the memory bound).
        max_memory_mb: rough bound on one chunk's decoder output and activations, in MiB.

    Returns:
        ``(batch,)`` log p(x) in nats per example, higher is better.

    Raises:
        ValueError: num_samples < 1, or a model without a stochastic encoder.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not model.stochastic:
        raise ValueError("an AE has no likelihood; use a VAE or report the reconstruction error")
    batch_size = batch_size or len(x)
    # Floats held per (sample, example) pair: the decoder output and its largest hidden layer, ~4x data size.
    per_pair = 4 * 4 * max(math.prod(x.shape[1:]), 256)
    results = []
    for xb in _batches(x, batch_size):
        chunk = max(1, int(max_memory_mb * 2**20 // (per_pair * len(xb))))
        running = None
        for k in _chunk_sizes(num_samples, chunk):
            lse = torch.logsumexp(log_importance_weights(model, xb, k), dim=0)
            running = lse if running is None else torch.logaddexp(running, lse)
        results.append(running - math.log(num_samples))
    return torch.cat(results)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, num_samples: int = 1000, batch_size: int = 500, seed: int = 0) -> dict:
    """Test metrics of a model on ``x`` ``(N, *data_shape)``, every number averaged over examples.

    The Monte Carlo draws are seeded with ``seed`` (in a forked RNG: the global stream is left as
    it was), so the same model and data give the same numbers wherever they are evaluated.

    Returns a dict of:
        ``reconstruction``: E_q log p(x|z), nats per example (1-sample Monte Carlo; for an AE the
        log-likelihood of x at its code); ``elbo``, ``kl`` (VAE only: an AE has no bound):
        nats per example, closed-form KL; ``log_likelihood``: importance-sampled log p(x) with
        K = ``num_samples`` (VAE only); ``mse_per_pixel``: mean squared error of g(μ(x)) per
        data value, and ``mse_per_example``: summed over data values; ``active_units``:
        dimensions with Cov_x(E_q[z_d|x]) > 0.01 (Burda et al. 2015, sec. 5.2); ``kl_per_dim``
        (VAE only): list of nats per example per latent dimension.
    """
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _evaluate(model, x, num_samples, batch_size)


def _evaluate(model, x: torch.Tensor, num_samples: int, batch_size: int) -> dict:
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    means, kl_dims = [], []
    for xb in _batches(x, batch_size):
        terms = elbo_terms(model, xb)
        q = model.encode(xb)
        recon = model.decode(q.mean).mean
        sq = (recon - xb).pow(2).flatten(1)
        values = {"reconstruction": terms["reconstruction"], "kl": terms["kl"],
                  "mse_per_pixel": sq.mean(1), "mse_per_example": sq.sum(1)}
        for key, v in values.items():
            sums[key] = sums.get(key, 0.0) + v.sum().item()
        means.append(q.mean)
        if model.stochastic:
            kl_dims.append(kl_per_dim(q).sum(0))
    n = len(x)
    result = {key: v / n for key, v in sums.items()}
    if model.stochastic:
        result["elbo"] = result["reconstruction"] - result["kl"]
    else:
        del result["kl"]
    mu = torch.cat(means)
    result["active_units"] = int((mu.var(0, unbiased=True) > 0.01).sum()) if n > 1 else 0
    if model.stochastic:
        result["kl_per_dim"] = (torch.stack(kl_dims).sum(0) / n).tolist()
        result["log_likelihood"] = log_likelihood(model, x, num_samples, batch_size=batch_size).mean().item()
    model.train(was_training)
    return result


#: Units of the numbers :func:`evaluate` reports, written beside them in summary.json.
UNITS = {
    "elbo": "nats per example (higher is better)",
    "log_likelihood": "nats per example, importance sampled (higher is better)",
    "reconstruction": "nats per example, E_q log p(x|z)",
    "kl": "nats per example",
    "kl_per_dim": "nats per example per latent dimension",
    "mse_per_pixel": "squared error per data value of g(mu(x)); pixels in [0, 1]",
    "mse_per_example": "squared error summed over the data values of one example",
    "active_units": "latent dimensions with Cov_x(E[z_d|x]) > 0.01",
}
