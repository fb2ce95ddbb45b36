"""Anomaly scores of a trained AE/VAE, one value per example.

Each score function maps ``x (batch, *data_shape)`` to ``(batch,)`` and states its sign and unit.
:data:`SCORES` registers them with the sign that turns each into a *normality* score (higher =
more normal, the scikit-learn ``score_samples`` convention); :func:`score_samples` applies that
sign and scores in fixed-size blocks.

**Common random numbers.** Every Monte Carlo score takes ``noise``, one standard-normal draw
ε ``(num_samples, latent_dim)`` that is reused for *every* row: z_l = loc(x) + scale(x) ⊙ ε_l.
With the same ``noise`` a row's score is then a deterministic function of that row and the
model, whatever else is in the batch (Glasserman 2004, sec. 4.2, common random numbers). Rows
are scored in blocks of a fixed size (:data:`BLOCK`, the last one padded) because CPU matrix
kernels choose their summation order by the number of rows: with fixed shapes, permuting or
splitting the input gives bit-identical scores.

Source: An & Cho (2015), "Variational autoencoder based anomaly detection using reconstruction
probability", Algorithm 4: draw L samples z_l ~ q(z|x) and score x by the average of
p(x | z_l) over them; a low reconstruction probability flags an anomaly. Unlike a reconstruction
error it accounts for the decoder's variance (with a Gaussian likelihood of learned scale it is a
real density), and unlike PyOD's VAE default it is a probability, not a distance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ..distributions import DiagonalNormal
from ..objectives import kl_to_prior, log_weights
from ..runtime.budget import check_memory
from ..runtime.progress import track

#: L, the number of posterior samples of :func:`reconstruction_probability` (An & Cho 2015 use L = 10).
DEFAULT_NUM_SAMPLES = 10
#: Rows per scoring block; every block has exactly this many rows (the last one is padded).
BLOCK = 256


def draw_noise(num_samples: int, latent_dim: int, seed: int) -> torch.Tensor:
    """The common random numbers: ε ~ N(0, I), ``(num_samples, latent_dim)`` float32, from a
    generator seeded with ``seed`` (the global RNG is not touched)."""
    _check_num_samples(num_samples)
    return torch.randn(num_samples, latent_dim, generator=torch.Generator().manual_seed(int(seed)))


def posterior_draws(model, x: torch.Tensor, num_samples: int, noise: torch.Tensor | None = None):
    """q(z|x) and z_l = loc + scale ⊙ ε_l, ``(num_samples, batch, latent_dim)``.

    ``noise`` ε ``(num_samples, latent_dim)`` is shared by every row (common random numbers);
    None draws a fresh one from the global RNG. A deterministic AE returns its code L times.

    Raises:
        ValueError: ``noise`` of the wrong shape.
    """
    q = model.encode(x)
    loc = q.mean
    if not model.stochastic:
        return q, loc.expand(num_samples, *loc.shape)
    if not isinstance(q, DiagonalNormal):  # no location-scale form: its own draws (no common random numbers)
        return q, q.rsample((num_samples,))
    if noise is None:
        noise = torch.randn(num_samples, loc.shape[-1], dtype=loc.dtype, device=loc.device)
    if tuple(noise.shape) != (num_samples, loc.shape[-1]):
        raise ValueError(
            f"noise must be (num_samples={num_samples}, latent_dim={loc.shape[-1]}), got {tuple(noise.shape)}"
        )
    noise = noise.to(device=loc.device, dtype=loc.dtype)
    return q, loc + q.stddev * noise[:, None, :]


@torch.no_grad()
def reconstruction_probability(
    model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """An & Cho (2015, Algorithm 4) reconstruction probability, in log space.

    log (1/L) Σ_l p(x | z_l), z_l = loc(x) + scale(x) ⊙ ε_l, L = ``num_samples``, computed with
    logsumexp. For a deterministic AE every z_l is the code f(x), so this is log p(x | f(x)).

    Args:
        model: an AE or VAE.
        x: ``(batch, *data_shape)``.
        num_samples: L posterior samples per example.
        noise: ε ``(num_samples, latent_dim)`` shared by every row; None = a fresh draw.

    Returns:
        ``(batch,)`` nats per example; higher = more normal (low = anomalous).
    """
    _check_num_samples(num_samples)
    _, z = posterior_draws(model, x, num_samples, noise)
    log_px = model.decode(z).log_prob(x)  # (num_samples, batch)
    return torch.logsumexp(log_px, dim=0) - math.log(num_samples)


@torch.no_grad()
def elbo_score(
    model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """ELBO (1/L) Σ_l log p(x|z_l) − KL(q(z|x) ‖ p(z)) (β = 1; Kingma & Welling 2013, eq. 7 and 10).

    The KL term is in closed form (:func:`vaekit.objectives.kl_to_prior`); unlike a
    reconstruction score it keeps that term, so a code far from the prior also lowers the score.

    Returns:
        ``(batch,)`` nats per example; higher = more normal.
    """
    _check_num_samples(num_samples)
    q, z = posterior_draws(model, x, num_samples, noise)
    return model.decode(z).log_prob(x).mean(0) - kl_to_prior(model, q, z)


@torch.no_grad()
def log_likelihood_score(
    model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Importance-sampled log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), K = ``num_samples``
    (Burda et al. 2015, eq. 8; the estimator of :func:`vaekit.evaluation.log_likelihood`).

    Returns:
        ``(batch,)`` nats per example; higher = more normal.

    Raises:
        ValueError: for a deterministic AE (no likelihood).
    """
    _check_num_samples(num_samples)
    if not model.stochastic:
        raise ValueError("the log_likelihood score needs a VAE; an AE has no likelihood")
    q, z = posterior_draws(model, x, num_samples, noise)
    log_w = log_weights(model, x, q, z)
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)


