"""The hyperspherical VAE (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical variational
auto-encoders", UAI): a von Mises–Fisher posterior on the unit sphere S^{m−1} ⊂ R^m (m = latent_dim) and
the uniform prior on it.

* vMF(μ, κ): density C_m(κ) exp(κ μᵀz) w.r.t. the sphere's surface measure, C_m(κ) =
  κ^{m/2−1} / ((2π)^{m/2} I_{m/2−1}(κ)) (sec. 3.1, eq. 3).
* Sampling: Wood's (1994) rejection sampler for the component w = μᵀz along μ (sec. 3.2, Algorithm 1
  and App. A), a uniform direction v on S^{m−2} for the rest, and the Householder reflection taking
  e_1 to μ (Algorithm 2). Reparameterised as in sec. 3.3: w = h(ε, κ) with the accepted Beta draw ε
  held fixed, so gradients reach κ through h and μ through the reflection; the paper's correction
  term g_cor (the acceptance probability's dependence on κ) is left out, as the authors' own code
  does (they report it negligible, sec. 3.3 / App. D).
* KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ I_{m/2}(κ)/I_{m/2−1}(κ) + log C_m(κ) + log A_m, A_m = 2π^{m/2}/Γ(m/2)
  the sphere's area (sec. 3.4, eq. 7), registered with ``torch.distributions.kl`` so the ELBO uses it.

log I_ν(κ) comes from ``scipy.special.ive`` with its derivative I_{ν+1}/I_ν + ν/κ (a small autograd
function); the encoder's (loc, scale) give μ = loc/‖loc‖ and κ = 1 + Σ_d scale_d (κ >= 1, as the
paper adds 1 to keep the posterior away from the uniform limit).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch.distributions import Beta, Distribution, constraints, register_kl

from .vae import VAE


class _LogBessel(torch.autograd.Function):
    """log I_ν(κ) elementwise, differentiable in κ: d/dκ log I_ν(κ) = I_{ν+1}(κ)/I_ν(κ) + ν/κ."""

    @staticmethod
    def forward(ctx, kappa: torch.Tensor, order: float):
        from scipy.special import ive

        k = kappa.detach().cpu().double().numpy()
        ctx.save_for_backward(kappa)
        ctx.order = order
        return torch.as_tensor(np.log(ive(order, k)) + k, dtype=kappa.dtype, device=kappa.device)

    @staticmethod
    def backward(ctx, grad):
        (kappa,) = ctx.saved_tensors
        return grad * bessel_ratio(kappa, ctx.order) + grad * ctx.order / kappa, None


def log_bessel(kappa: torch.Tensor, order: float) -> torch.Tensor:
    """log I_ν(κ) (ν = ``order``) for κ > 0, differentiable in κ."""
    return _LogBessel.apply(kappa, float(order))


def bessel_ratio(kappa: torch.Tensor, order: float) -> torch.Tensor:
    """I_{ν+1}(κ) / I_ν(κ), elementwise (scipy's exponentially scaled ``ive``; no gradient)."""
    from scipy.special import ive

    k = kappa.detach().cpu().double().numpy()
    return torch.as_tensor(ive(order + 1, k) / ive(order, k), dtype=kappa.dtype, device=kappa.device)


def sphere_log_area(m: int) -> float:
    """log A_m, A_m = 2 π^{m/2} / Γ(m/2): the surface area of S^{m−1} ⊂ R^m."""
    return math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


class HypersphericalUniform(Distribution):
    """The uniform distribution on S^{m−1} ⊂ R^m: log density −log A_m; draws are normalised Gaussians.
    Batch ``()``, event ``(m,)``."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, dim: int, like: torch.Tensor):
        self.dim, self._like = dim, like
        super().__init__(torch.Size(), torch.Size([dim]), validate_args=False)

    def sample(self, sample_shape=()) -> torch.Tensor:
        g = torch.randn(torch.Size(sample_shape) + (self.dim,), dtype=self._like.dtype, device=self._like.device)
        return g / g.norm(dim=-1, keepdim=True)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full(z.shape[:-1], -sphere_log_area(self.dim), dtype=z.dtype, device=z.device)

    @property
    def mean(self) -> torch.Tensor:
        """E[z] = 0 for the uniform distribution on the sphere S^{d−1}, ``(d,)``."""
        return self._like.new_zeros(self.dim)


class VonMisesFisher(Distribution):
    """vMF(loc, concentration) on S^{m−1}: loc ``(*batch, m)`` unit vectors, concentration κ ``(*batch,)`` > 0.

    ``rsample`` (Davidson et al. 2018, Algorithms 1-2), ``log_prob(z)`` ``(*sample, *batch)`` nats
    w.r.t. the surface measure, ``mean`` = (I_{m/2}(κ)/I_{m/2−1}(κ)) μ."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, concentration: torch.Tensor):
        self.loc, self.concentration = loc, concentration
        self.dim = loc.shape[-1]
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def log_normaliser(self) -> torch.Tensor:
        """log C_m(κ) ``(*batch,)`` (eq. 3)."""
        m, k = self.dim, self.concentration
        return (m / 2 - 1) * k.log() - (m / 2) * math.log(2 * math.pi) - log_bessel(k, m / 2 - 1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_normaliser() + self.concentration * (self.loc * z).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[z] = A_d(κ) μ, A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ), ``(*batch, d)``: inside the ball, shorter than μ."""
        return bessel_ratio(self.concentration, self.dim / 2 - 1).unsqueeze(-1) * self.loc

    def _sample_w(self, shape: torch.Size) -> torch.Tensor:
        """w = μᵀz ``shape + batch``: Wood's rejection sampler, reparameterised in κ (sec. 3.2-3.3)."""
        m, kappa = self.dim, self.concentration.expand(shape + self.batch_shape)
        root = (4 * kappa.square() + (m - 1) ** 2).sqrt()
        b = (m - 1) / (2 * kappa + root)  # = (−2κ + root)/(m − 1), stable for large κ
        a = ((m - 1) + 2 * kappa + root) / 4
        d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
        beta = Beta(torch.tensor((m - 1) / 2, dtype=kappa.dtype), torch.tensor((m - 1) / 2, dtype=kappa.dtype))
        eps = torch.zeros_like(kappa)
        todo = torch.ones_like(kappa, dtype=torch.bool)
        with torch.no_grad():
            for _ in range(1000):
                e = beta.sample(kappa.shape).to(kappa.device)
                t = 2 * a * b / (1 - (1 - b) * e)
                u = torch.rand_like(kappa)
                accept = todo & ((m - 1) * t.log() - t + d >= u.log())
                eps = torch.where(accept, e, eps)
                todo = todo & ~accept
                if not todo.any():
                    break
        return (1 - (1 + b) * eps) / (1 - (1 - b) * eps)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        w = self._sample_w(shape).unsqueeze(-1)
        v = torch.randn(shape + self.batch_shape + (self.dim - 1,), dtype=self.loc.dtype, device=self.loc.device)
        v = v / v.norm(dim=-1, keepdim=True)
        z = torch.cat([w, (1 - w.square()).clamp_min(0).sqrt() * v], -1)  # around e_1
        e1 = torch.zeros_like(self.loc)
        e1[..., 0] = 1
        u = e1 - self.loc
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return z - 2 * (z * u).sum(-1, keepdim=True) * u  # Householder: e_1 -> μ

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(q: VonMisesFisher, p: HypersphericalUniform) -> torch.Tensor:
    """KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ I_{m/2}(κ)/I_{m/2−1}(κ) + log C_m(κ) + log A_m (Davidson et al. 2018, eq. 7)."""
    m, k = q.dim, q.concentration
    ratio = torch.exp(log_bessel(k, m / 2) - log_bessel(k, m / 2 - 1))
    return k * ratio + q.log_normaliser() + sphere_log_area(m)


class HypersphericalVAE(VAE):
    """S-VAE (Davidson et al. 2018): q(z|x) = vMF(μ(x), κ(x)) on S^{latent_dim − 1}, p(z) uniform on it.

    Args: as :class:`~vaekit.models.VAE` (the encoder's ``(loc, scale)``: μ = loc/‖loc‖, κ = 1 + Σ scale).

    Raises:
        ValueError: latent_dim < 2 (S^0 is two points).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.latent_dim < 2:
            raise ValueError(f"a hyperspherical VAE needs latent_dim >= 2, got {self.latent_dim}")

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = vMF: batch ``(batch,)``, event ``(latent_dim,)``, draws on the unit sphere."""
        base = self._posterior(self._encoder_output(x)).base_dist
        loc = base.loc / base.loc.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return VonMisesFisher(loc, 1 + base.scale.sum(-1))

    def prior(self) -> Distribution:
        """U(S^{latent_dim − 1}), event ``(latent_dim,)``."""
        return HypersphericalUniform(self.latent_dim, self.prior_loc)
