"""VAEs whose posterior is a normalizing flow: planar and radial flows (Rezende & Mohamed 2015,
"Variational inference with normalizing flows", ICML, sec. 4.1, eqs. 10-14, and App. A.1-A.2 for the
invertibility conditions) and the inverse autoregressive flow (Kingma et al. 2016, "Improved
variational inference with inverse autoregressive flow", NeurIPS, sec. 4, eqs. 10-11; its
transforms are zuko's ``MaskedAutoregressiveTransform``).

q(z|x) = q_0 pushed through f_K ∘ … ∘ f_1, q_0 = N(μ(x), diag σ(x)²), so (Rezende & Mohamed, eq. 13)
log q(z_K|x) = log q_0(z_0) − Σ_k log |det ∂f_k/∂z_{k−1}|. The flows are amortised: their
parameters are functions of x through the context c(x) = [μ(x), log σ(x)] (the papers feed the
encoder's hidden layer; c(x) keeps any encoder that returns (loc, scale) usable). The KL to the
prior has no closed form: it is the Monte Carlo log q − log p at the draws (``kl_or_estimate``).
``log_prob`` of the posterior's own last draws is the value stored at the draw (as torch's
transform caches); for any other z the flow is inverted (radial: closed form; planar: bisection on
the one-dimensional monotone equation along w; IAF: zuko's sequential inverse), so the IS
log-likelihood's general path and any caller get the density at any point.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from ..distributions import Likelihood
from .vae import VAE


def _near_identity(layer: nn.Linear, std: float = 0.01) -> nn.Linear:
    """Small initial flow parameters: each step starts close to the identity, so the initial posterior
    is the encoder's Gaussian (and the gradients still reach every parameter)."""
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        layer.bias.normal_(0.0, std)
    return layer


class Planar(nn.Module):
    """f(z) = z + û tanh(wᵀz + b) (Rezende & Mohamed 2015, eq. 10), with û = u + (m(wᵀu) − wᵀu) w/‖w‖²,
    m(a) = −1 + softplus(a), so that wᵀû ≥ −1 and f is invertible (App. A.1). (u, w, b) = Linear(c)."""

    def __init__(self, dim: int, context: int):
        super().__init__()
        self.dim = dim
        self.hyper = _near_identity(nn.Linear(context, 2 * dim + 1))
        with torch.no_grad():  # w of norm ~1 and u = log(e − 1) w/‖w‖², where û = 0: f starts at the identity
            w = self.hyper.bias[dim : 2 * dim].normal_(0.0, 1.0 / math.sqrt(dim))
            self.hyper.bias[:dim] = math.log(math.e - 1) * w / w.square().sum()

    def _params(self, c):
        u, w, b = self.hyper(c).split([self.dim, self.dim, 1], -1)
        wu = (w * u).sum(-1, keepdim=True)
        u = u + (F.softplus(wu) - 1 - wu) * w / (w.square().sum(-1, keepdim=True) + 1e-8)
        return u, w, b

    def forward(self, z, c):
        """z ``(*, batch, dim)``, c ``(batch, context)`` -> (f(z), log|det ∂f/∂z| ``(*, batch)``) (eq. 11-12)."""
        u, w, b = self._params(c)
        h = torch.tanh((z * w).sum(-1, keepdim=True) + b)
        ladj = torch.log((1 + (1 - h.square()) * (w * u).sum(-1, keepdim=True)).abs() + 1e-12).squeeze(-1)
        return z + u * h, ladj

    def inverse(self, y, c, iterations: int = 80):
        """z with f(z) = y: α = wᵀz solves α + wᵀû tanh(α + b) = wᵀy (monotone, bracketed by ±|wᵀû|), then z = y − û tanh(α + b)."""
        u, w, b = self._params(c)
        s, wu = (w * y).sum(-1, keepdim=True), (w * u).sum(-1, keepdim=True).expand_as(y[..., :1])
        low, high = s - wu.abs() - 1, s + wu.abs() + 1
        for _ in range(iterations):
            mid = (low + high) / 2
            above = mid + wu * torch.tanh(mid + b) > s
            high, low = torch.where(above, mid, high), torch.where(above, low, mid)
        return y - u * torch.tanh((low + high) / 2 + b)


class Radial(nn.Module):
    """f(z) = z + β h(α, r)(z − z₀), h = 1/(α + r), r = ‖z − z₀‖ (Rezende & Mohamed 2015, eq. 14),
    α = softplus(α') > 0, β = −α + softplus(β') ≥ −α (invertible, App. A.2). (z₀, α', β') = Linear(c)."""

    def __init__(self, dim: int, context: int):
        super().__init__()
        self.dim = dim
        self.hyper = _near_identity(nn.Linear(context, dim + 2))

    def _params(self, c):
        z0, a, b = self.hyper(c).split([self.dim, 1, 1], -1)
        alpha = F.softplus(a) + 1e-4
        return z0, alpha, -alpha + F.softplus(b)

    def forward(self, z, c):
        z0, alpha, beta = self._params(c)
        r = (z - z0).norm(dim=-1, keepdim=True)
        h = 1 / (alpha + r)
        bh = beta * h
        ladj = (self.dim - 1) * torch.log1p(bh) + torch.log1p(bh - beta * h.square() * r)
        return z + bh * (z - z0), ladj.squeeze(-1)

    def inverse(self, y, c):
        """Closed form: ρ = ‖y − z₀‖ = r(1 + β/(α + r)) gives r² + (α + β − ρ) r − αρ = 0."""
        z0, alpha, beta = self._params(c)
        rho = (y - z0).norm(dim=-1, keepdim=True)
        q = alpha + beta - rho
        r = (-q + (q.square() + 4 * alpha * rho).sqrt()) / 2
        return z0 + (y - z0) / (1 + beta / (alpha + r))


