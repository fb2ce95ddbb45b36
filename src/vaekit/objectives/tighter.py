"""MIWAE, CIWAE and PIWAE: the bounds of Rainforth et al. 2018, "Tighter variational bounds are not
necessarily better" (ICML), sec. 4 (eqs. 12-14).

Each draws M·K reparameterised codes z_{m,k} ~ q(z|x) and forms the importance log-weights
log w_{m,k} = log p(x|z_{m,k}) + log p(z_{m,k}) − log q(z_{m,k}|x) (:func:`~vaekit.objectives.log_weights`):

* MIWAE_{M,K} = (1/M) Σ_m log (1/K) Σ_k w_{m,k} (eq. 12): the mean of M IWAE_K bounds; M = 1 is the
  IWAE, K = 1 the ELBO with M draws.
* CIWAE_β = β ELBO + (1 − β) IWAE_K on the same K draws (eq. 13, M = 1): β = 1 the ELBO, β = 0 the IWAE.
* PIWAE_{M,K} (eq. 14): the generative network (decoder, likelihood, learned prior) ascends the
  IWAE_{M·K} bound of all M·K draws, the inference network (encoder) the MIWAE_{M,K} bound. Both
  terms come from one loss and one optimizer: the IWAE term sees the draws and log q detached (its
  gradient reaches only the generative parameters), the MIWAE term is evaluated with the generative
  parameters detached through ``torch.func.functional_call`` (its gradient reaches only the encoder).
  M = 1 gives the IWAE's gradients.

All bounds are per example, nats, higher is better; the loss is minus their batch mean.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .elbo import _terms, log_weights
from .terms import LossTerms, forward, kl_to_prior

#: Default settings (Rainforth et al. 2018, sec. 5 train MIWAE(8, 8), PIWAE(8, 8) and CIWAE with β = 0.5).
NUM_BOUNDS, NUM_PARTICLES, ELBO_WEIGHT = 8, 8, 0.5


def _bounds(log_w: torch.Tensor, num_bounds: int) -> torch.Tensor:
    """(M·K, batch) log-weights -> (M, batch) IWAE_K bounds (draws m·K .. m·K + K − 1 form group m)."""
    k = log_w.shape[0] // num_bounds
    grouped = log_w.reshape(num_bounds, k, *log_w.shape[1:])
    return torch.logsumexp(grouped, dim=1) - math.log(k)


def miwae_bound(log_w: torch.Tensor, num_bounds: int) -> torch.Tensor:
    """MIWAE_{M,K} (Rainforth et al. 2018, eq. 12) of log-weights ``(M·K, batch)``: ``(batch,)`` nats."""
    return _bounds(log_w, num_bounds).mean(0)


def ciwae_bound(log_w: torch.Tensor, elbo_weight: float) -> torch.Tensor:
    """CIWAE_β = β·ELBO + (1 − β)·IWAE_K (eq. 13) of log-weights ``(K, batch)``: ``(batch,)`` nats."""
    iwae = torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
    return elbo_weight * log_w.mean(0) + (1 - elbo_weight) * iwae


class _Apply(nn.Module):
    """Calls ``fn(model, *args)``: lets ``torch.func.functional_call`` run any method of the model
    with substituted (detached) parameters."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, fn, *args):
        return fn(self.model, *args)


def generative_detached_log_weights(model, x: torch.Tensor, q, z: torch.Tensor) -> torch.Tensor:
    """log w ``(num_samples, batch)`` at the draws ``z`` with every parameter outside ``model.encoder``
    (decoder, likelihood, learned prior) detached: its gradient reaches the encoder only (through z and q)."""
    params = {
        f"model.{name}": (p if name.startswith("encoder.") else p.detach()) for name, p in model.named_parameters()
    }
    buffers = {f"model.{name}": b for name, b in model.named_buffers()}
    return torch.func.functional_call(_Apply(model), {**params, **buffers}, (lambda m, z_: log_weights(m, x, q, z_), z))


def _check(num_bounds, num_particles, elbo_weight) -> None:
    for name, value in (("num_bounds", num_bounds), ("num_particles", num_particles)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= float(elbo_weight) <= 1.0:
        raise ValueError(f"elbo_weight (the CIWAE's beta) must lie in [0, 1], got {elbo_weight!r}")


@dataclasses.dataclass(frozen=True)
class TighterBound:
    """The MIWAE, CIWAE or PIWAE loss (Rainforth et al. 2018, sec. 4), ``kind`` naming which.

    Attributes:
        kind: "miwae", "ciwae" or "piwae".
        num_bounds: M, the number of IWAE_K bounds averaged (MIWAE, PIWAE; the CIWAE uses M = 1).
        num_particles: K, the importance samples per bound.
        elbo_weight: β of the CIWAE (ignored by the other two).

    Raises:
        ValueError: an unknown kind, M or K < 1, or β outside [0, 1].
    """

    kind: str = "miwae"
    num_bounds: int = NUM_BOUNDS
    num_particles: int = NUM_PARTICLES
    elbo_weight: float = ELBO_WEIGHT

    def __post_init__(self):
        if self.kind not in ("miwae", "ciwae", "piwae"):
            raise ValueError(f"kind must be miwae, ciwae or piwae, got {self.kind!r}")
        _check(self.num_bounds, self.num_particles, self.elbo_weight)

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (loss: minus the bound's batch mean; the
        logged ELBO terms come from the same draws). The bounds have no KL weight: ``warmup`` is unused."""
        m = 1 if self.kind == "ciwae" else self.num_bounds
        out = forward(model, x, m * self.num_particles)
        log_w = log_weights(model, x, out.q, out.z, out.log_px)
        if self.kind == "miwae":
            bound = miwae_bound(log_w, m)
        elif self.kind == "ciwae":
            bound = ciwae_bound(log_w, self.elbo_weight)
        else:  # PIWAE: IWAE_{MK} for the generative parameters, MIWAE_{M,K} for the encoder
            log_q = out.q.log_prob(out.z).detach()
            z = out.z.detach()
            generative = model.decode(z).log_prob(x) + model.prior().log_prob(z) - log_q
            inference = generative_detached_log_weights(model, x, out.q, out.z)
            bound = (torch.logsumexp(generative, 0) - math.log(len(generative))) + miwae_bound(inference, m)
        return _terms(-bound.mean(), out.log_px.mean(0), kl_to_prior(model, out.q, out.z))


def build(kind: str):
    """The :data:`~vaekit.objectives.OBJECTIVES` builder of ``kind``: settings from the model's
    options (``config.model.options``: num_bounds, num_particles, elbo_weight), defaults otherwise."""

    def builder(config, dataset_size: int = 0) -> TighterBound:
        options = config.model.options or {}
        settings = {k: options[k] for k in ("num_bounds", "num_particles", "elbo_weight") if k in options}
        return TighterBound(kind, **settings)

    builder.__name__ = f"_{kind}"
    return builder
