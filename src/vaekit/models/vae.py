"""The variational autoencoder with a diagonal-Gaussian posterior and the N(0, I) prior."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..distributions import DiagonalNormal
from .ae import AE


class VAE(AE):
    """Variational autoencoder (Kingma & Welling 2013) with q(z|x) = N(loc(x), diag(scale(x)²)).

    Args: as :class:`AE`, but the encoder returns ``(loc, scale)``, each ``(batch, latent_dim)``
    with ``scale > 0``. Any ``nn.Module`` pair with these signatures works: this is how a custom
    architecture is plugged in.
    """

    stochastic = True

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = Independent(Normal(loc, scale), 1), batch ``(batch,)``, event ``(latent_dim,)``.

        Raises:
            ValueError: x of the wrong shape, or an encoder that does not return a valid (loc, scale).
        """
        return self._posterior(self._encoder_output(x))

    def _posterior(self, out) -> DiagonalNormal:
        """Check an encoder's ``(loc, scale)`` output and wrap it as a diagonal Gaussian."""
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError("a VAE encoder must return (loc, scale), each (batch, latent_dim)")
        loc, scale = out
        if loc.shape != scale.shape or loc.shape[-1] != self.latent_dim:
            raise ValueError(
                f"encoder returned loc {tuple(loc.shape)} and scale {tuple(scale.shape)}; "
                f"expected both (batch, {self.latent_dim})"
            )
        return DiagonalNormal(loc, scale)
