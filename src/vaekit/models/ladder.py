"""The Ladder VAE with two stochastic layers (Sønderby et al. 2016, "Ladder variational autoencoders",
NeurIPS, sec. 2.2, eqs. 17-21, fig. 2b).

Generative model: p(z2) = N(0, I), p(z1|z2) = N(μ_p(z2), diag σ_p(z2)²), p(x|z1) the likelihood head.
Inference: a deterministic bottom-up pass d1 = f1(x), d2 = f2(d1) gives the estimates (μ̂_i, σ̂_i) =
heads(d_i); the posterior is then computed top-down, sharing the generative path (eq. 17-19):
q(z2|x) = N(μ̂2, σ̂2²) and q(z1|z2, x) = N(μ_q, σ_q²) with the precision-weighted merge
σ_q² = 1 / (σ̂1⁻² + σ_p(z2)⁻²), μ_q = σ_q² (μ̂1 σ̂1⁻² + μ_p(z2) σ_p(z2)⁻²).

The code z = [z1, z2] has ``latent_dim`` entries (z2: the last ``top_dim``). Neither KL has a closed
form against this prior (q(z1|z2, x) and p(z1|z2) both depend on the draw of z2), so the ELBO's KL
is the Monte Carlo estimate log q(z|x) − log p(z) at the reconstruction's draws, and the IS
log-likelihood goes through the general path (``q.sample``, ``q.log_prob``, ``prior().log_prob``).
The paper's KL warm-up is the training option ``--warmup-epochs``. Its batch normalisation (sec. 3:
"batch normalization and deterministic warm-up ... are crucial") is the option ``batch_norm``: BN
after every hidden Linear layer of the MLPs (bottom-up, top-down and the decoder), before the
activation; the leading sample and batch dimensions are one batch, and evaluation uses the running
statistics. The option ``kl="analytic"`` replaces the ELBO's Monte Carlo KL by the per-layer closed
forms at the draw of z2, KL(q(z2|x) ‖ N(0, I)) + KL(q(z1|z2, x) ‖ p(z1|z2)): the same expectation over
z2 (unbiased), without the noise of the z1 draw.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from ..distributions import Likelihood
from ..nets import ACTIVATIONS, FeatureBatchNorm, GaussianHead, build_nets, mlp
from .vae import VAE


def _normal_log_prob(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Σ_d log N(z_d; loc_d, scale_d²), summed over the last dimension."""
    return (-0.5 * ((z - loc) / scale).square() - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def _normal_kl(loc_q, scale_q, loc_p, scale_p) -> torch.Tensor:
    """KL(N(loc_q, scale_q²) ‖ N(loc_p, scale_p²)) summed over the last dimension, in nats."""
    ratio = (scale_q / scale_p).square()
    return 0.5 * (ratio + ((loc_q - loc_p) / scale_p).square() - 1 - ratio.log()).sum(-1)


def add_batch_norm(module: nn.Module) -> int:
    """Insert a :class:`FeatureBatchNorm` after every ``nn.Linear`` that an activation follows, in
    every ``nn.Sequential`` inside ``module`` (in place): BN in the deterministic hidden layers, as
    Sønderby et al. 2016, sec. 3. Returns how many were inserted (0 for a net without such layers,
    e.g. a conv net's convolutions, which keep none)."""
    activations = tuple(ACTIVATIONS.values())
    count = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers, new = list(seq), []
        for i, layer in enumerate(layers):
            new.append(layer)
            if isinstance(layer, nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], activations):
                new.append(FeatureBatchNorm(layer.out_features))
                count += 1
        for name in list(seq._modules):
            del seq._modules[name]
        for i, layer in enumerate(new):
            seq.add_module(str(i), layer)
    return count


