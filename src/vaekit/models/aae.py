"""The adversarial autoencoder (Makhzani et al. 2016, "Adversarial Autoencoders", ICLR workshop,
sec. 2, the deterministic encoder of sec. 2 "q(z|x) = δ(z − f(x))")."""

from __future__ import annotations

import torch
from torch import nn

from ..distributions import Likelihood
from .ae import AE
from .discriminator import call_detached, check_hidden, mlp_discriminator
from .wae import check_positive


class AdversarialAE(AE):
    """AAE: an autoencoder whose code distribution q(z) is matched to the prior N(0, I) by a
    discriminator D on z (Makhzani et al. 2016, sec. 2): the reconstruction phase minimises
    −log p(x|z), the regularisation phase trains D to tell prior draws (label 1) from codes
    (label 0) and the encoder to fool it (the non-saturating −log D(f(x))).

    The two phases are one loss with one optimizer (:class:`vaekit.objectives.adversarial.AdversarialLoss`):
    the encoder's term calls D with detached parameters, D's cross-entropy sees detached codes; the
    paper alternates separate SGD updates per phase. No likelihood: ``tractable_likelihood=False``;
    samples decode prior draws.

    Args: as :class:`AE`, plus
        reg_weight: λ > 0 on the encoder's adversarial term.
        disc_hidden: D's hidden widths (the paper's MNIST D: two layers of 1000).

    Raises:
        ValueError: λ not > 0, bad widths.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        reg_weight: float = 1.0,
        disc_hidden=(256, 256),
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.reg_weight, self.disc_hidden = check_positive("reg_weight", reg_weight), check_hidden(disc_hidden)
        self.discriminator = mlp_discriminator(self.latent_dim, self.disc_hidden)

    def extra_config(self) -> dict:
        """λ and D's widths."""
        return {"reg_weight": self.reg_weight, "disc_hidden": list(self.disc_hidden)}

    def critic(self, z: torch.Tensor, detach_discriminator: bool = False) -> torch.Tensor:
        """D's logits ``(batch,)`` that ``z`` ``(batch, d)`` is a prior draw; with ``detach_discriminator``
        the gradient reaches z only."""
        return (call_detached(self.discriminator, z) if detach_discriminator else self.discriminator(z)).squeeze(-1)
