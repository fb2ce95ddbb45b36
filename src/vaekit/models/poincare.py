"""The Poincaré VAE (Mathieu, Le Lan, Maddison, Tomioka & Teh 2019, "Continuous Hierarchical
Representations with Poincaré Variational Auto-Encoders", NeurIPS): a latent space that is the Poincaré
ball B_c^d = {z ∈ R^d : ‖z‖ < 1/√c} of curvature −c, a wrapped-normal posterior and prior on it.

Geometry (sec. 2 of the paper; geoopt's ``PoincareBall`` computes it): the metric is conformal,
g_z = (λ_z^c)² I with λ_z^c = 2 / (1 − c‖z‖²); Möbius addition ⊕_c; exp_μ^c / log_μ^c the exponential
and logarithmic maps at μ; d_c(μ, z) = (2/√c) artanh(√c ‖−μ ⊕_c z‖) the geodesic distance.

* **Wrapped normal** N^W(μ, diag σ²) (sec. 3.1): v ~ N(0, diag σ²) in orthonormal coordinates of the
  tangent space at the origin, moved to μ by parallel transport (a rescaling by λ_0/λ_μ) and mapped onto
  the ball: z = exp_μ(v / λ_μ). So ‖v‖ = d_c(μ, z) and v = λ_μ log_μ(z). Its density with respect to
  the ball's Riemannian volume dM(z) = (λ_z^c)^d dz is, by the change of variables through exp_μ (the
  volume element in geodesic polar coordinates is (sinh(√c r)/√c)^{d−1} dr dΩ),

      log N^W(z | μ, σ) = log N(λ_μ log_μ(z) | 0, diag σ²) − (d − 1) log( sinh(√c r) / (√c r) ),  r = d_c(μ, z).

  ``log_prob`` returns this (nats, w.r.t. dM, as the paper); add :func:`log_volume` (d log λ_z^c) for
  the density w.r.t. Lebesgue measure on R^d. KL terms and importance weights are ratios of two
  densities on the same space, so the choice of base measure cancels in every number vaekit reports.
* **Prior**: the wrapped normal at the origin, p(z) = N^W(0, σ_0² I) (σ_0 = ``prior_scale``).
* **Encoder**: the usual network's (loc, scale); μ = exp_0^c(loc) on the ball, σ = scale.
* **Decoder**: ``decoder_input="gyroplane"`` (default) puts a gyroplane layer first (sec. 3.3, from
  Ganea et al. 2018's hyperbolic multiclass logistic regression): unit k outputs the signed, scaled
  geodesic distance from z to the gyroplane H_k = {z : ⟨−p_k ⊕_c z, a_k⟩ = 0},

      f_k(z) = sign(⟨−p_k ⊕_c z, a_k⟩) ‖a_k‖_{p_k} (1/√c) arsinh( 2√c ⟨−p_k ⊕_c z, a_k⟩_abs / ((1 − c‖−p_k ⊕_c z‖²) ‖a_k‖) ),

  with ‖a‖_p = λ_p^c ‖a‖, p_k = exp_0(b_k w_k) and a_k the transport of w_k from the origin to p_k (the
  authors' parameterisation: w_k ∈ R^d, b_k ∈ R learned), then the run's activation and the usual
  decoder body, which takes the ``num_gyroplanes`` features as its code (one linear layer more than
  the paper's decoder, whose gyroplane units feed the second layer). ``decoder_input="logmap0"`` is the
  paper's simpler "wrapped" decoder: the body sees λ_0 log_0(z) ∈ R^d, the normal coordinates at the
  origin (so a prior draw arrives as N(0, σ_0² I)).
* **Training**: the ELBO, KL(q ‖ p) by Monte Carlo on the reconstruction's own draws
  (:func:`vaekit.distributions.kl_or_estimate`; no closed form exists); the IS log-likelihood re-encodes
  slices and uses ``q.sample`` / ``q.log_prob`` like any non-Gaussian posterior.

Not implemented: the paper's Riemannian normal (its rejection sampler of the radius), a learned
curvature or prior scale, and the curvature-c → 0 Euclidean model as c = 0 (pass a small c instead: the
wrapped normal then tends to N(μ, diag σ²/4) in ambient coordinates, as λ → 2; tested).

Numerics: the ball's maps run in float64 inside the distributions and the gyroplane layer (geoopt keeps
points within (1 − 1e-5)/√c of the centre in float64, 4e-3 in float32), and the results come back in
the input's dtype. Equation numbers of the paper are not quoted: the numbered text was not at hand;
every formula above is written out instead.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from ..nets import ACTIVATIONS
from .vae import VAE

#: the decoder's first layer: a gyroplane layer (paper sec. 3.3) or the log map at the origin
DECODER_INPUTS = ("gyroplane", "logmap0")


@functools.lru_cache(maxsize=16)
def poincare_ball(curvature: float):
    """geoopt's ``PoincareBall`` of curvature −``curvature`` (imported on use; one object per curvature),
    its curvature held in float64 so that it is c to double precision.

    Raises:
        ImportError: geoopt is not installed (``pip install 'vaekit[poincare]'``).
    """
    try:
        with warnings.catch_warnings():  # geoopt decorates with torch.jit.script, which torch 2.13 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            import geoopt
    except ImportError as err:  # pragma: no cover - geoopt is in the test extra
        raise ImportError("the Poincaré VAE needs geoopt: pip install 'vaekit[poincare]' (or geoopt)") from err
    return geoopt.PoincareBall(c=torch.tensor(float(curvature), dtype=torch.float64))


def check_curvature(curvature) -> float:
    """The curvature c as a float. Raises ValueError unless it is a finite number > 0."""
    if isinstance(curvature, bool) or not isinstance(curvature, (int, float)) or not 0 < curvature < math.inf:
        raise ValueError(f"curvature must be a finite number > 0 (the ball has curvature -c), got {curvature!r}")
    return float(curvature)


def log_sinhc(x: torch.Tensor) -> torch.Tensor:
    """log(sinh(x)/x) for x >= 0, elementwise: x²/6 − x⁴/180 near 0, else x + log1p(−e^{−2x}) − log 2x."""
    small = x < 1e-3
    safe = torch.where(small, torch.ones_like(x), x)
    large = safe + torch.log1p(-torch.exp(-2 * safe)) - torch.log(2 * safe)
    return torch.where(small, x.square() / 6 - x.pow(4) / 180, large)


def conformal_factor(z: torch.Tensor, curvature: float) -> torch.Tensor:
    """λ_z^c = 2 / (1 − c‖z‖²), ``(*batch,)`` for z ``(*batch, d)`` in the ball."""
    return 2 / (1 - curvature * z.square().sum(-1)).clamp_min(1e-15)


def log_volume(z: torch.Tensor, curvature: float) -> torch.Tensor:
    """log dM/dz = d log λ_z^c ``(*batch,)``: add it to a log density w.r.t. the Riemannian volume
    (what :class:`WrappedNormal` returns) to get the log density w.r.t. Lebesgue measure on R^d."""
    return z.shape[-1] * conformal_factor(z.double(), curvature).log().to(z.dtype)


class WrappedNormal(Distribution):
    """The wrapped normal N^W(loc, diag scale²) on the Poincaré ball of curvature −c (Mathieu et al.
    2019, sec. 3.1): the push-forward of N(0, diag scale²) on the tangent space at the origin, transported
    to ``loc`` and mapped by exp_loc.

    Args:
        loc: μ ``(*batch, d)``, points of the ball (‖μ‖ < 1/√c).
        scale: σ ``(*batch, d)`` > 0, standard deviations in orthonormal tangent coordinates (geodesic
            units: the draws lie at distance ‖v‖ from μ, v ~ N(0, diag σ²)).
        curvature: c > 0.

    ``rsample`` is reparameterised (gradients reach loc and scale); ``log_prob(z)`` ``(*sample, *batch)``
    in nats w.r.t. the Riemannian volume (see the module docstring for the formula and :func:`log_volume`);
    ``mean`` is loc (the Fréchet mean; the density is symmetric about it).

    Raises:
        ValueError: a curvature that is not > 0, loc and scale of different shapes, or d < 1.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, curvature: float = 1.0):
        self.curvature = check_curvature(curvature)
        if loc.shape != scale.shape or loc.dim() < 1 or loc.shape[-1] < 1:
            raise ValueError(f"loc and scale must both be (*batch, d), got {tuple(loc.shape)} and {tuple(scale.shape)}")
        self.loc, self.scale = loc, scale
        self.ball = poincare_ball(self.curvature)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        """The centre μ in the ball, ``(*batch, d)``: the mode, used as the point code (not the Fréchet mean)."""
        return self.loc

    def rsample(self, sample_shape=()) -> torch.Tensor:
        """z = exp_μ(v / λ_μ), v = σ ⊙ ε, ε ~ N(0, I): ``(*sample_shape, *batch, d)`` in loc's dtype."""
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        loc, v = self.loc.double(), (self.scale * eps).double()
        z = self.ball.expmap(loc, v / conformal_factor(loc, self.curvature).unsqueeze(-1))
        return z.to(self.loc.dtype)

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def tangent(self, z: torch.Tensor) -> torch.Tensor:
        """v = λ_μ log_μ(z) ``(*sample, *batch, d)`` (float64): the tangent coordinates that map to z."""
        loc = self.loc.double()
        return conformal_factor(loc, self.curvature).unsqueeze(-1) * self.ball.logmap(loc, z.double())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N^W(z | μ, σ) ``(*sample, *batch)``, nats w.r.t. the Riemannian volume of the ball."""
        v = self.tangent(z)
        scale = self.scale.double()
        r = v.norm(dim=-1)
        gaussian = (-0.5 * (v / scale).square() - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        out = gaussian - (self.loc.shape[-1] - 1) * log_sinhc(math.sqrt(self.curvature) * r)
        return out.to(z.dtype)


class GyroplaneLayer(nn.Module):
    """``out_features`` gyroplane units on the Poincaré ball (Mathieu et al. 2019, sec. 3.3; Ganea et al.
    2018, sec. 3.1): z ``(..., in_features)`` in the ball -> ``(..., out_features)`` signed distances
    to the gyroplanes H_k, scaled by ‖a_k‖_{p_k} (the formula is in the module docstring).

    Parameters: ``weight`` w ``(out, in)`` (normal directions at the origin) and ``offset`` b ``(out, 1)``;
    p_k = exp_0(b_k w_k), a_k = (λ_0/λ_{p_k}) w_k. Möbius addition is written out with inner products
    (Ungar's formula: x ⊕ y = ((1 + 2c⟨x,y⟩ + c‖y‖²) x + (1 − c‖x‖²) y) / (1 + 2c⟨x,y⟩ + c²‖x‖²‖y‖²)) so
    no ``(batch, out, in)`` tensor is formed; ``tests/test_zoo_poincare.py`` checks it against geoopt's
    ``dist2plane``. Computed in float64, returned in z's dtype; z outside the ball is first projected in.

    Initialisation: w as the authors' code (Kaiming normal, a = √5), but b = 0, so every gyroplane
    starts through the origin and the layer starts as f_k(z) ≈ 4⟨w_k, z⟩ near it. The authors' b ~
    U(±4/√in) (:meth:`reset_offsets_as_the_authors`) trained to worse models here: on the digits
    (latent 8, 15 epochs, 3 seeds) the test IS log-likelihood was ~3 nats lower
    (``benchmarks/poincare_decoder.py``, docs/models.md).
    """

    def __init__(self, in_features: int, out_features: int, curvature: float = 1.0):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.curvature = check_curvature(curvature)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.offset = nn.Parameter(torch.empty(self.out_features, 1))
        nn.init.kaiming_normal_(self.weight, a=math.sqrt(5))  # as the authors' code
        nn.init.zeros_(self.offset)  # they draw U(±4/√in): see the class docstring

    def reset_offsets_as_the_authors(self, generator: torch.Generator | None = None) -> None:
        """Redraw the offsets b ~ U(±4/√in_features), the initialisation of the authors' code (pvae)."""
        bound = 4 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.offset.copy_((torch.rand(self.offset.shape, generator=generator) * 2 - 1) * bound)

    def planes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(p, a), each ``(out, in)`` float64: the gyroplanes' points and normal vectors."""
        ball = poincare_ball(self.curvature)
        w = self.weight.double()
        p = ball.expmap0(w * self.offset.double())
        return p, ball.transp0(p, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.curvature
        x = poincare_ball(c).projx(z.double())
        p, a = self.planes()
        xx = x.square().sum(-1, keepdim=True)  # (..., 1)
        pp, aa = p.square().sum(-1), a.square().sum(-1)  # (out,)
        xp, xa, pa = x @ p.T, x @ a.T, (p * a).sum(-1)  # (..., out), (..., out), (out,)
        # y = −p ⊕ x = (alpha (−p) + beta x) / denom, alpha = 1 − 2c⟨p,x⟩ + c‖x‖², beta = 1 − c‖p‖²
        alpha, beta = 1 - 2 * c * xp + c * xx, 1 - c * pp
        denom = 1 - 2 * c * xp + c * c * pp * xx
        ya = (beta * xa - alpha * pa) / denom
        yy = (alpha.square() * pp - 2 * alpha * beta * xp + beta.square() * xx) / denom.square()
        a_norm = aa.sqrt().clamp_min(1e-15)
        arg = 2 * math.sqrt(c) * ya / ((1 - c * yy).clamp_min(1e-15) * a_norm)
        distance = torch.asinh(arg) / math.sqrt(c)
        lambda_p = 2 / (1 - c * pp)
        return (distance * lambda_p * a_norm).to(z.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, curvature={self.curvature}"


class LogMap0(nn.Module):
    """z ``(..., d)`` in the ball -> λ_0 log_0(z) ``(..., d)``, the normal coordinates at the origin
    (computed in float64, returned in z's dtype; z outside the ball is first projected in)."""

    def __init__(self, curvature: float = 1.0):
        super().__init__()
        self.curvature = check_curvature(curvature)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        ball = poincare_ball(self.curvature)
        return (2 * ball.logmap0(ball.projx(z.double()))).to(z.dtype)


class BallDecoder(nn.Module):
    """The decoder of the Poincaré VAE: z ``(batch, d)`` in the ball -> the first layer (a
    :class:`GyroplaneLayer` and the activation, or :class:`LogMap0`) -> ``body`` -> the likelihood's
    parameters ``(batch, *data_shape)``."""

    def __init__(self, first: nn.Module, body: nn.Module):
        super().__init__()
        self.first, self.body = first, body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.first(z))


def _num_gyroplanes(config, num_gyroplanes: int | None) -> int:
    """The gyroplane count: the option, else the config's decoder width (``hidden``'s last entry, 256)."""
    if num_gyroplanes is not None:
        return num_gyroplanes
    return int(config.hidden[-1]) if config is not None and config.hidden else 256


def _check_options(curvature, prior_scale, decoder_input, num_gyroplanes) -> None:
    check_curvature(curvature)
    if isinstance(prior_scale, bool) or not isinstance(prior_scale, (int, float)) or not 0 < prior_scale < math.inf:
        raise ValueError(f"prior_scale must be a finite number > 0, got {prior_scale!r}")
    if decoder_input not in DECODER_INPUTS:
        raise ValueError(f"decoder_input must be one of {', '.join(DECODER_INPUTS)}, got {decoder_input!r}")
    if num_gyroplanes is not None and (
        isinstance(num_gyroplanes, bool) or not isinstance(num_gyroplanes, int) or num_gyroplanes < 1
    ):
        raise ValueError(f"num_gyroplanes must be an integer >= 1 or None, got {num_gyroplanes!r}")


class PoincareVAE(VAE):
    """P-VAE (Mathieu et al. 2019): q(z|x) = N^W(exp_0^c(loc(x)), diag scale(x)²) and p(z) = N^W(0, σ_0² I)
    on the Poincaré ball B_c^{latent_dim}; decoder led by a gyroplane layer or the log map at the origin.

    Args: as :class:`~vaekit.models.VAE`, plus
        curvature: c > 0, the ball has curvature −c and radius 1/√c (the paper: 0.1 to 1.4 on MNIST).
        prior_scale: σ_0 > 0 of the prior (geodesic units; the paper's default 1).
        decoder_input: "gyroplane" (the paper's gyroplane layer first, sec. 3.3) or "logmap0" (the
            body sees λ_0 log_0(z)).
        num_gyroplanes: units of the gyroplane layer (None: the config's last ``hidden`` width, else 256).

    Shapes: ``encode(x)`` -> a :class:`WrappedNormal`, batch ``(batch,)``, event ``(latent_dim,)``;
    ``prior()`` -> a :class:`WrappedNormal` with event ``(latent_dim,)``; ``transform(x)`` -> μ on the
    ball ``(batch, latent_dim)``. Log densities in nats w.r.t. the ball's Riemannian volume.

    Raises:
        ValueError: a curvature or prior_scale that is not a finite number > 0, an unknown
            decoder_input, or num_gyroplanes < 1.
        ImportError: geoopt is missing.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        curvature: float = 1.0,
        prior_scale: float = 1.0,
        decoder_input: str = "gyroplane",
        num_gyroplanes: int | None = None,
    ):
        _check_options(curvature, prior_scale, decoder_input, num_gyroplanes)
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.curvature, self.decoder_input = float(curvature), decoder_input
        self.prior_sigma = float(prior_scale)  # (``prior_scale`` is the base class's buffer of ones)
        first = getattr(decoder, "first", None)
        self.num_gyroplanes = first.out_features if isinstance(first, GyroplaneLayer) else num_gyroplanes

    @classmethod
    def build_nets(
        cls,
        config,
        data_shape,
        *,
        trust_code: bool | None = None,
        curvature: float = 1.0,
        prior_scale: float = 1.0,
        decoder_input: str = "gyroplane",
        num_gyroplanes: int | None = None,
        **kwargs,
    ) -> tuple[nn.Module, nn.Module]:
        """(the config's encoder, :class:`BallDecoder`): the gyroplane layer (or log map) before the config's
        decoder body, built for a code of ``num_gyroplanes`` (or ``latent_dim``) features."""
        from ..nets import build_nets

        _check_options(curvature, prior_scale, decoder_input, num_gyroplanes)
        first: nn.Module
        if decoder_input == "gyroplane":
            width = _num_gyroplanes(config, num_gyroplanes)
            first = nn.Sequential(GyroplaneLayer(config.latent_dim, width, curvature), ACTIVATIONS[config.activation]())
        else:
            width, first = config.latent_dim, LogMap0(curvature)
        encoder, _ = build_nets(config, data_shape, stochastic=True, trust_code=trust_code)
        _, body = build_nets(dataclasses.replace(config, latent_dim=width), data_shape, trust_code=trust_code)
        return encoder, BallDecoder(first, body)

    def extra_config(self) -> dict:
        """The options, with the gyroplane count resolved: rebuild the same decoder on load."""
        return {
            "curvature": self.curvature,
            "prior_scale": self.prior_sigma,
            "decoder_input": self.decoder_input,
            "num_gyroplanes": self.num_gyroplanes,
        }

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = N^W(exp_0^c(loc), diag scale²): batch ``(batch,)``, event ``(latent_dim,)``, draws in the ball."""
        base = self._posterior(self._encoder_output(x)).base_dist
        loc = poincare_ball(self.curvature).expmap0(base.loc.double()).to(base.loc.dtype)
        return WrappedNormal(loc, base.scale, self.curvature)

    def prior(self) -> Distribution:
        """p(z) = N^W(0, σ_0² I), event ``(latent_dim,)`` (σ_0 = ``prior_scale``)."""
        return WrappedNormal(self.prior_loc, self.prior_sigma * self.prior_scale, self.curvature)