def merge(loc_hat, scale_hat, loc_p, scale_p) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision-weighted merge of the bottom-up estimate and the top-down prior (Sønderby et al.
    2016, eqs. 18-19): the product of the two Gaussians, normalised. Returns ``(loc, scale)``."""
    precision_hat, precision_p = scale_hat.pow(-2), scale_p.pow(-2)
    variance = 1.0 / (precision_hat + precision_p)
    return (loc_hat * precision_hat + loc_p * precision_p) * variance, variance.sqrt()


class LadderEncoder(nn.Module):
    """Bottom-up pass: features d1 = act(f1(x)) of width ``width``, d2 = f2(d1); Gaussian heads.

    ``forward(x) -> (loc1, scale1, loc2, scale2)``: the estimates of z1 ``(batch, d1)`` and of z2
    ``(batch, d2)`` (Sønderby et al. 2016, eqs. 20-21)."""

    def __init__(
        self,
        features: nn.Module,
        width: int,
        bottom_dim: int,
        top_dim: int,
        hidden_top: int,
        activation: str = "relu",
        batch_norm: bool = False,
    ):
        super().__init__()
        self.features, self.activation = features, ACTIVATIONS[activation]()
        self.norm = FeatureBatchNorm(width) if batch_norm else nn.Identity()
        self.head1 = GaussianHead(width, bottom_dim)
        self.up = mlp([width, hidden_top, hidden_top], activation, final_activation=True, batch_norm=batch_norm)
        self.head2 = GaussianHead(hidden_top, top_dim)
        if batch_norm:
            add_batch_norm(self.features)

    def forward(self, x: torch.Tensor):
        d1 = self.activation(self.norm(self.features(x)))
        loc1, scale1 = self.head1(d1)
        loc2, scale2 = self.head2(self.up(d1))
        return loc1, scale1, loc2, scale2


class TopDown(nn.Module):
    """p(z1|z2): an MLP from z2 ``(*, top_dim)`` to ``(loc, scale)`` of z1 ``(*, bottom_dim)``."""

    def __init__(
        self, top_dim: int, bottom_dim: int, hidden_top: int, activation: str = "relu", batch_norm: bool = False
    ):
        super().__init__()
        self.body = mlp([top_dim, hidden_top, hidden_top], activation, final_activation=True, batch_norm=batch_norm)
        self.head = GaussianHead(hidden_top, bottom_dim)

    def forward(self, z2: torch.Tensor):
        return self.head(self.body(z2))


class FromBottom(nn.Module):
    """The decoder p(x|z1) fed the whole code z = [z1, z2] ``(batch, latent_dim)``: reads the first
    ``bottom_dim`` entries (so every path that calls ``model.decoder`` directly sees the same model)."""

    def __init__(self, decoder: nn.Module, bottom_dim: int):
        super().__init__()
        self.decoder, self.bottom_dim = decoder, bottom_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z[..., : self.bottom_dim])


class LadderPrior(Distribution):
    """p(z) = p(z2) p(z1|z2) over z = [z1, z2]: batch ``()``, event ``(latent_dim,)``.

    ``log_prob(z)`` for z ``(*, latent_dim)`` -> ``(*)`` nats; ``rsample`` draws z2 ~ N(0, I) then
    z1 ~ p(z1|z2)."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, top_down: TopDown, bottom_dim: int, top_dim: int, like: torch.Tensor):
        self.top_down, self.bottom_dim, self.top_dim, self._like = top_down, bottom_dim, top_dim, like
        super().__init__(torch.Size(), torch.Size([bottom_dim + top_dim]), validate_args=False)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        z2 = torch.randn(torch.Size(sample_shape) + (self.top_dim,), dtype=self._like.dtype, device=self._like.device)
        loc, scale = self.top_down(z2)
        return torch.cat([loc + scale * torch.randn_like(loc), z2], -1)

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = z.split([self.bottom_dim, self.top_dim], -1)
        loc, scale = self.top_down(z2)
        return _normal_log_prob(z2, torch.zeros_like(z2), torch.ones_like(z2)) + _normal_log_prob(z1, loc, scale)

    @property
    def mean(self) -> torch.Tensor:
        """E[z] = [E_{z2} μ_p(z2), 0]: the z1 part is not available in closed form; estimated from 1000 draws."""
        with torch.no_grad():
            return self.rsample((1000,)).mean(0)


