"""The MS-SSIM VAE: a VAE whose reconstruction term is the multi-scale structural similarity
(Snell et al. 2017, "Learning to Generate Images with Perceptual Similarity Metrics", ICIP, sec. 3;
MS-SSIM of Wang, Simoncelli & Bovik 2003). MS-SSIM is torchmetrics' implementation, not ours."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions import Likelihood
from .vae import VAE

#: Wang et al. 2003's exponents of the five scales (torchmetrics' default ``betas``).
BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def scales_for(height: int, width: int) -> tuple[int, int]:
    """(levels L, Gaussian window k) for images of ``height`` × ``width``: the most scales (<= 5) and then the
    widest odd window (<= 11) that torchmetrics' MS-SSIM accepts (each side >= 2^L, side // (L−1)² > k−1,
    the reflect padding (k−1)/2 below the side at the coarsest scale).

    Raises:
        ValueError: images too small for one scale with a 3-pixel window.
    """
    side = min(height, width)
    for levels in range(5, 0, -1):
        coarsest = side // 2 ** (levels - 1)
        for k in range(11, 2, -2):
            if side >= 2**levels and side // max(1, levels - 1) ** 2 > k - 1 and coarsest > (k - 1) // 2:
                return levels, k
    raise ValueError(f"images of {height}x{width} are too small for MS-SSIM (at least 3x3)")


class MSSSIMScore(Distribution):
    """The MS-SSIM "likelihood" of images x given decoder means m ``(*lead, C, H, W)``: ``log_prob(x)`` =
    −w·(1 − MS-SSIM(x, m)) per image, ``(*lead,)``. **Not a normalised density**: it scores
    reconstructions on the log-likelihood's scale for the ELBO-shaped loss, so a model using it has
    no likelihood bound (``tractable_likelihood=False``). Data range 1 (images in [0, 1]); the
    "simple" normalisation of torchmetrics ((s + 1)/2 per scale, so no scale is clipped to 0 and
    the gradient never vanishes, as it does with "relu" on poor 8×8 reconstructions)."""

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, mean: torch.Tensor, weight: float, levels: int, kernel_size: int):
        self._mean, self.weight, self.levels, self.kernel_size = mean, float(weight), levels, kernel_size
        super().__init__(batch_shape=mean.shape[:-3], event_shape=mean.shape[-3:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        """The decoded image the score compares with, ``(*batch, C, H, W)`` in [0, 1] (the score is not a normalised density: its centre, not an expectation)."""
        return self._mean

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        from torchmetrics.functional.image import (
            multiscale_structural_similarity_index_measure as ms_ssim,
        )

        m = self._mean
        lead = torch.broadcast_shapes(m.shape[:-3], x.shape[:-3])
        m, x = m.expand(*lead, *m.shape[-3:]), x.expand(*lead, *x.shape[-3:])
        weights = torch.tensor(BETAS[: self.levels])
        betas = tuple((weights / weights.sum()).tolist())
        sigma = 1.5 if self.kernel_size == 11 else (self.kernel_size - 1) / 7
        score = ms_ssim(
            m.reshape(-1, *m.shape[-3:]),
            x.reshape(-1, *x.shape[-3:]),
            sigma=sigma,
            kernel_size=self.kernel_size,
            betas=betas,
            data_range=1.0,
            reduction="none",
            normalize="simple",
        )
        return (-self.weight * (1 - score)).reshape(lead)


class MSSSIMVAE(VAE):
    """VAE trained on E_q[−w(1 − MS-SSIM(x, g(z)))] − KL(q(z|x) ‖ p(z)) (Snell et al. 2017, sec. 3, with
    a KL term as in PyTorch-VAE's / pythae's MSSSIM-VAE), g(z) the configured head's mean. The
    scales and window adapt to the image size (:func:`scales_for`: 2 scales and a 7-pixel window on
    8×8 digits, 4 scales and 3 pixels on 28×28; 5 and 11 from 176 pixels on). The reconstruction
    score is not a normalised density (:class:`MSSSIMScore`): no IS log-likelihood, and the
    logged "elbo" is this objective's value, not a bound on log p(x). Images only.

    Args: as :class:`~vaekit.models.VAE`, plus
        reconstruction_weight: w > 0 (default: the number of values per image, C·H·W, so the score is
            on the scale of a per-pixel log-likelihood summed over the image).

    Raises:
        ValueError: data that are not images (C, H, W) of at least 3×3, a head with a learned scale,
            or w not > 0.
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
        reconstruction_weight: float | None = None,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        reason = self.refuses(data_shape, "learned" if any(True for _ in likelihood.parameters()) else 1.0)
        if reason:
            raise ValueError(reason)
        self.levels, self.kernel_size = scales_for(*tuple(data_shape)[1:])
        if reconstruction_weight is not None and (
            isinstance(reconstruction_weight, bool)
            or not isinstance(reconstruction_weight, (int, float))
            or not reconstruction_weight > 0
        ):
            raise ValueError(f"reconstruction_weight must be a number > 0, got {reconstruction_weight!r}")
        self.reconstruction_weight = reconstruction_weight

    @classmethod
    def refuses(cls, data_shape, likelihood_scale) -> str | None:
        """Non-image data, and a learned head scale (the score uses the head's mean only: a learned scale
        would get no gradient and mean nothing)."""
        if data_shape is None or len(data_shape) != 3:
            return f"the MS-SSIM VAE needs image data (C, H, W), got examples of shape {data_shape}"
        if likelihood_scale == "learned":
            return "the MS-SSIM VAE uses the decoder mean only: give the Gaussian head a fixed --likelihood-scale"
        return None

    def extra_config(self) -> dict:
        """w (None: C·H·W)."""
        return {"reconstruction_weight": self.reconstruction_weight}

    def decode(self, z: torch.Tensor) -> Distribution:
        """The MS-SSIM score around the head's mean, batch ``z.shape[:-1]``, event ``data_shape``."""
        mean = super().decode(z).mean
        weight = self.reconstruction_weight or float(torch.Size(self.data_shape or ()).numel())
        return MSSSIMScore(mean, weight, self.levels, self.kernel_size)
