"""JointVAE (Dupont 2018, "Learning disentangled joint continuous and discrete representations",
NeurIPS): a continuous Gaussian latent z and N Gumbel-softmax categorical latents c of K classes each,
trained with a capacity-controlled KL term per channel (sec. 3, eq. 7):

    L = E_q[log p(x|z, c)] − γ |KL(q(z|x) ‖ p(z)) − C_z| − γ |KL(q(c|x) ‖ p(c)) − C_c|,

C_z and C_c increased linearly from 0 over training, and C_c clipped at the discrete channel's
maximum capacity N log K (sec. 3: a larger C_c cannot be reached). The objective is
:class:`vaekit.objectives.gumbel.JointCapacity`; the categorical parts (posterior, uniform prior,
discrete KL, temperature, step counter) are those of :mod:`.categorical`.

The code is [z, c] with ``latent_dim`` = D + N·K entries: q(z, c|x) = N(z; μ, diag σ²) · Π_n Cat(c_n),
p(z, c) = N(0, I) · uniform, so the KL splits into the Gaussian's closed form and the discrete KL. The
encoder is the VAE's (loc, scale) network over all ``latent_dim`` entries: the first D give (μ, σ), the
last N·K locs are the logits (their scale outputs are unused). The temperature is fixed at 0.67 by
default (``anneal_rate`` 0), the value of the paper's reference implementation; the schedule of
:func:`.categorical.annealed_temperature` is available through the same options. The IS
log-likelihood sums the two parts' log-densities (Gaussian draws and one-hot draws of q).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions import DiagonalNormal, Likelihood, StandardNormal, kl_or_estimate
from .categorical import CategoricalVAE, JointLatent, _check_number


class JointVAE(CategoricalVAE):
    """JointVAE (Dupont 2018): q(z, c|x) = N(μ, diag σ²) × Π_n Cat(c_n), p = N(0, I) × uniform.

    Args: as :class:`~vaekit.models.VAE`, plus
        num_variables: N >= 1 discrete variables (default 1).
        num_categories: K >= 2 classes each; None: ⌈latent_dim / 2⌉ // N, about half the code.
            The continuous part has D = latent_dim − N·K >= 1 entries (the paper's MNIST model:
            D = 10, one variable of K = 10: ``--latent-dim 20 --options '{"num_categories": 10}'``).
        temperature, anneal_rate, anneal_interval, min_temperature, straight_through: as
            :class:`~vaekit.models.categorical.CategoricalVAE` (default a fixed τ = 0.67).
        gamma: γ >= 0 of eq. 7 (the paper's MNIST: 30).
        continuous_capacity: the final C_z >= 0 in nats (MNIST: 5).
        discrete_capacity: the final C_c >= 0 in nats before the clip at N log K (MNIST: 5).
        capacity_steps: training steps over which both capacities grow linearly (MNIST: 25,000).

    Raises:
        ValueError: D < 1, K < 2, or an option out of range.
    """

    gaussian_encoder: ClassVar[bool] = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        num_variables: int | None = 1,
        num_categories: int | None = None,
        temperature: float = 0.67,
        anneal_rate: float = 0.0,
        anneal_interval: int = 500,
        min_temperature: float = 0.5,
        straight_through: bool = False,
        gamma: float = 30.0,
        continuous_capacity: float = 5.0,
        discrete_capacity: float = 5.0,
        capacity_steps: int = 25000,
    ):
        super().__init__(
            encoder,
            decoder,
            likelihood,
            latent_dim,
            data_shape,
            noise_std,
            config,
            num_variables,
            num_categories,
            temperature,
            anneal_rate,
            anneal_interval,
            min_temperature,
            straight_through,
        )
        _check_number("gamma", gamma, 0, strict=False)
        _check_number("continuous_capacity", continuous_capacity, 0, strict=False)
        _check_number("discrete_capacity", discrete_capacity, 0, strict=False)
        _check_number("capacity_steps", capacity_steps, 1, integer=True, strict=False)

    @classmethod
    def split_latent(cls, latent_dim: int, num_variables, num_categories) -> tuple[int, int, int]:
        """(D, N, K) with D + N·K = latent_dim, D >= 1.

        Raises:
            ValueError: N or K not a positive integer, K < 2, or no room left for the continuous part.
        """
        n = 1 if num_variables is None else num_variables
        _check_number("num_variables", n, 1, integer=True, strict=False)
        k = (latent_dim + 1) // 2 // n if num_categories is None else num_categories
        _check_number("num_categories", k, 1, integer=True, strict=False)
        if k < 2:
            raise ValueError(f"num_categories must be >= 2, got {k} (latent_dim={latent_dim}, num_variables={n})")
        d = latent_dim - n * k
        if d < 1:
            raise ValueError(
                f"latent_dim={latent_dim} leaves no continuous part beside {n} × {k} categories: the JointVAE's "
                f"latent_dim is D + N × K with D >= 1 (e.g. --latent-dim 20 --options '{{\"num_categories\": 10}}')"
            )
        return d, n, k

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z, c|x) = N(μ, diag σ²) × Π_n Cat(c_n): batch ``(batch,)``, event ``(latent_dim,)`` = ``(D + N·K,)``.

        Raises:
            ValueError: x of the wrong shape, or an encoder that does not return a valid (loc, scale).
        """
        normal = self._posterior(self._encoder_output(x)).base_dist
        d = self.continuous_dim
        continuous = DiagonalNormal(normal.loc[:, :d], normal.scale[:, :d])
        return JointLatent([continuous, self.categorical_posterior(normal.loc[:, d:])])

    def prior(self) -> JointLatent:
        """p(z, c) = N(0, I_D) × uniform over the K^N one-hot codes, event ``(latent_dim,)``."""
        d = self.continuous_dim
        continuous = StandardNormal(self.prior_loc[:d], self.prior_scale[:d])
        return JointLatent([continuous, self.categorical_prior()])

    def channel_kls(self, q: JointLatent) -> tuple[torch.Tensor, torch.Tensor]:
        """(KL(q(z|x) ‖ N(0, I)), KL(q(c|x) ‖ uniform)) of a posterior of :meth:`encode`: ``(batch,)`` nats
        each, in closed form (the Gaussian's, Kingma & Welling 2013, App. B; the discrete KL)."""
        kl_z, kl_c = (kl_or_estimate(qi, pi) for qi, pi in zip(q.parts, self.prior().parts))
        return kl_z, kl_c