class LadderPosterior(Distribution):
    """q(z|x) = q(z2|x) q(z1|z2, x) (Sønderby et al. 2016, eq. 17): batch ``(batch,)``, event ``(latent_dim,)``.

    ``rsample`` draws z2 = μ̂2 + σ̂2 ε2, then z1 from the precision-weighted merge of the bottom-up
    estimate (μ̂1, σ̂1) with p(z1|z2) at that draw; ``log_prob(z)``, z ``(*sample, batch, latent_dim)``,
    is log N(z2; μ̂2, σ̂2²) + log N(z1; merge at z2) in nats. ``mean`` is [μ_q at z2 = μ̂2, μ̂2]."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc1, scale1, loc2, scale2, top_down: TopDown, analytic_kl: bool = False):
        self.loc1, self.scale1, self.loc2, self.scale2, self.top_down = loc1, scale1, loc2, scale2, top_down
        self.analytic_kl = analytic_kl
        self.bottom_dim, self.top_dim = loc1.shape[-1], loc2.shape[-1]
        super().__init__(loc1.shape[:-1], torch.Size([self.bottom_dim + self.top_dim]), validate_args=False)

    def _bottom(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return merge(self.loc1, self.scale1, *self.top_down(z2))

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc2.shape
        z2 = self.loc2 + self.scale2 * torch.randn(shape, dtype=self.loc2.dtype, device=self.loc2.device)
        loc, scale = self._bottom(z2)
        return torch.cat([loc + scale * torch.randn_like(loc), z2], -1)

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = z.split([self.bottom_dim, self.top_dim], -1)
        loc, scale = self._bottom(z2)
        return _normal_log_prob(z2, self.loc2, self.scale2) + _normal_log_prob(z1, loc, scale)

    @property
    def mean(self) -> torch.Tensor:
        """A point code ``(batch, d1 + d2)``: (z1, z2) = (the bottom layer's mean given z2 = loc2, loc2);
        not E[z1], which integrates over z2."""
        return torch.cat([self._bottom(self.loc2)[0], self.loc2], -1)

    def kl_estimate(self, prior: Distribution, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) ‖ p(z)) estimated at the draws ``z`` ``(*sample, batch, latent_dim)``: ``(batch,)`` nats.

        Monte Carlo log q(z|x) − log p(z) averaged over the draws; with ``analytic_kl`` (and the
        model's own :class:`LadderPrior`) the per-layer closed forms at each draw of z2,
        KL(q(z2|x) ‖ N(0, I)) + KL(q(z1|z2, x) ‖ p(z1|z2)), which has the same expectation."""
        if not (self.analytic_kl and isinstance(prior, LadderPrior)):
            gap = self.log_prob(z) - prior.log_prob(z)
        else:
            z2 = z[..., self.bottom_dim :]
            loc_p, scale_p = self.top_down(z2)
            loc_q, scale_q = merge(self.loc1, self.scale1, loc_p, scale_p)
            top = _normal_kl(self.loc2, self.scale2, torch.zeros_like(self.loc2), torch.ones_like(self.scale2))
            gap = top + _normal_kl(loc_q, scale_q, loc_p, scale_p)
        return gap if gap.dim() == len(self.batch_shape) else gap.reshape(-1, *self.batch_shape).mean(0)


class LadderVAE(VAE):
    """Ladder VAE with two stochastic layers (Sønderby et al. 2016, sec. 2.2): see the module docstring.

    The bottom-up features f1 are the config's encoder network (MLP, conv, or a custom one) with a
    deterministic output of width ``hidden[-1]`` (256 without hidden layers); the decoder is the
    config's, from z1 (``latent_dim − top_dim`` entries) to x, wrapped in :class:`FromBottom`, so
    :meth:`decode` takes the whole code z = [z1, z2] (``(*, latent_dim)``) and reads z1.

    Args: as :class:`~vaekit.models.VAE`, plus
        top_dim: size of z2, 1 <= top_dim < latent_dim (default: latent_dim // 2, at least 1).
        hidden_top: width of the MLPs of the second layer (bottom-up f2 and top-down p(z1|z2)).
        batch_norm: batch normalisation before every hidden activation of the MLPs (Sønderby et al.
            2016, sec. 3); default True (on Fashion-MNIST it is what makes the ladder beat the flat VAE:
            docs/models.md, "Likelihood-based models"). Run folders saved before the option existed
            load without it (:attr:`SAVED_DEFAULTS`).
        kl: ``"mc"`` (default), the ELBO's KL as log q(z|x) − log p(z) at the reconstruction's draw,
            or ``"analytic"``, the per-layer closed forms at that draw of z2 (see the module docstring).

    Raises:
        ValueError: latent_dim < 2, top_dim outside [1, latent_dim − 1], hidden_top < 1, batch_norm
            not a bool, kl not "mc" or "analytic".
    """

    #: the values of options that run folders saved before the option existed were built with
    #: (:func:`vaekit.io.load` applies them to a saved ``extra`` that lacks the key)
    SAVED_DEFAULTS: ClassVar[dict] = {"batch_norm": False, "kl": "mc"}

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        top_dim: int | None = None,
        hidden_top: int = 128,
        batch_norm: bool = True,
        kl: str = "mc",
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.top_dim, self.hidden_top = _split(latent_dim, top_dim, hidden_top)
        self.batch_norm, self.kl = _check_options(batch_norm, kl)
        self.bottom_dim = self.latent_dim - self.top_dim
        activation = config.activation if config is not None else "relu"
        self.top_down = TopDown(self.top_dim, self.bottom_dim, self.hidden_top, activation, batch_norm)

    @classmethod
    def build_nets(
        cls,
        config,
        data_shape,
        *,
        trust_code: bool | None = None,
        top_dim: int | None = None,
        hidden_top: int = 128,
        batch_norm: bool = True,
        **kwargs,
    ) -> tuple[nn.Module, nn.Module]:
        """(LadderEncoder, decoder from z1): both from the config's networks (with BN in their hidden
        Linear layers for ``batch_norm``)."""
        top_dim, hidden_top = _split(config.latent_dim, top_dim, hidden_top)
        batch_norm, _ = _check_options(batch_norm, kwargs.get("kl", "mc"))
        width = config.hidden[-1] if config.hidden else 256
        features, _ = build_nets(
            dataclasses.replace(config, latent_dim=width), data_shape, stochastic=False, trust_code=trust_code
        )
        _, decoder = build_nets(
            dataclasses.replace(config, latent_dim=config.latent_dim - top_dim), data_shape, trust_code=trust_code
        )
        encoder = LadderEncoder(
            features, width, config.latent_dim - top_dim, top_dim, hidden_top, config.activation, batch_norm
        )
        if batch_norm:
            add_batch_norm(decoder)
        return encoder, FromBottom(decoder, config.latent_dim - top_dim)

    def extra_config(self) -> dict:
        """``top_dim``, ``hidden_top``, ``batch_norm`` and ``kl``: rebuild the two layers on load."""
        return {"top_dim": self.top_dim, "hidden_top": self.hidden_top, "batch_norm": self.batch_norm, "kl": self.kl}

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z1, z2 | x): a :class:`LadderPosterior`, batch ``(batch,)``, event ``(latent_dim,)``."""
        out = self._encoder_output(x)
        if not (isinstance(out, (tuple, list)) and len(out) == 4):
            raise ValueError("a Ladder VAE encoder must return (loc1, scale1, loc2, scale2)")
        loc1, scale1, loc2, scale2 = out
        return LadderPosterior(loc1, scale1, loc2, scale2, self.top_down, analytic_kl=self.kl == "analytic")

    def prior(self) -> Distribution:
        """p(z2) p(z1|z2): a :class:`LadderPrior` with event ``(latent_dim,)``."""
        return LadderPrior(self.top_down, self.bottom_dim, self.top_dim, self.prior_loc)


def _split(latent_dim: int, top_dim, hidden_top) -> tuple[int, int]:
    if latent_dim < 2:
        raise ValueError(f"a Ladder VAE needs latent_dim >= 2 (z1 and z2), got {latent_dim}")
    top_dim = max(1, latent_dim // 2) if top_dim is None else top_dim
    if isinstance(top_dim, bool) or not isinstance(top_dim, int) or not 1 <= top_dim < latent_dim:
        raise ValueError(f"top_dim must be an integer in [1, latent_dim - 1] = [1, {latent_dim - 1}], got {top_dim!r}")
    if isinstance(hidden_top, bool) or not isinstance(hidden_top, int) or hidden_top < 1:
        raise ValueError(f"hidden_top must be an integer >= 1, got {hidden_top!r}")
    return top_dim, hidden_top


def _check_options(batch_norm, kl) -> tuple[bool, str]:
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be true or false, got {batch_norm!r}")
    if kl not in ("mc", "analytic"):
        raise ValueError(f'kl must be "mc" or "analytic", got {kl!r}')
    return batch_norm, kl
