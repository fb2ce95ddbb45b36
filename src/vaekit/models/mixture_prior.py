"""The VAE with a learned Gaussian-mixture prior, p(z) = Σ_k π_k N(z; m_k, diag s_k²) (the "MoG prior"
that Tomczak & Welling 2018, sec. 2.2 and table 2, compare the VampPrior with)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from ..distributions import DiagonalNormal, Likelihood
from .vae import VAE

#: Smallest component scale of the prior, so a component cannot collapse onto one code.
MIN_SCALE = 1e-3


class MixturePriorVAE(VAE):
    """VAE with a learned mixture of K diagonal Gaussians as its prior.

    The weights π (softmax of logits), means m_k and scales s_k (softplus, floored at
    :data:`MIN_SCALE`) are parameters trained by the ELBO with the rest of the model. The KL to this
    prior has no closed form, so it is estimated by Monte Carlo on the reconstruction's draws; the
    IS log-likelihood uses ``prior().log_prob``.

    Args: as :class:`~vaekit.models.VAE`, plus
        num_components: K.
        init_spread: standard deviation of the initial means around 0 (scales start at 1).

    Raises:
        ValueError: num_components < 1 or init_spread < 0.
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
        num_components: int = 10,
        init_spread: float = 1.0,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(num_components, bool) or not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be an integer >= 1, got {num_components!r}")
        if not float(init_spread) >= 0:
            raise ValueError(f"init_spread must be >= 0, got {init_spread!r}")
        self.num_components, self.init_spread = num_components, float(init_spread)
        self.mixture_logits = nn.Parameter(torch.zeros(num_components))
        self.component_loc = nn.Parameter(self.init_spread * torch.randn(num_components, self.latent_dim))
        # softplus(raw) + MIN_SCALE = 1 at the start
        self.component_raw_scale = nn.Parameter(
            torch.full((num_components, self.latent_dim), math.log(math.expm1(1.0 - MIN_SCALE)))
        )

    def extra_config(self) -> dict:
        """``num_components`` and ``init_spread``: rebuild the mixture's parameters on load."""
        return {"num_components": self.num_components, "init_spread": self.init_spread}

    def prior(self) -> Distribution:
        """p(z) = Σ_k π_k N(m_k, diag s_k²): a ``MixtureSameFamily``, event ``(latent_dim,)``."""
        scale = F.softplus(self.component_raw_scale) + MIN_SCALE
        return MixtureSameFamily(Categorical(logits=self.mixture_logits), DiagonalNormal(self.component_loc, scale))
