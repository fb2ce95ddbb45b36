"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", ICML, sec. 3, eq. 2 and Algorithm 2):
a VAE penalised by the total correlation of q(z), estimated with a discriminator."""

from __future__ import annotations

import torch
from torch import nn

from ..distributions import Likelihood
from .discriminator import call_detached, check_hidden, mlp_discriminator
from .vae import VAE


class FactorVAE(VAE):
    """FactorVAE: maximise ELBO − γ·TC(q(z)), TC ≈ E_q(z)[log D(z)/(1 − D(z))] (Kim & Mnih 2018, eq. 2-3):
    the discriminator D (an MLP, ``discriminator``, logits of "a draw of q(z)" against "a draw of
    Π_j q(z_j)") is part of the model and trained by its cross-entropy on the batch's codes and
    their dimension-wise permutation (:func:`vaekit.objectives.factor.permute_dims`).

    One training loop, one optimizer: the objective (:class:`vaekit.objectives.factor.FactorLoss`)
    adds the two losses, and each reaches only its own parameters: the VAE's term evaluates D with
    *detached* parameters (``torch.func.functional_call``), the discriminator's term sees
    *detached* codes. Unlike the paper (a separate Adam for D, lr 1e-4, β = (0.5, 0.9), and a
    second batch for the permuted codes), D shares the run's optimizer and permutes the same batch.

    Args: as :class:`~vaekit.models.VAE`, plus
        gamma: γ >= 0 (the paper sweeps 10 to 100 on dSprites, sec. 4).
        disc_hidden: hidden widths of D (the paper: 6 layers of 1000 with leaky ReLU; smaller by default).

    Raises:
        ValueError: γ < 0 or empty / non-positive hidden widths.
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
        gamma: float = 10.0,
        disc_hidden=(256, 256, 256),
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
            raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
        self.gamma, self.disc_hidden = float(gamma), check_hidden(disc_hidden)
        self.discriminator = mlp_discriminator(self.latent_dim, self.disc_hidden)

    def extra_config(self) -> dict:
        """γ and D's widths."""
        return {"gamma": self.gamma, "disc_hidden": list(self.disc_hidden)}

    def tc_logits(self, z: torch.Tensor, detach_discriminator: bool = False) -> torch.Tensor:
        """D's logits log D(z)/(1 − D(z)) ``(batch,)`` for codes ``z`` ``(batch, d)``; with
        ``detach_discriminator`` the gradient reaches z only, not D's parameters."""
        return (call_detached(self.discriminator, z) if detach_discriminator else self.discriminator(z)).squeeze(-1)
