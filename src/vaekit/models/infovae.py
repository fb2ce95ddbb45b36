"""InfoVAE with the MMD divergence (Zhao et al. 2019, "InfoVAE: Balancing Learning and Inference in
Variational Autoencoders", AAAI, sec. 3, eq. 6; the MMD-VAE of sec. 3.2)."""

from __future__ import annotations

from torch import nn

from ..distributions import Likelihood
from .vae import VAE
from .wae import SCALES, check_positive


class InfoVAE(VAE):
    """InfoVAE-MMD: maximise E_q log p(x|z) − (1 − α) KL(q(z|x) ‖ p(z)) − (α + λ − 1) MMD²(q(z), p(z))
    (Zhao et al. 2019, eq. 6 with D = MMD, sec. 3.2). α = 1 drops the KL (the MMD-VAE); α = 0
    keeps the whole ELBO and adds the MMD with weight λ − 1. The posterior is the VAE's diagonal
    Gaussian and the prior N(0, I), so the IS log-likelihood is defined (``tractable_likelihood``).

    Args: as :class:`~vaekit.models.VAE`, plus
        alpha: α <= 1.
        lbd: λ > 0 with α + λ − 1 >= 0 (pythae's name, ``lbd``).
        kernel: "imq" or "rbf"; scales: as :class:`~vaekit.models.wae.WAE`.

    Raises:
        ValueError: α > 1, λ <= 0, α + λ − 1 < 0, an unknown kernel or bad scales.
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
        alpha: float = 0.0,
        lbd: float = 1000.0,
        kernel: str = "imq",
        scales=SCALES,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha <= 1:
            raise ValueError(f"alpha must be a number <= 1, got {alpha!r}")
        self.alpha, self.lbd = float(alpha), check_positive("lbd", lbd)
        if self.alpha + self.lbd - 1 < 0:
            raise ValueError(f"alpha + lbd - 1 must be >= 0 (the MMD weight), got {self.alpha + self.lbd - 1}")
        if kernel not in ("imq", "rbf"):
            raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}")
        if not isinstance(scales, (list, tuple)) or not scales:
            raise ValueError(f"scales must be a non-empty list of numbers > 0, got {scales!r}")
        self.kernel, self.scales = kernel, tuple(check_positive("a scale", s) for s in scales)

    def extra_config(self) -> dict:
        """α, λ, the kernel and its scales."""
        return {"alpha": self.alpha, "lbd": self.lbd, "kernel": self.kernel, "scales": list(self.scales)}
