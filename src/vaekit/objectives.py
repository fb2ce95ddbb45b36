"""Objectives as plain functions of a model and a batch.

Every bound is per example, shape ``(batch,)``, in nats, higher is better. Training losses are
built from them in :data:`LOSSES` (one entry per model name) and are minimised.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import kl_divergence

from .betatc import betatc_loss
from .objectives_coupling import COUPLING_LOSSES


def kl_to_prior(model, q) -> torch.Tensor:
    """KL(q(z|x) ‖ p(z)) in nats, ``(batch,)``, in closed form; zeros for a deterministic AE."""
    if not model.stochastic:
        return q.mean.new_zeros(q.mean.shape[:-1])
    return kl_divergence(q, model.prior())


def elbo_terms(model, x: torch.Tensor, num_samples: int = 1) -> dict[str, torch.Tensor]:
    """The two terms of the ELBO, each ``(batch,)`` in nats.

    ``reconstruction`` = (1/L) Σ_l log p(x|z_l), z_l = loc + scale ⊙ ε_l, L = ``num_samples``
    (Kingma & Welling 2013, eq. 7); ``kl`` = KL(q(z|x) ‖ p(z)) in closed form (eq. 10). For a
    (denoising) AE the reconstruction term uses the deterministic code and ``kl`` is zero.
    """
    q = model.encode(model.corrupt(x))
    z = q.rsample((num_samples,))
    reconstruction = model.decode(z).log_prob(x).mean(0)
    return {"reconstruction": reconstruction, "kl": kl_to_prior(model, q)}


def elbo(model, x: torch.Tensor, beta: float = 1.0, num_samples: int = 1) -> torch.Tensor:
    """Evidence lower bound E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)).

    Args:
        model: an AE or VAE.
        x: ``(batch, *data_shape)``.
        beta: KL weight; β = 1 is the ELBO, β > 1 the β-VAE objective (Higgins et al. 2017).
        num_samples: L Monte Carlo samples of z per example.

    Returns:
        ``(batch,)`` nats per example, higher is better.
    """
    terms = elbo_terms(model, x, num_samples)
    return terms["reconstruction"] - beta * terms["kl"]


def log_importance_weights(model, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x): ``(num_samples, batch)``.

    Raises:
        ValueError: for a deterministic AE (no posterior density).
    """
    if not model.stochastic:
        raise ValueError("importance weights need a stochastic encoder; an AE has no likelihood bound")
    q = model.encode(x)
    z = q.rsample((num_samples,))
    return model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)


def iwae_bound(model, x: torch.Tensor, num_samples: int = 5) -> torch.Tensor:
    """Importance-weighted bound log (1/K) Σ_k w_k (Burda et al. 2015, eq. 8), K = ``num_samples``.

    Equals the ELBO for K = 1 and increases towards log p(x) with K. Differentiable (the
    training objective of ``--objective iwae``); for evaluation with large K use
    :func:`vaekit.evaluation.log_likelihood`, which chunks over samples.

    Returns:
        ``(batch,)`` nats per example, higher is better.
    """
    log_w = log_importance_weights(model, x, num_samples)
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)


def vae_loss(model, x: torch.Tensor, config, beta: float, capacity: float | None = None) -> dict[str, torch.Tensor]:
    """Training loss of the AE, VAE and β-VAE (``config.objective`` "elbo") or the IWAE ("iwae").

    One forward pass: with "iwae" the K = ``num_samples`` draws give both the bound and the
    logged ELBO terms. With ``capacity`` C (nats, given by the training loop when
    ``config.capacity_max > 0``) the loss is Burgess et al. 2018's (eq. 8)
    −E_q log p(x|z) + β·|KL − C|, with the KL averaged over the batch.

    Returns:
        ``loss``: scalar, the negative objective averaged over the batch (to minimise);
        ``elbo``, ``reconstruction``, ``kl``: ``(batch,)`` nats, detached, for logging.
    """
    q = model.encode(model.corrupt(x))
    z = q.rsample((config.num_samples,))
    log_px = model.decode(z).log_prob(x)  # (num_samples, batch)
    reconstruction, kl = log_px.mean(0), kl_to_prior(model, q)
    if config.objective == "iwae":
        log_w = log_px + model.prior().log_prob(z) - q.log_prob(z)
        objective = torch.logsumexp(log_w, dim=0) - math.log(config.num_samples)
    else:
        objective = reconstruction - beta * kl
    loss = -objective.mean()
    if capacity is not None:
        loss = -reconstruction.mean() + beta * (kl.mean() - capacity).abs()
    reconstruction, kl = reconstruction.detach(), kl.detach()
    return {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}


#: model name -> loss(model, x, config, beta) -> {"loss": scalar, per-example terms (batch,)...}
LOSSES: dict[str, Callable] = {
    "ae": vae_loss,
    "vae": vae_loss,
    "cvae": vae_loss,  # fit passes model.given(c): the same bound on log p(x|c) (Sohn et al. 2015, eq. 4)
    "betatc": betatc_loss,
    **COUPLING_LOSSES,
}
