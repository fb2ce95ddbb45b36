"""The FactorVAE objective (Kim & Mnih 2018, "Disentangling by Factorising", ICML, sec. 3, eq. 2
and Algorithm 2): the ELBO minus γ times a discriminator's estimate of the total correlation, and
the discriminator's own loss, in one loss whose parts reach disjoint parameters."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each latent dimension of ``z`` ``(batch, d)`` shuffled independently across the batch: draws of
    q̄(z) = Π_j q(z_j) (Kim & Mnih 2018, Algorithm 1)."""
    n = len(z)
    idx = torch.argsort(torch.rand(n, z.shape[1], device=z.device), dim=0)
    return torch.gather(z, 0, idx)


@dataclasses.dataclass(frozen=True)
class FactorLoss:
    """−ELBO + γ·mean_x logit D(z) (the VAE's part: D's parameters detached) + the discriminator's
    cross-entropy −[log D(z̄) + log(1 − D(perm(z̄)))] on detached codes z̄ (D's part). The logged
    ``tc`` is the per-example density-ratio estimate logit D(z) (nats) of TC(q(z)) (Kim & Mnih, eq. 3).
    The warm-up scales the KL only."""

    gamma: float = 10.0
    beta: float = 1.0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""

        out = forward(model, x, None)
        kl = kl_to_prior(model, out.q, out.z)
        tc = model.tc_logits(out.z, detach_discriminator=True)
        codes = out.z.detach()
        real, shuffled = model.tc_logits(codes), model.tc_logits(permute_dims(codes))
        disc = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            shuffled, torch.zeros_like(shuffled)
        )
        loss = (self.beta * warmup * kl - out.log_px + self.gamma * tc).mean() + disc
        return _terms(loss, out.log_px, kl, tc=tc)
