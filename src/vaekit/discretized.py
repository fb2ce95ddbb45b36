"""The discretized logistic distribution of 8-bit pixels (Salimans et al. 2017, "PixelCNN++", sec. 2.1,
eq. 2, with one mixture component; Kingma et al. 2016, "Improved Variational Inference with Inverse
Autoregressive Flow", appendix C).

A pixel value x ∈ {0, 1/255, ..., 1} gets the mass of its bin of width 1/255 under a logistic
distribution with location ``loc`` and scale ``scale``: P(x) = σ((x + δ − μ)/s) − σ((x − δ − μ)/s), δ =
1/510; the edge bins take the tails (x = 0 gets everything below δ, x = 1 everything above 1 − δ), so
the 256 probabilities of each pixel sum to one and log_prob is a log-probability of the 8-bit image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, constraints

#: The number of grey levels and the half-width of one level's bin on [0, 1].
LEVELS = 256
HALF_BIN = 0.5 / (LEVELS - 1)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """``x`` (any shape, [0, 1] pixels) rounded to the nearest of the 256 levels k/255 (not clipped)."""
    return (x * (LEVELS - 1)).round() / (LEVELS - 1)


def level_index(x: torch.Tensor) -> torch.Tensor:
    """The level k in 0..255 of each value of ``x`` (nearest, clipped to the range): a long tensor of x's shape."""
    return (x * (LEVELS - 1)).round().long().clamp(0, LEVELS - 1)


def on_grid(x: torch.Tensor, atol: float = 1e-4) -> bool:
    """Whether every value of ``x`` is one of the 256 levels k/255 of [0, 1]."""
    scaled = x * (LEVELS - 1)
    return bool(((scaled - scaled.round()).abs() <= atol * (LEVELS - 1)).all() and x.min() >= 0 and x.max() <= 1)


class DiscretizedLogisticDistribution(Distribution):
    """Independent discretized logistic pixels, batch shape = the shape of ``loc`` (no event dimensions:
    wrap in ``Independent`` to sum over an image).

    Args:
        loc: ``(*shape)`` locations μ in [0, 1] pixel units.
        scale: ``(*shape)`` (or broadcastable) logistic scales s > 0, in [0, 1] pixel units.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args: bool | None = False):
        self.loc, self.scale = loc, scale.expand_as(loc)
        super().__init__(loc.shape, validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        """The location μ clipped to [0, 1] (the mode of the underlying logistic, not the exact mean of the
        256 levels, which differs from it near the edges)."""
        return self.loc.clamp(0.0, 1.0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log P(x) per pixel in nats, ``(*shape)``, for ``value`` on the 8-bit grid of [0, 1] (values off
        the grid get the mass of a bin centred on them). Stable: the edge bins use log σ and log(1 − σ)
        in softplus form, and a bin whose mass underflows uses the density at its centre × 1/255."""
        centred = value - self.loc
        inv = 1.0 / self.scale
        upper, lower = inv * (centred + HALF_BIN), inv * (centred - HALF_BIN)
        log_cdf_upper = upper - F.softplus(upper)  # log σ(upper): the x = 0 bin
        log_sf_lower = -F.softplus(lower)  # log(1 − σ(lower)): the x = 1 bin
        mass = torch.sigmoid(upper) - torch.sigmoid(lower)
        middle = inv * centred  # log density at the centre (logistic) + log bin width, if the mass underflows
        log_density = middle - torch.log(self.scale) - 2.0 * F.softplus(middle) + math.log(2 * HALF_BIN)
        inner = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_density)
        return torch.where(value < HALF_BIN, log_cdf_upper, torch.where(value > 1 - HALF_BIN, log_sf_lower, inner))

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        """Draws on the 8-bit grid, ``(*sample_shape, *shape)``: a logistic draw rounded to the nearest level
        and clipped to [0, 1] (the edge bins' tails land on 0 and 1)."""
        shape = torch.Size(sample_shape) + self.loc.shape
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(1e-6, 1 - 1e-6)
            draw = self.loc + self.scale * (torch.log(u) - torch.log1p(-u))
            return (draw.clamp(0.0, 1.0) * (LEVELS - 1)).round() / (LEVELS - 1)
