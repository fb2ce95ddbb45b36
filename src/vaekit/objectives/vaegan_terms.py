"""The VAE-GAN objective (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity
metric", ICML, sec. 2.1-2.2, eq. 5-9 and Algorithm 1): L_prior + L_llike^Dis_l + L_GAN in one loss
whose parts reach, each, only the networks the paper trains with it."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .elbo import _terms
from .mmd import prior_draws
from .terms import LossTerms, kl_to_prior


@dataclasses.dataclass(frozen=True)
class VAEGANParts:
    """The terms of one batch, each ``(batch,)`` per example except ``discriminator`` (a scalar).

    Attributes:
        kl: L_prior = KL(q(z|x) ‖ p(z)) in nats; reaches the encoder only.
        feature_log_prob: log N(Dis_l(x) | Dis_l(g(z)), I) = −L_llike^Dis_l in nats (eq. 5-6); reaches the
            encoder at weight 1 and the decoder at weight 1/γ (times γ in the loss: weight γ), never Dis.
        generator: −log Dis(g(z)) − log Dis(g(z_p)), the decoder's GAN loss; reaches the decoder only.
        discriminator: mean over the batch of −log Dis(x) − log(1 − Dis(g(z))) − log(1 − Dis(g(z_p))),
            the cross-entropy of L_GAN; reaches Dis only.
    """

    kl: torch.Tensor
    feature_log_prob: torch.Tensor
    generator: torch.Tensor
    discriminator: torch.Tensor


def scale_gradient(t: torch.Tensor, factor: float) -> torch.Tensor:
    """``t`` unchanged in value (exactly: t + c·(t − t) adds zeros), its gradient multiplied by ``factor``."""
    return t + (factor - 1.0) * (t - t.detach())


@dataclasses.dataclass(frozen=True)
class VAEGANLoss:
    """β·warm-up·L_prior − γ·log N(Dis_l(x) | Dis_l(g(z̃)), I) + L_GAN(generator) + L_GAN(Dis), each
    reaching only its networks (:class:`VAEGANParts`; how, in :class:`vaekit.models.vaegan.VAEGAN`).
    One draw z ~ q(z|x) and one prior draw z_p per example. The logged ELBO is the feature ELBO
    log N(Dis_l(x) | Dis_l(g(z)), I) − KL, not a pixel one. The warm-up scales the KL only."""

    gamma: float = 1.0
    beta: float = 1.0

    def parts(self, model, x: torch.Tensor) -> VAEGANParts:
        """The four terms for x ``(batch, *data_shape)``."""
        n = len(x)
        q = model.encode(model.corrupt(x))
        z = q.rsample()
        kl = kl_to_prior(model, q, z)
        z_llike = scale_gradient(z, 1.0 / self.gamma)  # encoder: weight 1 on L_llike; decoder: γ (see loss)
        z_p = prior_draws(model, n).detach()
        x_rec, x_gan, x_p = model.generate(torch.cat([z_llike, z.detach(), z_p])).split(n)
        # Dis with detached parameters: the encoder's and decoder's terms move the images, never Dis.
        f, logit = model.critic(torch.cat([x, x_rec, x_gan, x_p]), detach_discriminator=True)
        llike = model.feature_log_prob(f[:n].detach(), f[n : 2 * n])
        generator = F.softplus(-logit[2 * n : 3 * n]) + F.softplus(-logit[3 * n :])
        # Dis's own term on detached images: it moves Dis only.
        _, d = model.critic(torch.cat([x, x_gan.detach(), x_p.detach()]))
        discriminator = F.softplus(-d[:n]).mean() + F.softplus(d[n : 2 * n]).mean() + F.softplus(d[2 * n :]).mean()
        return VAEGANParts(kl, llike, generator, discriminator)

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (``reconstruction``: the feature log-likelihood)."""
        p = self.parts(model, x)
        loss = (self.beta * warmup * p.kl - self.gamma * p.feature_log_prob + p.generator).mean() + p.discriminator
        return _terms(loss, p.feature_log_prob, p.kl)
