"""The Hamiltonian VAE (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian variational auto-encoder",
NeurIPS, sec. 3-4, Algorithm 1 and 2 with quadratic tempering).

The posterior is refined by K steps of tempered Hamiltonian dynamics targeting p(x, z): draw
z_0 ~ q_0(z|x) = N(μ(x), diag σ(x)²) and γ ~ N(0, I), set the momentum ρ_0 = γ/√β_0; each step is a
leapfrog move with the potential U(z) = −log p(x|z) − log p(z) and learned per-dimension step sizes ε,
  ρ̃ = ρ − (ε/2) ⊙ ∇U(z),  z' = z + ε ⊙ ρ̃,  ρ' = ρ̃ − (ε/2) ⊙ ∇U(z'),
followed by cooling ρ ← √(β_{k−1}/β_k) ρ' with the quadratic schedule
1/√β_k = (1 − 1/√β_0) k²/K² + 1/√β_0 (β_K = 1; β_0 in (0, 1] learned). The leapfrog preserves volume
and the cooling scales it by β_0^{d/2}, so (Caterini et al., eq. 9 / Alg. 1) the bound is
  L = log p(x, z_K) + log N(ρ_K; 0, I) − log q_0(z_0|x) − log N(γ; 0, I),
differentiable end to end through the dynamics (second-order gradients of log p(x, z)).

The model's ``encode`` stays the Gaussian q_0 (the HVAE has no closed-form marginal q(z_K|x)): the IS
log-likelihood uses q_0 as its proposal, a valid importance-sampling estimate of the same model's
log p(x) (only its variance depends on the proposal). :meth:`HamiltonianVAE.flow` gives the refined
draws for callers that want them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import Likelihood
from .vae import VAE


class HamiltonianVAE(VAE):
    """VAE trained with the HVAE bound (Caterini et al. 2018; see the module docstring).

    Args: as :class:`~vaekit.models.VAE`, plus
        num_leapfrog: K, tempered leapfrog steps (the paper: K = 5-15 on MNIST).
        step_size: initial leapfrog step size ε (every dimension; learned).
        initial_beta: initial β_0 in (0, 1] (learned; 1 is no tempering).
        tempering: learn β_0 (True) or keep β_0 = 1 and no cooling (False).

    Raises:
        ValueError: num_leapfrog < 1, step_size <= 0, initial_beta outside (0, 1].
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
        num_leapfrog: int = 5,
        step_size: float = 0.05,
        initial_beta: float = 0.5,
        tempering: bool = True,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(num_leapfrog, bool) or not isinstance(num_leapfrog, int) or num_leapfrog < 1:
            raise ValueError(f"num_leapfrog must be an integer >= 1, got {num_leapfrog!r}")
        if not float(step_size) > 0:
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
        if not 0 < float(initial_beta) <= 1:
            raise ValueError(f"initial_beta must lie in (0, 1], got {initial_beta!r}")
        self.num_leapfrog, self.step_size, self.initial_beta = num_leapfrog, float(step_size), float(initial_beta)
        self.tempering = bool(tempering)
        # ε = softplus(raw), β_0 = sigmoid(raw_beta): positive and in (0, 1)
        self.raw_step = nn.Parameter(torch.full((self.latent_dim,), math.log(math.expm1(self.step_size))))
        beta = min(self.initial_beta, 1 - 1e-4)
        self.raw_beta = nn.Parameter(torch.tensor(math.log(beta / (1 - beta))), requires_grad=self.tempering)

    def extra_config(self) -> dict:
        """The HVAE's settings, saved with the weights."""
        return {
            "num_leapfrog": self.num_leapfrog,
            "step_size": self.step_size,
            "initial_beta": self.initial_beta,
            "tempering": self.tempering,
        }

    def betas(self) -> torch.Tensor:
        """β_0 … β_K ``(K + 1,)`` of the quadratic tempering schedule (all ones without tempering)."""
        k = torch.arange(self.num_leapfrog + 1, dtype=self.raw_step.dtype, device=self.raw_step.device)
        if not self.tempering:
            return torch.ones_like(k)
        inv_sqrt0 = torch.sigmoid(self.raw_beta).rsqrt()
        inv_sqrt = (1 - inv_sqrt0) * k.square() / self.num_leapfrog**2 + inv_sqrt0
        return inv_sqrt.pow(-2)

    def _grad_potential(self, x: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """∇_z U(z) = −∇_z [log p(x|z) + log p(z)], ``z``'s shape."""
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_()
            log_joint = self.decode(z).log_prob(x) + self.prior().log_prob(z)
            return -torch.autograd.grad(log_joint.sum(), z, create_graph=create_graph)[0]

    def flow(self, x: torch.Tensor, z0: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The K tempered leapfrog steps from (z_0, ρ_0 = γ/√β_0): returns (z_K, ρ_K), each ``z0``'s shape
        ``(*sample, batch, latent_dim)``. Differentiable in every parameter when grad mode is on."""
        create_graph = torch.is_grad_enabled()
        step, betas = F.softplus(self.raw_step), self.betas()
        z, rho = z0, gamma / betas[0].sqrt()
        grad = self._grad_potential(x, z, create_graph)
        for k in range(1, self.num_leapfrog + 1):
            rho = rho - 0.5 * step * grad
            z = z + step * rho
            grad = self._grad_potential(x, z, create_graph)
            rho = (rho - 0.5 * step * grad) * (betas[k - 1] / betas[k]).sqrt()
        return z, rho
