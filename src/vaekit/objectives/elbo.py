"""The ELBO and the importance-weighted bound, as functions and as training objectives.

Every bound is per example, shape ``(batch,)``, in nats, higher is better. :class:`ELBO` and
:class:`IWAE` are the training objectives (losses to minimise) of the AE, VAE, β-VAE, CVAE and IWAE.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .terms import LossTerms, forward, kl_to_prior

def elbo_terms(model, x: torch.Tensor, num_samples: int = 1) -> dict[str, torch.Tensor]:
    """The two terms of the ELBO, each ``(batch,)`` in nats.

    ``reconstruction`` = (1/L) Σ_l log p(x|z_l), z_l = loc + scale ⊙ ε_l, L = ``num_samples``
    (Kingma & Welling 2013, eq. 7); ``kl`` = KL(q(z|x) ‖ p(z)) in closed form (eq. 10). For a
    (denoising) AE the reconstruction term uses the deterministic code and ``kl`` is zero.
    """
    out = forward(model, x, num_samples)
    return {"reconstruction": out.log_px.mean(0), "kl": kl_to_prior(model, out.q)}


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


@dataclasses.dataclass(frozen=True)
class ELBO:
    """β-weighted ELBO loss of the AE, VAE, β-VAE and CVAE: −[(1/L) Σ_l log p(x|z_l) − β KL].

    L = ``num_samples`` reparameterised draws (Kingma & Welling 2013, eq. 7; Higgins et al. 2017,
    eq. 4). β is given per call by the training loop (warm-up). With ``capacity`` C (nats; the loop
    passes it when ``capacity_max > 0``) the loss is Burgess et al. 2018's (eq. 8)
    −E_q log p(x|z) + β·|KL − C|, the KL averaged over the batch. A CVAE is trained on the
    same bound of log p(x|c) (Sohn et al. 2015, eq. 4) through ``model.given(c)``.
    """

    num_samples: int = 1

    def __call__(self, model, x: torch.Tensor, beta: float = 1.0, capacity: float | None = None) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (loss: scalar mean over the batch)."""
        out = forward(model, x, self.num_samples)
        reconstruction, kl = out.log_px.mean(0), kl_to_prior(model, out.q)
        if capacity is None:
            loss = -(reconstruction - beta * kl).mean()
        else:
            loss = -reconstruction.mean() + beta * (kl.mean() - capacity).abs()
        return _terms(loss, reconstruction, kl)


@dataclasses.dataclass(frozen=True)
class IWAE:
    """Importance-weighted bound as a loss, K = ``num_samples`` (Burda et al. 2015, eq. 8).

    One forward pass: the K draws give both the bound and the logged ELBO terms. β does not
    enter the bound (it is logged only).
    """

    num_samples: int = 5

    def __call__(self, model, x: torch.Tensor, beta: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, self.num_samples)
        log_w = out.log_px + model.prior().log_prob(out.z) - out.q.log_prob(out.z)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_samples)
        return _terms(-bound.mean(), out.log_px.mean(0), kl_to_prior(model, out.q))


def _terms(loss: torch.Tensor, reconstruction: torch.Tensor, kl: torch.Tensor, **extra) -> LossTerms:
    """:class:`LossTerms` with the logged per-example terms detached."""
    reconstruction, kl = reconstruction.detach(), kl.detach()
    return LossTerms(loss, reconstruction - kl, reconstruction, kl,
                     **{k: v.detach() for k, v in extra.items()})
