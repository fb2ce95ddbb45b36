"""Likelihood evaluation: importance-sampled log p(x), ELBO, reconstruction error, active units."""

from __future__ import annotations

import contextlib
import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..distributions import Bernoulli, DiagonalNormal, Gaussian, StandardNormal, kl_per_dim
from ..objectives import elbo_terms
from ..objectives.elbo import check_data
from ..runtime import distributed
from .reconstruction import MSE_UNITS

#: Default bound on the memory of one block of importance samples, in MiB.
DEFAULT_MAX_MEMORY_MB = 256
#: Rows of one decoder call are kept between these bounds (see :func:`decoder_rows`).
MIN_ROWS, MAX_ROWS = 256, 4096


def _batches(x: torch.Tensor, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


@functools.lru_cache(maxsize=1)
def l2_cache_bytes() -> int:
    """This CPU's per-core L2 cache in bytes (Linux sysfs; 1 MiB where it cannot be read)."""
    for index in range(4):
        base = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}")
        try:
            if (base / "level").read_text().strip() == "2":
                size = (base / "size").read_text().strip().upper()
                scale = {"K": 2**10, "M": 2**20}.get(size[-1], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            break
    return 2**20


def _widest(model, data_size: int) -> int:
    """The widest row of the decoder's work: its largest linear layer or the data size."""
    widths = [m.out_features for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    return max([data_size, *widths])


def decoder_rows(model, data_size: int, max_memory_mb: float) -> int:
    """Rows (latent codes) per decoder call: as many as keep the widest activation of one call in
    the L2 cache (a GEMM of a few hundred rows runs near the CPU's peak; one of 65k rows streams
    from memory at under half of it), rounded to a multiple of 64, within [:data:`MIN_ROWS`,
    :data:`MAX_ROWS`] and the memory budget (about 4 floats of the widest row per code)."""
    widest = _widest(model, data_size) if hasattr(model, "decoder") else max(data_size, 256)
    rows = l2_cache_bytes() // (4 * widest) // 64 * 64
    budget = int(max_memory_mb * 2**20 // (16 * widest))
    return max(1, min(budget, max(MIN_ROWS, min(MAX_ROWS, rows))))


def _log_density(model, params: torch.Tensor, x: torch.Tensor, sign: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x|z) summed over data values, fused for the Bernoulli and Gaussian heads:
    ``params`` ``(k, b, D)`` decoder outputs, ``x`` ``(b, D)`` -> ``(k, b)``.

    Bernoulli(logits l): Σ x·l − softplus(l) (= −BCE with logits); on binary x, with
    ``sign`` = 1 − 2x, the same as −Σ softplus(sign·l) (one pass over l instead of three).
    Gaussian(m, s): −½ Σ ((x − m)/s)² − Σ log s − (D/2) log 2π.
    """
    head = model.likelihood
    if isinstance(head, Bernoulli):
        if sign is not None:
            return -F.softplus(params.mul_(sign)).sum(-1)
        return (params * x).sum(-1) - F.softplus(params).sum(-1)
    if isinstance(head, Gaussian):
        loc = torch.sigmoid(params) if head.mean_activation == "sigmoid" else params
        scale = head.scale
        if torch.is_tensor(scale):
            scale = scale.reshape(-1)
            return (
                -0.5 * ((x - loc) / scale).square().sum(-1)
                - scale.log().sum()
                - 0.5 * x.shape[-1] * math.log(2 * math.pi)
            )
        return -0.5 / scale**2 * (x - loc).square().sum(-1) - x.shape[-1] * (
            math.log(scale) + 0.5 * math.log(2 * math.pi)
        )
    raise TypeError(f"no fused log-density for {type(head).__name__}")


def _draw_chunks(num_samples: int, batch: int, data_size: int, max_memory_mb: float) -> list[int]:
    """How many of the K draws are made at a time: vaekit 0.2's chunks (its memory rule), so that
    the same seed gives the same draws, and the same estimate, as 0.2 did."""
    per_pair = 4 * 4 * max(data_size, 256)
    chunk = max(1, int(max_memory_mb * 2**20 // (per_pair * batch)))
    return [min(chunk, num_samples - start) for start in range(0, num_samples, chunk)]


def _fused(model) -> bool:
    """True when the decoder's output feeds a head whose log-density is fused (:func:`_log_density`):
    a model that overrides ``decode`` (e.g. the LogCosh-VAE, whose p(x|z) is not its head's) never is."""
    from ..models import AE

    return (
        not getattr(model, "conditional", False)
        and hasattr(model, "decoder")
        and getattr(type(model), "decode", None) is AE.decode
        and isinstance(model.likelihood, (Bernoulli, Gaussian))
    )


def _sub_log_weights(model, q, loc, scale, log_scale, eps, xb, flat, sign, rows) -> torch.Tensor:
    """log w ``(k, b)`` of b examples (their posterior ``q``, and for a diagonal-Gaussian q its
    ``loc``, ``scale`` ``(b, d)``) for the draws ``eps`` ``(k, b, d)``, decoded ``rows`` codes at a time.

    z = loc + scale·ε for a diagonal-Gaussian q, else k draws of ``q.sample`` (``eps`` then only sets k).
    log p(z) − log q(z|x) is the closed form Σ_d ½(ε² − z²) + log σ_d only when the prior *is*
    :class:`~vaekit.distributions.StandardNormal` (checked by type, never assumed); any other prior
    (VampPrior, mixtures, ...) goes through ``model.prior().log_prob`` and ``q.log_prob``."""
    k, b = eps.shape[:2]
    out = torch.empty(k, b, dtype=eps.dtype, device=eps.device)
    per_call = max(1, rows // b)
    prior = model.prior()
    standard = type(prior) is StandardNormal and loc is not None
    for k0 in range(0, k, per_call):
        e = eps[k0 : k0 + per_call]
        if loc is None:
            z = q.sample((len(e),))
        else:
            z = loc + scale * e
        if standard:  # log p(z) − log q(z|x) at z = μ + σ·ε, closed form (2π cancels)
            prior_ratio = (e * e - z * z).sum(-1).mul_(0.5).add_(log_scale)
        else:
            prior_ratio = prior.log_prob(z) - q.log_prob(z)
        if flat is not None:
            params = model.decoder(z.reshape(-1, z.shape[-1])).reshape(len(e), b, -1)
            log_px = _log_density(model, params, flat, sign)
        else:
            log_px = model.decode(z).log_prob(xb)
        out[k0 : k0 + len(e)] = log_px + prior_ratio
    return out


def _block_estimate(
    model,
    xb: torch.Tensor,
    num_samples: int,
    rows: int,
    max_memory_mb: float,
    generator: torch.Generator | None,
    unit: int,
) -> tuple[torch.Tensor, int]:
    """log p(x) ``(b,)`` of one block, this rank's parts only (zeros elsewhere), and the next
    work-unit number. Every rank makes every draw, so the random stream stays that of one process."""
    world, rank = distributed.world_size(), distributed.rank()
    size = math.prod(xb.shape[1:])
    # work units: slices of the block's examples, at most a decoder call's rows, and shared by ranks
    step = max(1, min(rows, -(-len(xb) // world)))
    slices = [slice(s, s + step) for s in range(0, len(xb), step)]
    mine = [(unit + i) % world == rank for i in range(len(slices))]
    q = model.encode(xb)
    gaussian = isinstance(q, DiagonalNormal)
    # any other posterior is encoded once per work unit (torch distributions cannot be sliced)
    parts = {} if gaussian else {i: model.encode(xb[sl]) for i, (sl, own) in enumerate(zip(slices, mine)) if own}
    fused = _fused(model)
    flat = xb.reshape(len(xb), -1) if fused else None  # a view: x is never copied per sample
    binary = fused and isinstance(model.likelihood, Bernoulli) and bool(((flat == 0) | (flat == 1)).all())
    sign = 1 - 2 * flat if binary else None  # (b, D), once per block
    latent = model.latent_dim
    dtype, device = q.mean.dtype, q.mean.device
    running = None
    for k in _draw_chunks(num_samples, len(xb), size, max_memory_mb):
        eps = torch.randn((k, len(xb), latent), generator=generator, dtype=dtype, device=device)
        if not any(mine):
            continue  # drawn all the same: the stream stays that of one process
        lse = torch.zeros(len(xb), dtype=dtype, device=device)
        for i, (sl, own) in enumerate(zip(slices, mine)):
            if own:
                if gaussian:
                    normal = q.base_dist
                    q_sl, loc, scale = (
                        DiagonalNormal(normal.loc[sl], normal.scale[sl]),
                        normal.loc[sl],
                        normal.scale[sl],
                    )
                    log_scale = scale.log().sum(-1)
                else:
                    q_sl, loc, scale, log_scale = parts[i], None, None, None
                log_w = _sub_log_weights(
                    model,
                    q_sl,
                    loc,
                    scale,
                    log_scale,
                    eps[:, sl],
                    xb[sl],
                    None if flat is None else flat[sl],
                    None if sign is None else sign[sl],
                    rows,
                )
                lse[sl] = torch.logsumexp(log_w, dim=0)
        running = lse if running is None else torch.logaddexp(running, lse)
    out = torch.zeros(len(xb), dtype=dtype, device=device)
    if any(mine):
        for sl, own in zip(slices, mine):
            if own:
                out[sl] = running[sl]
    return out, unit + len(slices)


@torch.no_grad()
def log_likelihood(
    model,
    x: torch.Tensor,
    num_samples: int = 1000,
    batch_size: int | None = None,
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) (Burda et al. 2015, eq. 8 at evaluation; Rezende 2014).

    log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k = μ(x) + σ(x)·ε_k, ε_k ~ N(0, I),
    K = ``num_samples`` exactly; p(z) is the model's own prior, ``model.prior()``. Each block of
    examples is encoded once; its draws are decoded a cache-sized number of codes at a time
    (:func:`decoder_rows`), x broadcast, never copied; log p(z) − log q(z|x) is computed in closed
    form from the draws when the prior is N(0, I) (:class:`~vaekit.distributions.StandardNormal`, by
    type), else from ``prior.log_prob`` and ``q.log_prob``; the Bernoulli and Gaussian
    log-densities are fused (other heads use their ``torch.distributions`` ``log_prob``).
    The draws come from ``generator`` (default: the global RNG) in the order and chunks of vaekit
    0.2's implementation, so the same seed gives the same estimate (to float rounding; checked
    against a copy of it in ``tests/test_likelihood_fast.py``).

    Under torch.distributed (an initialised process group) the decoding is shared among the ranks
    (slices of each block, round robin) and the results all-reduced: every rank returns the
    whole result, equal to one process's. Every rank makes every draw, so all ranks must enter
    in the same RNG state (as :func:`evaluate` ensures by seeding) or pass generators seeded alike.

    Args:
        model: a VAE (an AE has no likelihood); a conditional model through ``condition(model, c)``.
        x: ``(batch, *data_shape)``.
        num_samples: K importance samples per example.
        batch_size: examples per block (default: all of them).
        max_memory_mb: rough bound on one chunk of draws and one decoder call, in MiB.
        generator: the source of the draws (default: the global RNG).

    Returns:
        ``(batch,)`` log p(x) in nats per example, higher is better.

    Raises:
        ValueError: num_samples < 1, a model without a stochastic encoder, or x with NaN/Inf or
            values outside the likelihood's support (e.g. outside [0, 1] for a Bernoulli head).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not model.stochastic:
        raise ValueError("an AE has no likelihood; use a VAE or report the reconstruction error")
    check_data(model, x)
    batch_size = batch_size or len(x)
    rows = decoder_rows(model, math.prod(x.shape[1:]), max_memory_mb)
    results, unit = [], 0
    for xb in _batches(x, batch_size):
        estimate, unit = _block_estimate(model, xb, num_samples, rows, max_memory_mb, generator, unit)
        results.append(estimate)
    out = distributed.all_reduce_sum(torch.cat(results))  # each example computed on one rank
    return out - math.log(num_samples)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, num_samples: int = 1000, batch_size: int = 500, seed: int = 0) -> dict:
    """Test metrics of a model on ``x`` ``(N, *data_shape)``, every number averaged over examples.

    The Monte Carlo draws are seeded with ``seed`` (in a forked RNG: the global stream is left as
    it was), so the same model and data give the same numbers wherever they are evaluated.

    Returns a dict of:
        ``reconstruction``: E_q log p(x|z), nats per example (1-sample Monte Carlo; for an AE the
        log-likelihood of x at its code); ``elbo``, ``kl`` (VAE only: an AE has no bound):
        nats per example, closed-form KL; ``log_likelihood``: importance-sampled log p(x) with
        K = ``num_samples`` (VAE only); ``active_units``:
        dimensions with Cov_x(E_q[z_d|x]) > 0.01 (Burda et al. 2015, sec. 5.2); ``kl_per_dim``
        (VAE only): list of nats per example per latent dimension. The reconstruction error is
    :func:`~vaekit.evaluation.reconstruction.reconstruction_mse` on the data before binarization
    (:func:`~vaekit.evaluation.evaluate_conditional` adds it).
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
        values = {"reconstruction": terms["reconstruction"], "kl": terms["kl"]}
        for key, v in values.items():
            sums[key] = sums.get(key, 0.0) + v.sum().item()
        means.append(q.mean)
        per_dim = kl_per_dim(q, model.prior()) if model.stochastic else None
        if per_dim is not None:
            kl_dims.append(per_dim.sum(0))
    n = len(x)
    result = {key: v / n for key, v in sums.items()}
    bound = model.stochastic and tractable(model)
    if bound:
        result["elbo"] = result["reconstruction"] - result["kl"]
    if not model.stochastic:
        del result["kl"]
    mu = torch.cat(means)
    result["active_units"] = int((mu.var(0, unbiased=True) > 0.01).sum()) if n > 1 else 0
    if model.stochastic:
        if kl_dims:  # a prior with dependent dimensions has no per-dimension KL
            result["kl_per_dim"] = (torch.stack(kl_dims).sum(0) / n).tolist()
    if bound:
        result["log_likelihood"] = log_likelihood(model, x, num_samples, batch_size=batch_size).mean().item()
    model.train(was_training)
    return result


def tractable(model) -> bool:
    """Whether a model's registry entry says it has a likelihood bound (``tractable_likelihood``; e.g.
    the MS-SSIM VAE's reconstruction score is not a normalised density, so its "ELBO" bounds nothing).
    A model built from custom modules, outside the registry, is taken to have one."""
    from ..registry import MODELS

    entry = MODELS.get(getattr(getattr(model, "config", None), "name", None))
    return entry is None or entry.tractable_likelihood


#: Units of the numbers :func:`evaluate` reports, written beside them in summary.json.
UNITS = {
    "elbo": "nats per example (higher is better)",
    "log_likelihood": "nats per example, importance sampled (higher is better)",
    "reconstruction": "nats per example, E_q log p(x|z)",
    "kl": "nats per example",
    "kl_per_dim": "nats per example per latent dimension",
    **MSE_UNITS,
    "active_units": "latent dimensions with Cov_x(E[z_d|x]) > 0.01",
}


def likelihood_progress(model, num_examples: int, num_samples: int, desc: str, enabled: bool = True):
    """A context that reports the progress of evaluating ``model`` on ``num_examples`` examples in
    decoded samples (:func:`~vaekit.runtime.progress.module_progress` on its decoder): K =
    ``num_samples`` importance samples per example for a VAE, one for an AE, this rank's share under
    torchrun. K samples per example make the log-likelihood the longest part of an evaluation on a
    large test set (10,000 Fashion-MNIST images at K = 1000 decode 10 million codes). A null context
    when not ``enabled`` or for a model without a ``decoder`` module."""
    decoder = getattr(model, "decoder", None)
    if not enabled or not isinstance(decoder, torch.nn.Module):
        return contextlib.nullcontext()
    from ..runtime.progress import module_progress

    per_example = num_samples if model.stochastic else 1
    return module_progress(decoder, num_examples * per_example // distributed.world_size(), desc, "decoded sample")
