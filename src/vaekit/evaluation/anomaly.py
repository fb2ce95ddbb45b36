"""Anomaly scores of a trained AE/VAE, one value per example.

Each score function maps ``x (batch, *data_shape)`` to ``(batch,)`` and states its sign and unit.
:data:`SCORES` registers them with the sign that turns each into a *normality* score (higher =
more normal, the scikit-learn ``score_samples`` convention); :func:`score_samples` batches, seeds
and applies that sign.

Source: An & Cho (2015), "Variational autoencoder based anomaly detection using reconstruction
probability", Algorithm 4: draw L samples z_l ~ q(z|x) and score x by the average of
p(x | z_l) over them; a low reconstruction probability flags an anomaly. Unlike a reconstruction
error it accounts for the decoder's variance (with a Gaussian likelihood of learned scale it is a
real density), and unlike PyOD's VAE default it is a probability, not a distance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..objectives import elbo as elbo_bound
from .likelihood import log_likelihood as iwae_log_likelihood

#: L, the number of posterior samples of :func:`reconstruction_probability` (An & Cho 2015 use L = 10).
DEFAULT_NUM_SAMPLES = 10


@torch.no_grad()
def reconstruction_probability(model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES) -> torch.Tensor:
    """An & Cho (2015, Algorithm 4) reconstruction probability, in log space.

    log (1/L) Σ_l p(x | z_l), z_l ~ q(z|x), L = ``num_samples``, computed with logsumexp. For a
    deterministic AE every z_l is the code f(x), so this is log p(x | f(x)).

    Args:
        model: an AE or VAE.
        x: ``(batch, *data_shape)``.
        num_samples: L posterior samples per example.

    Returns:
        ``(batch,)`` nats per example; higher = more normal (low = anomalous).
    """
    _check_num_samples(num_samples)
    z = model.encode(x).sample((num_samples,))
    log_px = model.decode(z).log_prob(x)  # (num_samples, batch)
    return torch.logsumexp(log_px, dim=0) - math.log(num_samples)


@torch.no_grad()
def elbo(model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES) -> torch.Tensor:
    """ELBO E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) with ``num_samples`` Monte Carlo samples (β = 1).

    :func:`vaekit.objectives.elbo`; unlike a reconstruction score it keeps the KL term, so a
    code far from the prior also lowers the score.

    Returns:
        ``(batch,)`` nats per example; higher = more normal.
    """
    _check_num_samples(num_samples)
    return elbo_bound(model, x, beta=1.0, num_samples=num_samples)


@torch.no_grad()
def log_likelihood(model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES) -> torch.Tensor:
    """Importance-sampled log p(x) with K = ``num_samples`` (:func:`vaekit.evaluation.log_likelihood`).

    Returns:
        ``(batch,)`` nats per example; higher = more normal.

    Raises:
        ValueError: for a deterministic AE (no likelihood).
    """
    _check_num_samples(num_samples)
    return iwae_log_likelihood(model, x, num_samples=num_samples)


@torch.no_grad()
def reconstruction_error(model, x: torch.Tensor, num_samples: int = DEFAULT_NUM_SAMPLES) -> torch.Tensor:
    """Squared error ‖x − g(μ(x))‖² of the decoder mean at the encoder mean, summed over data values.

    Deterministic: ``num_samples`` is accepted for a uniform signature and ignored. This is the
    score of PyOD's and alibi-detect's autoencoder detectors.

    Returns:
        ``(batch,)`` squared data units per example (standardised units for standardised
        tabular data, [0, 1] pixel units for images); higher = more anomalous.
    """
    return (model.reconstruct(x) - x).pow(2).flatten(1).sum(1)


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


#: name -> Score. ``sign * fn(model, x, num_samples)`` is higher for more normal examples.
SCORES: dict[str, Score] = {
    "reconstruction_probability": Score(reconstruction_probability, 1.0, "nats per example"),
    "elbo": Score(elbo, 1.0, "nats per example"),
    "log_likelihood": Score(log_likelihood, 1.0, "nats per example", stochastic_only=True),
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


@torch.no_grad()
def score_samples(model, x: torch.Tensor, score: str = "reconstruction_probability",
                  num_samples: int = DEFAULT_NUM_SAMPLES, batch_size: int = 1024, seed: int = 0,
                  progress: bool = False) -> torch.Tensor:
    """Normality score of every example: ``SCORES[score].sign * SCORES[score].fn(...)``.

    The model is put in eval mode; the Monte Carlo draws are seeded with ``seed`` in a forked RNG
    (the global RNG is left untouched), so the same ``x`` and ``batch_size`` always give the same
    scores. Examples are scored ``batch_size`` at a time, with a progress bar if ``progress``.

    Args:
        model: an AE or VAE.
        x: ``(N, *data_shape)`` on any device (moved batch by batch to the model's device).
        score: a name in :data:`SCORES`.

    Returns:
        ``(N,)`` float tensor on the CPU; higher = more normal (nats per example for the
        likelihood scores, minus the squared error for ``reconstruction_error``).

    Raises:
        ValueError: unknown score, bad ``num_samples``/``batch_size``, or data of the wrong shape.
    """
    spec = check_score(score, model)
    _check_num_samples(num_samples)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        starts = range(0, len(x), batch_size)
        for start in tqdm(starts, desc=f"score ({score})", unit="batch", disable=None if progress else True, dynamic_ncols=True):
            xb = x[start:start + batch_size].to(device)
            out.append(spec.sign * spec.fn(model, xb, num_samples).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
