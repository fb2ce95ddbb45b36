"""The sliced Wasserstein distance between the aggregate posterior and the prior, and the SWAE
objective (Kolouri et al. 2019, "Sliced-Wasserstein Autoencoder: An Embarrassingly Simple
Generative Model", ICLR, sec. 2.3 eq. 11-12 and Algorithm 1)."""

from __future__ import annotations

import dataclasses

import torch

from .elbo import _terms
from .mmd import prior_draws
from .terms import LossTerms, forward, kl_to_prior


def random_directions(dim: int, num_projections: int, like: torch.Tensor) -> torch.Tensor:
    """``num_projections`` directions drawn uniformly on the unit sphere S^{dim−1}, ``(dim, L)``."""
    theta = torch.randn(dim, num_projections, dtype=like.dtype, device=like.device)
    return theta / theta.norm(dim=0, keepdim=True)


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, num_projections: int = 50, p: float = 2.0, directions: torch.Tensor | None = None
) -> torch.Tensor:
    """SW_p^p(P, Q) ≈ (1/L) Σ_l W_p^p(θ_l·P, θ_l·Q) from equal-size samples x ~ P, y ~ Q ``(n, d)``
    (Kolouri et al. 2019, eq. 11 with the empirical 1-D optimal transport of eq. 12: sort both
    projections and match them in order). Scalar, in squared latent units for p = 2.

    Args:
        directions: ``(d, L)`` unit vectors to project on (default: L = ``num_projections`` drawn
            uniformly on the sphere with the global RNG).

    Raises:
        ValueError: x and y of different shapes, or p < 1.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be (n, d) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p!r}")
    theta = random_directions(x.shape[-1], num_projections, x) if directions is None else directions
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    return (px - py).abs().pow(p).mean()


@dataclasses.dataclass(frozen=True)
class SlicedWasserstein:
    """SWAE loss: −E log p(x|z) + λ·SW_p^p(q(z), p(z)) (Kolouri et al. 2019, eq. 12), the codes z
    of the batch against as many fresh prior draws, L random directions per batch. The
    reconstruction cost is the model's negative log-likelihood (the paper's squared error for a
    Gaussian head, up to scale and a constant)."""

    weight: float = 10.0
    num_projections: int = 50
    p: float = 2.0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, None)
        sw = sliced_wasserstein(out.z, prior_draws(model, len(x)), self.num_projections, self.p)
        loss = -out.log_px.mean() + self.weight * sw
        return _terms(loss, out.log_px, kl_to_prior(model, out.q, out.z))
