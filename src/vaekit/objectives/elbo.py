"""The ELBO and the importance-weighted bound, as functions and as training objectives.

Every bound is per example, shape ``(batch,)``, in nats, higher is better. :class:`ELBO` and
:class:`IWAE` are the training objectives (losses to minimise) of the AE, VAE, β-VAE, CVAE and IWAE.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .terms import LossTerms, forward, kl_to_prior


def check_data(model, x) -> None:
    """Check ``x`` at the API boundary before a bound is computed on it: a tensor, finite, and in
    the support of the model's likelihood (values in [0, 1] for Bernoulli heads; see
    :meth:`vaekit.distributions.Likelihood.check_support`). One pass over ``x`` (isfinite, min,
    max), cheap next to a decoder pass; the training objectives skip it (the pipeline checks the
    data once).

    Raises:
        TypeError: ``x`` is not a tensor. ValueError: NaN/Inf values, or values outside the support.
    """
    if not torch.is_tensor(x):
        raise TypeError(
            f"x must be a torch.Tensor (batch, *data_shape), got {type(x).__name__}; "
            "convert it with torch.as_tensor(x, dtype=torch.float32)"
        )
    likelihood = getattr(model, "likelihood", None)
    if likelihood is not None:
        likelihood.check_support(x)


def elbo_terms(model, x: torch.Tensor, num_samples: int = 1) -> dict[str, torch.Tensor]:
    """The two terms of the ELBO, each ``(batch,)`` in nats.

    ``reconstruction`` = (1/L) Σ_l log p(x|z_l), z_l = loc + scale ⊙ ε_l, L = ``num_samples``
    (Kingma & Welling 2013, eq. 7); ``kl`` = KL(q(z|x) ‖ p(z)) in closed form (eq. 10). For a
    (denoising) AE the reconstruction term uses the deterministic code and ``kl`` is zero.

    Raises:
        TypeError / ValueError: ``x`` outside the likelihood's support (see :func:`check_data`).
    """
    check_data(model, x)
    out = forward(model, x, num_samples)
    return {"reconstruction": out.log_px.mean(0), "kl": kl_to_prior(model, out.q, out.z)}


def elbo(model, x: torch.Tensor, beta: float = 1.0, num_samples: int = 1) -> torch.Tensor:
    """Evidence lower bound E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)).

    Args:
        model: an AE or VAE.
        x: ``(batch, *data_shape)``.
        beta: KL weight; β = 1 is the ELBO, β > 1 the β-VAE objective (Higgins et al. 2017).
        num_samples: L Monte Carlo samples of z per example.

    Returns:
        ``(batch,)`` nats per example, higher is better.

    Raises:
        TypeError / ValueError: ``x`` not a tensor, NaN/Inf, or outside the likelihood's support
            (e.g. 5.0 for a Bernoulli model).
    """
    terms = elbo_terms(model, x, num_samples)
    return terms["reconstruction"] - beta * terms["kl"]


def log_weights(model, x: torch.Tensor, q, z: torch.Tensor, log_px: torch.Tensor | None = None) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) − log q(z|x) at the draws ``z`` ``(num_samples, batch, latent_dim)``
    of ``q`` = q(z|x): ``(num_samples, batch)`` nats. The one place vaekit forms importance weights
    (the IWAE bound, the IS log-likelihood's general path, the anomaly and OOD scores): p(z) is the
    model's own prior, ``model.prior()``, whatever its family.

    Args:
        log_px: log p(x|z) ``(num_samples, batch)`` when the caller has it already (not recomputed).
    """
    if log_px is None:
        log_px = model.decode(z).log_prob(x)
    return log_px + model.prior().log_prob(z) - q.log_prob(z)


