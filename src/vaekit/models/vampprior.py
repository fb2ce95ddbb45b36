"""The VAE with a VampPrior: p(z) = (1/K) Σ_k q(z | u_k), a mixture of the encoder's own posteriors
at K learned pseudo-inputs u_k (Tomczak & Welling 2018, "VAE with a VampPrior", AISTATS, sec. 3.2,
eq. 9)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from ..distributions import DiagonalNormal, Gaussian, Likelihood
from .vae import VAE


class VampPrior(VAE):
    """VAE whose prior is the variational mixture of posteriors (Tomczak & Welling 2018, eq. 9).

    p_λ(z) = (1/K) Σ_k q(z | u_k): the pseudo-inputs u_k ``(K, *data_shape)`` are parameters
    trained with the rest of the model by the ELBO, so the prior is learned and couples with the
    encoder. No closed-form KL exists: the objectives estimate KL(q(z|x) ‖ p(z)) by Monte Carlo on the
    reconstruction's own draws (the paper's eq. 5 estimator), and the IS log-likelihood evaluates
    ``prior().log_prob`` (a mixture of K diagonal Gaussians). For data in [0, 1] the pseudo-inputs
    pass through a hard tanh onto [0, 1], as in sec. 3.2 of the paper; for other data they are used
    as they are.

    Args: as :class:`~vaekit.models.VAE`, plus
        num_components: K, the number of pseudo-inputs (the paper uses K = 500 on MNIST).
        init_scale: standard deviation of the pseudo-inputs' initial values around ``init_mean``;
            the paper draws them from N(0.05, 0.01) on binary MNIST (sec. 5).
        init_mean: mean of the pseudo-inputs' initial values (None: 0.5 for data in [0, 1], else 0).
        parameterization: ``"free"`` (default): the u_k are parameters themselves (the paper's and
            its official code's ``means`` layer, a bias-free linear map of the identity, is the same
            thing). ``"linear"``: u_k = W e_k + b, a linear layer with a bias ``b`` shared by all K
            components, on the identity input, at torch's default ``nn.Linear`` initialisation
            (uniform in ±1/√K for W and b), as pythae's ``VAMP`` parameterises them;
            ``init_mean`` and ``init_scale`` are then unused.

    Raises:
        ValueError: num_components < 1, init_scale < 0, a non-finite init_mean, no ``data_shape``,
            or an unknown parameterization.
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
        num_components: int = 500,
        init_scale: float = 0.01,
        init_mean: float | None = None,
        parameterization: str = "free",
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(num_components, bool) or not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be an integer >= 1, got {num_components!r}")
        if not float(init_scale) >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale!r}")
        if data_shape is None:
            raise ValueError("a VampPrior needs data_shape (the shape of its pseudo-inputs)")
        if init_mean is not None and (isinstance(init_mean, bool) or not math.isfinite(float(init_mean))):
            raise ValueError(f"init_mean must be a finite number or null, got {init_mean!r}")
        if parameterization not in ("free", "linear"):
            raise ValueError(f'parameterization must be "free" or "linear", got {parameterization!r}')
        self.num_components, self.init_scale = num_components, float(init_scale)
        self.parameterization = parameterization
        self.init_mean = None if init_mean is None else float(init_mean)
        self.unit_interval = likelihood.unit_interval or (
            isinstance(likelihood, Gaussian) and likelihood.mean_activation == "sigmoid"
        )
        centre = self.init_mean if self.init_mean is not None else (0.5 if self.unit_interval else 0.0)
        if parameterization == "linear":
            self.pseudo_input_layer = nn.Linear(num_components, math.prod(self.data_shape))
        else:
            self.pseudo_inputs = nn.Parameter(centre + self.init_scale * torch.randn(num_components, *self.data_shape))
        self.register_buffer("mixture_logits", torch.zeros(num_components), persistent=False)

    def extra_config(self) -> dict:
        """``num_components``, ``init_scale``, ``init_mean`` and ``parameterization``: rebuild the
        pseudo-inputs on load."""
        return {
            "num_components": self.num_components,
            "init_scale": self.init_scale,
            "init_mean": self.init_mean,
            "parameterization": self.parameterization,
        }

    def components(self) -> torch.Tensor:
        """The pseudo-inputs u_k as the encoder sees them, ``(K, *data_shape)`` (in [0, 1] for [0, 1] data)."""
        if self.parameterization == "linear":
            layer = self.pseudo_input_layer  # W e_k + b for every k at once: W^T + b
            raw = (layer.weight.t() + layer.bias).reshape(self.num_components, *self.data_shape)
        else:
            raw = self.pseudo_inputs
        return F.hardtanh(raw, 0.0, 1.0) if self.unit_interval else raw

    def prior(self) -> Distribution:
        """p(z) = (1/K) Σ_k N(z; μ(u_k), diag σ(u_k)²): a ``MixtureSameFamily`` with event ``(latent_dim,)``.
        Differentiable in the pseudo-inputs and the encoder weights (it is rebuilt on each call)."""
        q = self._posterior(self.encoder(self.components()))
        return MixtureSameFamily(
            Categorical(logits=self.mixture_logits), DiagonalNormal(q.base_dist.loc, q.base_dist.scale)
        )
