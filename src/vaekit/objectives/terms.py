"""What every objective shares: the encode → sample → decode opening and the terms it returns.

An objective is a small object with its own settings, its loss weights included (as Pyro's
``Trace_ELBO(num_particles=…)``): ``objective(model, x, warmup=1.0, **schedule) -> LossTerms``.
The training loop supplies only the schedule — the KL warm-up factor ``warmup`` in [0, 1] and,
for :class:`~vaekit.objectives.ELBO`, the capacity C — minimises ``terms.loss`` and logs the
per-example terms.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.distributions import Distribution

from ..distributions import kl_or_estimate


@dataclasses.dataclass(frozen=True)
class LossTerms:
    """The value of an objective on one batch.

    Attributes:
        loss: scalar to minimise (mean over the batch).
        elbo, reconstruction, kl: ``(batch,)`` nats per example, detached: the ELBO
            log p(x|z) − KL(q(z|x) ‖ p(z)) (β = 1) and its two terms.
        coupling: ``(batch,)`` the coupling term C_ρ of the AVAE / SE losses, else None.
        mi, tc, dimwise_kl: ``(batch,)`` the β-TCVAE decomposition of the KL, else None.
    """

    loss: torch.Tensor
    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    coupling: torch.Tensor | None = None
    mi: torch.Tensor | None = None
    tc: torch.Tensor | None = None
    dimwise_kl: torch.Tensor | None = None

    def per_example(self) -> dict[str, torch.Tensor]:
        """The ``(batch,)`` terms that are set, by name (for logging)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "loss" and getattr(self, f.name) is not None
        }


@dataclasses.dataclass(frozen=True)
class Forward:
    """One pass of a batch through the model: q(z|x), draws of z, p(x|z).

    Attributes:
        q: q(z|x) of the (corrupted, for a denoising model) input; batch ``(batch,)``.
        z: ``(num_samples, batch, latent_dim)`` reparameterised draws; ``(batch, latent_dim)``
            for ``num_samples=None``.
        px: p(x|z), batch shape ``(num_samples, batch)``; ``(batch,)`` for ``num_samples=None``.
        log_px: log p(x|z_l) in nats, ``(num_samples, batch)``; ``(batch,)`` for ``num_samples=None``.
    """

    q: Distribution
    z: torch.Tensor
    px: Distribution
    log_px: torch.Tensor


def forward(model, x: torch.Tensor, num_samples: int | None = 1) -> Forward:
    """Encode ``x`` ``(batch, *data_shape)`` (through ``model.corrupt`` in training mode), draw
    z = loc + scale ⊙ ε (Kingma & Welling 2013, eq. 4), decode the draws and score x.

    ``num_samples`` draws per example stack on a leading sample dimension; ``None`` is one draw
    without it (as ``q.rsample()``): the same numbers as ``num_samples=1`` with the sample
    dimension dropped, and fewer tensor operations (the one-draw objectives use it).
    """
    q = model.encode(model.corrupt(x))
    z = q.rsample() if num_samples is None else q.rsample((num_samples,))
    px = model.decode(z)
    return Forward(q, z, px, px.log_prob(x))


def kl_to_prior(model, q, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q(z|x) ‖ p(z)) in nats, ``(batch,)``, against the model's own prior ``model.prior()``: in
    closed form where one is registered, else the Monte Carlo estimate over the draws ``z`` of q
    (:func:`~vaekit.distributions.kl_or_estimate`); zeros for a deterministic AE."""
    if not model.stochastic:
        return q.mean.new_zeros(q.mean.shape[:-1])
    return kl_or_estimate(q, model.prior(), z)
