"""The deterministic (denoising) autoencoder: the base every model of the zoo extends.

``encode(x) -> Distribution`` over z, ``decode(z) -> Distribution`` over x, ``prior() -> Distribution``
over z. Objectives and evaluations reach a model only through these three.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions import (
    Deterministic,
    Likelihood,
    StandardNormal,
    build_likelihood,
    sample_prior,
)
from ..nets import build_nets


def check_input(x: torch.Tensor, data_shape) -> None:
    """Raise TypeError unless ``x`` is a tensor, ValueError unless its examples have ``data_shape`` (x: ``(batch, *data_shape)``; None skips the shape check)."""
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if data_shape is not None and x.shape[1:] != data_shape:
        raise ValueError(
            f"x has examples of shape {tuple(x.shape[1:])} but the model expects {tuple(data_shape)} "
            f"(x: (batch, {', '.join(map(str, data_shape))}))"
        )


class AE(nn.Module):
    """Deterministic autoencoder; ``noise_std > 0`` makes it a denoising autoencoder.

    Args:
        encoder: module ``x (batch, *data_shape) -> loc (batch, latent_dim)``.
        decoder: module ``z (batch, latent_dim) -> params (batch, *data_shape)`` of the likelihood.
        likelihood: a :class:`~vaekit.distributions.Likelihood` head.
        latent_dim: size of z.
        data_shape: shape of one example (checked on input when given).
        noise_std: std of the Gaussian noise added to the encoder input during training.
        config: the :class:`~vaekit.config.ModelConfig` that built the model, kept for saving
            (None for a model built from custom modules).
    """

    prior_loc: torch.Tensor
    prior_scale: torch.Tensor
    stochastic = False
    conditional = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
    ):
        super().__init__()
        if not isinstance(likelihood, Likelihood):
            raise TypeError(f"likelihood must be a vaekit.distributions.Likelihood, got {type(likelihood).__name__}")
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        self.noise_std = float(noise_std)
        self.config = config
        # The prior's parameters follow the model across devices and dtypes; they are not saved.
        self.register_buffer("prior_loc", torch.zeros(self.latent_dim), persistent=False)
        self.register_buffer("prior_scale", torch.ones(self.latent_dim), persistent=False)

    @classmethod
    def refuses(cls, data_shape, likelihood_scale) -> str | None:
        """Why this model cannot be built for examples of ``data_shape`` with the head's
        ``likelihood_scale`` (a float or "learned"), or None when it can (every model but a few: the
        MS-SSIM VAE takes images and no learned scale). The contract suite skips refused cases."""
        return None

    def extra_config(self) -> dict:
        """Keyword arguments, beyond the config and data shape, that :func:`build_model` needs to rebuild this model."""
        return {}

    @classmethod
    def net_options(cls, **extra) -> dict:
        """Keyword arguments of :func:`~vaekit.nets.build_nets` implied by the :meth:`extra_config` kwargs."""
        return {}

    @classmethod
    def build_nets(cls, config, data_shape, *, trust_code: bool | None = None, **kwargs) -> tuple[nn.Module, nn.Module]:
        """The (encoder, decoder) pair a :class:`~vaekit.config.ModelConfig` describes (a model with
        other networks, e.g. a hierarchy, overrides this). ``kwargs``: the model's options and extras."""
        return build_nets(
            config, data_shape, stochastic=cls.stochastic, trust_code=trust_code, **cls.net_options(**kwargs)
        )

    @classmethod
    def from_config(cls, config, data_shape, *, trust_code: bool | None = None, **kwargs) -> AE:
        """Build the model from a resolved :class:`~vaekit.config.ModelConfig` (see
        :func:`vaekit.models.build_model`, which seeds, checks the size and resolves the config first).
        ``kwargs``: the model's options (``config.options``) and saved extras (:meth:`extra_config`)."""
        encoder, decoder = cls.build_nets(config, data_shape, trust_code=trust_code, **kwargs)
        likelihood = build_likelihood(config.likelihood, data_shape, config.likelihood_scale, config.decoder_activation)
        return cls(encoder, decoder, likelihood, config.latent_dim, data_shape, config.noise_std, config, **kwargs)

    def _encoder_output(self, x: torch.Tensor):
        check_input(x, self.data_shape)
        return self.encoder(x)

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x): a point mass at f(x) for the AE. x ``(batch, *data_shape)``; event shape ``(latent_dim,)``."""
        return Deterministic(self._encoder_output(x))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder input used in training: x plus N(0, noise_std²) noise in training mode, else x."""
        if self.training and self.noise_std > 0:
            return x + self.noise_std * torch.randn_like(x)
        return x

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for z ``(*sample, batch, latent_dim)``; ``log_prob(x)`` has shape ``(*sample, batch)``."""
        if z.dim() == 2:
            return self.likelihood(self.decoder(z))
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, z.shape[-1]))
        return self.likelihood(params.reshape(*lead, *params.shape[1:]))

    def prior(self) -> Distribution:
        """p(z) = N(0, I), event shape ``(latent_dim,)``: one object per model, rebuilt when the
        buffers behind it are replaced (``model.to(...)``). A model with another prior overrides this
        method; everything else (sampling, KL, importance weights, scores) reaches p(z) through it."""
        loc, scale, prior = self.prior_loc, self.prior_scale, self.__dict__.get("_prior")
        if prior is None or prior.base_dist.loc is not loc or prior.base_dist.scale is not scale:
            prior = self.__dict__["_prior"] = StandardNormal(loc, scale)
        return prior

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Representation: the encoder mean E_q[z|x], ``(batch, latent_dim)``."""
        return self.encode(x).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the encoder mean, g(μ(x)): ``(batch, *data_shape)``."""
        return self.decode(self.transform(x)).mean

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of ``n`` draws z ~ p(z) of :meth:`prior` (its scale times ``temperature``;
        see :func:`~vaekit.distributions.sample_prior`): ``(n, *data_shape)``."""
        z = sample_prior(self.prior(), n, temperature, generator)
        return self.decode(z).mean