class IAF(nn.Module):
    """One IAF step (Kingma et al. 2016, eqs. 10-11): z_t = μ_t(z_{<}, c) + σ_t(z_{<}, c) ⊙ z, autoregressive
    in z through a MADE, conditioned on c: zuko's ``MaskedAutoregressiveTransform`` (its forward is the
    one-pass direction, i.e. sampling; its inverse is sequential). ``reverse`` flips the variable order
    (the paper reverses it between steps)."""

    def __init__(self, dim: int, context: int, hidden: int = 64, reverse: bool = False):
        super().__init__()
        import zuko  # lazily: zuko is an optional dependency of these models only

        order = torch.arange(dim - 1, -1, -1) if reverse else torch.arange(dim)
        self.made = zuko.flows.MaskedAutoregressiveTransform(
            dim, context, order=order, hidden_features=(hidden, hidden)
        )

    def _transform(self, z, c):
        return self.made(c.expand(*z.shape[:-1], c.shape[-1]))

    def forward(self, z, c):
        return self._transform(z, c).call_and_ladj(z)

    def inverse(self, y, c):
        """z with step(z, c) = y, ``(*, d)`` (the step's inverse under context c)."""
        return self._transform(y, c).inv(y)


class FlowPosterior(Distribution):
    """q(z|x): N(loc, diag scale²) pushed through ``transforms`` with context c. Batch ``(batch,)``,
    event ``(latent_dim,)``; ``rsample`` keeps the draws' log-density (so ``log_prob`` of those draws is
    exact and differentiable); other points are inverted. ``mean``: the flow applied to ``loc`` (the
    image of the base mean, not E_q[z], which has no closed form)."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale, context, transforms):
        self.loc, self.scale, self.context, self.transforms = loc, scale, context, transforms
        self._last = None
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def _push(self, z0):
        log_q = (-0.5 * ((z0 - self.loc) / self.scale).square() - self.scale.log() - 0.5 * math.log(2 * math.pi)).sum(
            -1
        )
        z = z0
        for t in self.transforms:
            z, ladj = t(z, self.context)
            log_q = log_q - ladj
        return z, log_q

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        z, log_q = self._push(self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device))
        self._last = (z, log_q)
        return z

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) ``(*sample, batch)`` nats for z ``(*sample, batch, latent_dim)`` (eq. 13)."""
        if self._last is not None and z is self._last[0]:
            return self._last[1]
        z0 = z
        for t in reversed(self.transforms):
            z0 = t.inverse(z0, self.context)
        return self._push(z0)[1]

    @property
    def mean(self) -> torch.Tensor:
        """The base mean pushed through the flow, ``(batch, d)``: a point code, not E[z] (no closed form)."""
        return self._push(self.loc)[0]


#: flow name -> step class
FLOWS = {"planar": Planar, "radial": Radial, "iaf": IAF}


class FlowVAE(VAE):
    """VAE with a normalizing-flow posterior of ``num_flows`` steps of the kind ``flow`` (planar, radial,
    iaf); the prior stays N(0, I). See the module docstring for the papers and the density.

    Args: as :class:`~vaekit.models.VAE`, plus
        num_flows: K, the number of flow steps (Rezende & Mohamed use up to 80 planar steps; Kingma et
            al. 2016 use 2 IAF steps per stochastic layer on MNIST).
        iaf_hidden: width of each IAF step's MADE (two hidden layers).

    Raises:
        ValueError: num_flows < 1 or iaf_hidden < 1. ImportError: ``flow="iaf"`` without zuko.
    """

    flow = "planar"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        num_flows: int = 4,
        iaf_hidden: int = 64,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        for name, value in (("num_flows", num_flows), ("iaf_hidden", iaf_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.num_flows, self.iaf_hidden = num_flows, iaf_hidden
        d = self.latent_dim
        if self.flow == "iaf":
            steps: list[nn.Module] = [IAF(d, 2 * d, iaf_hidden, reverse=k % 2 == 1) for k in range(num_flows)]
        else:
            steps = [FLOWS[self.flow](d, 2 * d) for _ in range(num_flows)]
        self.flows = nn.ModuleList(steps)

    def extra_config(self) -> dict:
        """``num_flows`` and ``iaf_hidden``: rebuild the flow on load."""
        return {"num_flows": self.num_flows, "iaf_hidden": self.iaf_hidden}

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x): a :class:`FlowPosterior`, batch ``(batch,)``, event ``(latent_dim,)``."""
        base = self._posterior(self._encoder_output(x)).base_dist
        context = torch.cat([base.loc, base.scale.log()], -1)
        return FlowPosterior(base.loc, base.scale, context, list(self.flows))


class PlanarFlowVAE(FlowVAE):
    """:class:`FlowVAE` with planar steps (Rezende & Mohamed 2015, eq. 10)."""

    flow = "planar"


class RadialFlowVAE(FlowVAE):
    """:class:`FlowVAE` with radial steps (Rezende & Mohamed 2015, eq. 14)."""

    flow = "radial"


class IAFVAE(FlowVAE):
    """:class:`FlowVAE` with inverse autoregressive steps (Kingma et al. 2016, eqs. 10-11; zuko's MADE)."""

    flow = "iaf"