def log_importance_weights(model, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x): ``(num_samples, batch)``.

    Raises:
        ValueError: for a deterministic AE (no posterior density); ``x`` outside the likelihood's
            support (see :func:`check_data`).
    """
    if not model.stochastic:
        raise ValueError("importance weights need a stochastic encoder; an AE has no likelihood bound")
    check_data(model, x)
    q = model.encode(x)
    return log_weights(model, x, q, q.rsample((num_samples,)))


def iwae_bound(model, x: torch.Tensor, num_samples: int = 5) -> torch.Tensor:
    """Importance-weighted bound log (1/K) Σ_k w_k (Burda et al. 2015, eq. 8), K = ``num_samples``.

    Equals the ELBO for K = 1 and increases towards log p(x) with K. Differentiable (the
    training objective of ``--objective iwae``); for evaluation with large K use
    :func:`vaekit.evaluation.log_likelihood`, which chunks over samples.

    Returns:
        ``(batch,)`` nats per example, higher is better.

    Raises:
        ValueError: an AE, or ``x`` NaN/Inf or outside the likelihood's support (see :func:`check_data`).
    """
    log_w = log_importance_weights(model, x, num_samples)
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)


def linear_capacity(capacity_max: float, capacity_steps: int, step) -> float:
    """Capacity C (nats) after ``step`` optimisation steps: linear from 0 to ``capacity_max`` over
    ``capacity_steps`` steps, then constant (Burgess et al. 2018, sec. 5; Dupont 2018, sec. 3)."""
    return capacity_max * min(1.0, int(step) / capacity_steps)


def capacity_penalty(kl: torch.Tensor, capacity: float) -> torch.Tensor:
    """|mean_x KL − C|: the capacity term of Burgess et al. 2018 (eq. 8) and of each channel of the
    JointVAE (Dupont 2018, eq. 7), for per-example ``kl`` ``(batch,)`` in nats; a scalar."""
    return (kl.mean() - capacity).abs()


@dataclasses.dataclass(frozen=True)
class ELBO:
    """β-weighted ELBO loss of the AE, VAE, β-VAE and CVAE: −[(1/L) Σ_l log p(x|z_l) − β KL].

    ``beta`` = β weighs the KL (β = 1: the VAE; β > 1: the β-VAE, Higgins et al. 2017, eq. 4);
    L = ``num_samples`` reparameterised draws (Kingma & Welling 2013, eq. 7). The training loop
    supplies only the schedule: ``warmup`` w in [0, 1] (KL warm-up; the KL weight is w·β) and,
    when ``capacity_max > 0``, the capacity C (nats), with which the loss is Burgess et al.
    2018's (eq. 8) −E_q log p(x|z) + w·β·|KL − C|, the KL averaged over the batch. A CVAE is
    trained on the same bound of log p(x|c) (Sohn et al. 2015, eq. 4) through ``model.condition(c)``.
    """

    beta: float = 1.0
    num_samples: int = 1

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0, capacity: float | None = None) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (loss: scalar mean over the batch)."""
        # one draw: no sample dimension, so no mean over it (the same numbers and gradients)
        one = self.num_samples == 1
        out = forward(model, x, None if one else self.num_samples)
        reconstruction = out.log_px if one else out.log_px.mean(0)
        kl = kl_to_prior(model, out.q, out.z)
        beta = self.beta * warmup
        if capacity is None:  # KL − log p(x|z) is exactly −(log p(x|z) − KL): one op fewer
            loss = ((kl if beta == 1.0 else beta * kl) - reconstruction).mean()
        else:
            loss = -reconstruction.mean() + beta * capacity_penalty(kl, capacity)
        return _terms(loss, reconstruction, kl)


@dataclasses.dataclass(frozen=True)
class IWAE:
    """Importance-weighted bound as a loss, K = ``num_samples`` (Burda et al. 2015, eq. 8).

    One forward pass: the K draws give both the bound and the logged ELBO terms. The bound has
    no KL weight, so the KL warm-up (``warmup``) does not change it.
    """

    num_samples: int = 5

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, self.num_samples)
        log_w = log_weights(model, x, out.q, out.z, out.log_px)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_samples)
        return _terms(-bound.mean(), out.log_px.mean(0), kl_to_prior(model, out.q, out.z))


def _terms(loss: torch.Tensor, reconstruction: torch.Tensor, kl: torch.Tensor, **extra) -> LossTerms:
    """:class:`LossTerms` with the logged per-example terms detached."""
    reconstruction, kl = reconstruction.detach(), kl.detach()
    return LossTerms(loss, reconstruction - kl, reconstruction, kl, **{k: v.detach() for k, v in extra.items()})
