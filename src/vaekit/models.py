"""Autoencoder and variational autoencoder: the graphical models, and nothing else.

``encode(x) -> Distribution`` over z, ``decode(z) -> Distribution`` over x, ``prior()``. Objectives
(β-VAE, IWAE, AVAE, ...) are functions of these in :mod:`vaekit.objectives`; a variant that does
not change the graphical model is a config value, not a class.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution

from .distributions import Deterministic, Likelihood, build_likelihood, diagonal_normal, standard_normal
from .nets import build_nets


def _check_input(x: torch.Tensor, data_shape) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if data_shape is not None and tuple(x.shape[1:]) != tuple(data_shape):
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
        config: the :class:`~vaekit.config.Config` that built the model, kept for saving.
    """

    stochastic = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, latent_dim: int,
                 data_shape=None, noise_std: float = 0.0, config=None):
        super().__init__()
        if not isinstance(likelihood, Likelihood):
            raise TypeError(f"likelihood must be a vaekit.distributions.Likelihood, got {type(likelihood).__name__}")
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        self.noise_std = float(noise_std)
        self.config = config

    def extra_config(self) -> dict:
        """Keyword arguments, beyond the config and data shape, that :func:`build_model` needs to rebuild this model."""
        return {}

    def _encoder_output(self, x: torch.Tensor):
        _check_input(x, self.data_shape)
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
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, z.shape[-1]))
        return self.likelihood(params.reshape(*lead, *params.shape[1:]))

    def prior(self) -> Distribution:
        """p(z) = N(0, I), event shape ``(latent_dim,)``."""
        p = next(self.parameters())
        return standard_normal(self.latent_dim, p.device, p.dtype)

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
        """Decoder means of ``n`` prior draws z ~ N(0, temperature² I): ``(n, *data_shape)``."""
        p = next(self.parameters())
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=p.device, dtype=p.dtype)
        return self.decode(z).mean


class VAE(AE):
    """Variational autoencoder (Kingma & Welling 2013) with q(z|x) = N(loc(x), diag(scale(x)²)).

    Args: as :class:`AE`, but the encoder returns ``(loc, scale)``, each ``(batch, latent_dim)``
    with ``scale > 0``. Any ``nn.Module`` pair with these signatures works: this is how a custom
    architecture is plugged in.
    """

    stochastic = True

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = Independent(Normal(loc, scale), 1), batch ``(batch,)``, event ``(latent_dim,)``.

        Raises:
            ValueError: x of the wrong shape, or an encoder that does not return a valid (loc, scale).
        """
        out = self._encoder_output(x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError("a VAE encoder must return (loc, scale), each (batch, latent_dim)")
        loc, scale = out
        if loc.shape != scale.shape or loc.shape[-1] != self.latent_dim:
            raise ValueError(
                f"encoder returned loc {tuple(loc.shape)} and scale {tuple(scale.shape)}; "
                f"expected both (batch, {self.latent_dim})"
            )
        return diagonal_normal(loc, scale)


#: model name -> class. Names that share a graphical model share a class (their objective differs).
MODELS: dict[str, type[AE]] = {
    "ae": AE,
    "vae": VAE,
    "avae": VAE,
    "se": VAE,
    "se-avae": VAE,
    "avae-ss": VAE,
}


def resolve_decoder_activation(config, unit_interval: bool) -> str:
    """The Gaussian mean activation: config's, or for "auto" sigmoid on [0, 1] data, else identity."""
    if config.decoder_activation != "auto":
        return config.decoder_activation
    return "sigmoid" if unit_interval else "identity"


def build_model(config, data_shape, unit_interval: bool = True) -> AE:
    """Build the model a :class:`~vaekit.config.Config` describes for examples of ``data_shape``.

    Args:
        config: the run's configuration.
        data_shape: shape of one example, e.g. ``(1, 8, 8)`` or ``(30,)``.
        unit_interval: whether the data lie in [0, 1] (resolves ``decoder_activation="auto"``).

    Raises:
        ValueError: unknown model name, or a network that does not fit the data shape.
    """
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[config.model]
    config = config.replace(decoder_activation=resolve_decoder_activation(config, unit_interval))
    torch.manual_seed(config.seed)
    encoder, decoder = build_nets(config, data_shape, stochastic=cls.stochastic)
    likelihood = build_likelihood(config.likelihood, data_shape, config.likelihood_scale, config.decoder_activation)
    return cls(encoder, decoder, likelihood, config.latent_dim, data_shape, config.noise_std, config)
