"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018, "Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations", ICLR, sec. 3): a VAE whose aggregate posterior's covariance
is pulled to the identity."""

from __future__ import annotations

from torch import nn

from ..distributions import Likelihood
from .vae import VAE


class DIPVAE(VAE):
    """DIP-VAE-I (Kumar et al. 2018, eq. 6): −ELBO + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)² with
    C = Cov_x[μ(x)] over the batch (:class:`vaekit.objectives.dip.DIP`). The paper sets λ_d = 10 λ_od
    for DIP-VAE-I and λ_d = λ_od for DIP-VAE-II (sec. 4); the graphical model is the VAE's, so the
    IS log-likelihood is defined.

    Args: as :class:`~vaekit.models.VAE`, plus
        lambda_od: λ_od >= 0, the off-diagonal weight. lambda_d: λ_d >= 0 (None: 10·λ_od for I, λ_od for II).

    Raises:
        ValueError: a negative weight.
    """

    kind = "i"
    diagonal_ratio = 10.0

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        lambda_od: float = 10.0,
        lambda_d: float | None = None,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        lambda_d = self.diagonal_ratio * lambda_od if lambda_d is None else lambda_d
        for name, value in (("lambda_od", lambda_od), ("lambda_d", lambda_d)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self.lambda_od, self.lambda_d = float(lambda_od), float(lambda_d)

    def extra_config(self) -> dict:
        """λ_od and λ_d."""
        return {"lambda_od": self.lambda_od, "lambda_d": self.lambda_d}


class DIPVAEII(DIPVAE):
    """DIP-VAE-II (Kumar et al. 2018, eq. 7): as :class:`DIPVAE` with C = Cov_q(z)[z] =
    E_x[diag σ²(x)] + Cov_x[μ(x)], and λ_d = λ_od by default."""

    kind = "ii"
    diagonal_ratio = 1.0
