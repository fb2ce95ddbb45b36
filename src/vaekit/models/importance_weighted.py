"""The VAE trained with a tighter (or deliberately looser) bound: MIWAE, CIWAE, PIWAE (Rainforth et
al. 2018, "Tighter variational bounds are not necessarily better", ICML, sec. 4). The graphical model is
the VAE's; this class only carries the bound's settings as model options, so that
``--options '{"num_bounds": 8, "num_particles": 8}'`` reaches the objective
(:class:`vaekit.objectives.tighter.TighterBound`) and is saved with the weights."""

from __future__ import annotations

from torch import nn

from ..distributions import Likelihood
from ..objectives.tighter import ELBO_WEIGHT, NUM_BOUNDS, NUM_PARTICLES, _check
from .vae import VAE


class ImportanceWeightedVAE(VAE):
    """A :class:`~vaekit.models.VAE` whose registry entry (``miwae``, ``ciwae``, ``piwae``) trains it with
    one of Rainforth et al. 2018's bounds (sec. 4, eqs. 12-14).

    Args: as :class:`~vaekit.models.VAE`, plus
        num_bounds: M, IWAE_K bounds averaged by the MIWAE and PIWAE (paper: 8).
        num_particles: K, importance samples per bound (paper: 8).
        elbo_weight: β of the CIWAE = β·ELBO + (1 − β)·IWAE_K (paper: 0.5).

    Raises:
        ValueError: M or K not an integer >= 1, β outside [0, 1].
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
        num_bounds: int = NUM_BOUNDS,
        num_particles: int = NUM_PARTICLES,
        elbo_weight: float = ELBO_WEIGHT,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        _check(num_bounds, num_particles, elbo_weight)
        self.num_bounds, self.num_particles, self.elbo_weight = num_bounds, num_particles, float(elbo_weight)

    def extra_config(self) -> dict:
        """M, K and β, saved with the weights."""
        return {"num_bounds": self.num_bounds, "num_particles": self.num_particles, "elbo_weight": self.elbo_weight}
