"""The sliced-Wasserstein autoencoder (Kolouri et al. 2019, "Sliced-Wasserstein Autoencoder: An
Embarrassingly Simple Generative Model", ICLR, sec. 2.3 and Algorithm 1)."""

from __future__ import annotations

from torch import nn

from ..distributions import Likelihood
from .ae import AE
from .wae import check_positive


class SWAE(AE):
    """SWAE: a deterministic encoder, loss −log p(x|z) + λ·SW_p^p(q(z), p(z)) with the sliced
    Wasserstein distance estimated on L random directions per batch (Kolouri et al. 2019, eq. 12,
    :class:`vaekit.objectives.sliced.SlicedWasserstein`); prior N(0, I); no likelihood bound.

    Args: as :class:`AE`, plus
        reg_weight: λ > 0.
        num_projections: L >= 1 (the paper uses 50).
        p: the order of the Wasserstein distance, >= 1 (2 in the paper).

    Raises:
        ValueError: λ <= 0, L < 1 or p < 1.
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
        reg_weight: float = 10.0,
        num_projections: int = 50,
        p: float = 2.0,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(num_projections, bool) or not isinstance(num_projections, int) or num_projections < 1:
            raise ValueError(f"num_projections must be an integer >= 1, got {num_projections!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
            raise ValueError(f"p must be a number >= 1, got {p!r}")
        self.reg_weight, self.num_projections, self.p = (
            check_positive("reg_weight", reg_weight),
            num_projections,
            float(p),
        )

    def extra_config(self) -> dict:
        """λ, L and p."""
        return {"reg_weight": self.reg_weight, "num_projections": self.num_projections, "p": self.p}
