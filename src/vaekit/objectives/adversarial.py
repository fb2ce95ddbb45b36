"""The adversarial autoencoder's objective (Makhzani et al. 2016, sec. 2): reconstruction, the
encoder fooling a discriminator on z, and the discriminator's cross-entropy, in one loss whose
parts reach disjoint parameters."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .elbo import _terms
from .mmd import prior_draws
from .terms import LossTerms, forward, kl_to_prior


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
    """−log p(x|z) + λ·softplus(−D(z)) (the encoder's non-saturating generator loss, D's parameters
    detached) + softplus(−D(z_p)) + softplus(D(z̄)) (D's cross-entropy: prior draws z_p against the
    detached codes z̄)."""

    reg_weight: float = 1.0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, None)
        fool = F.softplus(-model.critic(out.z, detach_discriminator=True))
        disc = (
            F.softplus(-model.critic(prior_draws(model, len(x)).detach())).mean()
            + F.softplus(model.critic(out.z.detach())).mean()
        )
        loss = (self.reg_weight * fool - out.log_px).mean() + disc
        return _terms(loss, out.log_px, kl_to_prior(model, out.q, out.z))