@torch.no_grad()
def reconstruction_error(
    model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error ‖x − g(μ(x))‖² of the decoder mean at the encoder mean, summed over data values.

    Deterministic: ``num_samples`` and ``noise`` are accepted for a uniform signature and
    ignored. This is the score of PyOD's and alibi-detect's autoencoder detectors.

    Returns:
        ``(batch,)`` squared data units per example (standardised units for standardised
        tabular data, [0, 1] pixel units for images); higher = more anomalous.
    """
    return (model.reconstruct(x) - x).pow(2).flatten(1).sum(1)


@torch.no_grad()
def all_scores(
    model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """The four registered scores from one set of decoder passes, as *normality* scores.

    With common random numbers the reconstruction probability, the ELBO and the importance-sampled
    log-likelihood use the same z_l, so log p(x|z_l) is computed once (the benchmark's fast path;
    the same values as the single-score functions up to float rounding).

    Returns:
        ``(batch, 4)`` in the order of :data:`SCORES`, each with its registered sign; the
        log-likelihood column is NaN for a deterministic AE.
    """
    _check_num_samples(num_samples)
    q, z = posterior_draws(model, x, num_samples, noise)
    log_px = model.decode(z).log_prob(x)
    rp = torch.logsumexp(log_px, dim=0) - math.log(num_samples)
    elbo_value = log_px.mean(0) - kl_to_prior(model, q, z)
    if model.stochastic:
        log_w = log_weights(model, x, q, z, log_px)
        ll = torch.logsumexp(log_w, dim=0) - math.log(num_samples)
    else:
        ll = torch.full_like(rp, float("nan"))
    error = (model.reconstruct(x) - x).pow(2).flatten(1).sum(1)
    return torch.stack([rp, elbo_value, ll, -error], 1)


def _check_num_samples(num_samples: int) -> None:
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")


@dataclasses.dataclass(frozen=True)
class Score:
    """A registered score: its function, the sign that makes it a normality score, and its unit."""

    fn: Callable[..., torch.Tensor]
    sign: float
    unit: str
    stochastic_only: bool = False


#: name -> Score. ``sign * fn(model, x, num_samples, noise)`` is higher for more normal examples.
SCORES: dict[str, Score] = {
    "reconstruction_probability": Score(reconstruction_probability, 1.0, "nats per example"),
    "elbo": Score(elbo_score, 1.0, "nats per example"),
    "log_likelihood": Score(log_likelihood_score, 1.0, "nats per example", stochastic_only=True),
    "reconstruction_error": Score(reconstruction_error, -1.0, "minus the squared error per example"),
}


def check_score(name: str, model=None) -> Score:
    """The registered :class:`Score` ``name``.

    Raises:
        ValueError: unknown name (lists the valid ones), or a likelihood score for a deterministic AE.
    """
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose one of: {', '.join(SCORES)}")
    score = SCORES[name]
    if model is not None and score.stochastic_only and not model.stochastic:
        raise ValueError(f"the {name} score needs a VAE; an AE has no likelihood")
    return score


def in_blocks(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    device: torch.device,
    block: int = BLOCK,
    progress: bool = False,
    desc: str = "score",
) -> torch.Tensor:
    """``fn`` applied to ``x`` ``(N, ...)`` in blocks of exactly ``block`` rows (the last block padded
    with copies of its first row, whose outputs are dropped); ``(N,)`` (or ``(N, k)`` when ``fn``
    returns k columns) float64 on the CPU.

    Fixed shapes make every row's result independent of N and of the row's position, bit for bit,
    as long as ``fn`` treats rows independently (the model in eval mode, shared noise).
    """
    if not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    out = []
    for start in track(range(0, len(x), block), desc, "block", enabled=progress):
        xb = x[start : start + block]
        n = len(xb)
        if n < block:
            xb = torch.cat([xb, xb[:1].expand(block - n, *xb.shape[1:])])
        out.append(fn(xb.to(device))[:n].double().cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def score_samples(
    model,
    x: torch.Tensor,
    score: str = "reconstruction_probability",
    num_samples: int = DEFAULT_NUM_SAMPLES,
    noise: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Normality score of every example: ``SCORES[score].sign * SCORES[score].fn(...)``.

    The model is put in eval mode. The Monte Carlo draws are the common random numbers ``noise``
    ε ``(num_samples, latent_dim)`` shared by every row, or :func:`draw_noise` with ``seed`` when
    None; rows go through the model in fixed blocks (:func:`in_blocks`). So a row's score depends
    only on the row, the model and ε: permuting, splitting or batching the input changes no bit.

    Args:
        model: an AE or VAE.
        x: ``(N, *data_shape)`` on any device (moved block by block to the model's device).
        score: a name in :data:`SCORES`.

    Returns:
        ``(N,)`` float64 tensor on the CPU; higher = more normal (nats per example for the
        likelihood scores, minus the squared error for ``reconstruction_error``).

    Raises:
        ValueError: unknown score, bad ``num_samples``/``noise``, data of the wrong shape, or a
            ``num_samples`` whose blocks need more than half the available memory
            (:func:`vaekit.runtime.budget.check_memory`).
    """
    spec = check_score(score, model)
    _check_num_samples(num_samples)
    # a block decodes (num_samples, BLOCK, *data_shape): the decoder's parameters and the log-density terms
    check_memory(
        "num_samples",
        num_samples,
        BLOCK * 4 * (3 * math.prod(x.shape[1:]) + 2 * model.latent_dim),
        f"the {score} of blocks of {BLOCK} rows of {math.prod(x.shape[1:])} values",
    )
    if noise is None:
        noise = draw_noise(num_samples, model.latent_dim, seed)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return in_blocks(
            lambda xb: spec.sign * spec.fn(model, xb, num_samples, noise),
            x,
            device,
            progress=progress,
            desc=f"score ({score})",
        )
    finally:
        model.train(was_training)
