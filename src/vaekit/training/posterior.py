"""Posterior samplers over network weights: SGHMC (Chen et al. 2014) and SWAG (Maddox et al. 2019).

Both are small, generic and tested against the closed-form posterior of Bayesian linear regression
(tests/test_posterior.py); :mod:`vaekit.detectors.bayesian_vae` applies them to a VAE's decoder.

Why our own code: the maintained PyTorch SG-MCMC package we checked, ``posteriors`` 0.1.3, would add
five dependencies (tensordict, torchopt, optree, graphviz, pyvers) and works on functional
parameter trees (torch.func) rather than on an ``nn.Module``'s parameters, and it has no SWAG. The
SGHMC update is six lines; SWAG's moments are a dozen.
"""

from __future__ import annotations

import collections
import math

import torch


class SGHMC(torch.optim.Optimizer):
    """Stochastic gradient Hamiltonian Monte Carlo (Chen, Fox & Guestrin 2014, sec. 3.3, eq. 15).

    With the gradient of the potential U(θ) = −log p(D|θ) − log p(θ) (or an unbiased minibatch
    estimate of it) in ``p.grad``, one :meth:`step` is

        v ← v − η ∇U(θ) − α v + N(0, 2 (α − β̂) η),   θ ← θ + v

    with ``lr`` = η (= ε² M⁻¹ of the paper), ``friction`` = α (= ε M⁻¹ C) and β̂ = 0, the
    choice of the paper's experiments (sec. 4). ``temperature`` T scales the injected noise
    variance (T = 1: the posterior; T < 1: a "cold" posterior ∝ exp(−U/T)). For small η the
    iterates θ are (approximate) samples from p(θ|D) ∝ exp(−U(θ)).

    Args:
        params: parameters (or parameter groups) to sample.
        lr: η > 0, in units of θ² per unit of U.
        friction: α in (0, 1]; 1 − α is the momentum of the equivalent SGD-with-momentum.
        temperature: T >= 0.

    Raises:
        ValueError: lr <= 0, friction outside (0, 1] or temperature < 0.
    """

    def __init__(self, params, lr: float, friction: float = 0.05, temperature: float = 1.0):
        if not lr > 0:
            raise ValueError(f"SGHMC lr (eta) must be > 0, got {lr!r}")
        if not 0 < friction <= 1:
            raise ValueError(f"SGHMC friction (alpha) must be in (0, 1], got {friction!r}")
        if not temperature >= 0:
            raise ValueError(f"SGHMC temperature must be >= 0, got {temperature!r}")
        super().__init__(params, {"lr": lr, "friction": friction, "temperature": temperature})

    @torch.no_grad()
    def step(self, closure=None):
        """One SGHMC step with the gradients of U held in ``p.grad``; draws from the global RNG."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, temp = group["lr"], group["friction"], group["temperature"]
            noise_std = math.sqrt(2.0 * alpha * lr * temp)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                v = state["momentum"]
                v.mul_(1.0 - alpha).add_(p.grad, alpha=-lr)
                if noise_std > 0:
                    v.add_(torch.randn_like(p), alpha=noise_std)
                p.add_(v)
        return loss


class SWAG:
    """SWA-Gaussian (Maddox, Garipov, Izmailov, Vetrov & Wilson 2019, sec. 3).

    :meth:`collect` is called with the flattened weights θ_i of SGD iterates (once per epoch in
    the paper). SWAG keeps θ̄ = mean θ_i (SWA), the second moment mean θ_i², and the last
    ``max_rank`` = K deviations D̂ = [θ_i − θ̄_i] (θ̄_i the running mean when θ_i was collected).
    The approximate posterior is N(θ̄, ½ (Σ_diag + D̂ D̂ᵀ / (K − 1))), Σ_diag = diag(mean θ² − θ̄²),
    sampled as (sec. 3)

        θ̃ = θ̄ + (1/√2) Σ_diag^{1/2} z₁ + (1/√(2(K − 1))) D̂ z₂,   z₁ ~ N(0, I_d), z₂ ~ N(0, I_K).

    ``scale`` multiplies the covariance of a draw (1.0: the formula as written). ``max_rank = 0``
    gives SWAG-diagonal, N(θ̄, Σ_diag).

    Args:
        dim: number of weights d.
        max_rank: K, the rank of the low-rank part (the paper uses K = 20).

    Raises:
        ValueError: dim < 1 or max_rank < 0.
    """

    def __init__(self, dim: int, max_rank: int = 20):
        if dim < 1 or max_rank < 0:
            raise ValueError(f"SWAG needs dim >= 1 and max_rank >= 0, got {dim} and {max_rank}")
        self.dim, self.max_rank = int(dim), int(max_rank)
        self.num_collected = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.sq_mean = torch.zeros(dim, dtype=torch.float64)
        self.deviations: collections.deque[torch.Tensor] = collections.deque(maxlen=max(max_rank, 1))

    def collect(self, theta: torch.Tensor) -> None:
        """Add one iterate ``theta`` ``(dim,)`` to the running moments (float64)."""
        theta = theta.detach().reshape(-1).to(torch.float64).cpu()
        if theta.numel() != self.dim:
            raise ValueError(f"SWAG collects vectors of {self.dim} weights, got {theta.numel()}")
        n = self.num_collected
        self.mean = (n * self.mean + theta) / (n + 1)
        self.sq_mean = (n * self.sq_mean + theta**2) / (n + 1)
        if self.max_rank:
            self.deviations.append(theta - self.mean)
        self.num_collected = n + 1

    @property
    def variance(self) -> torch.Tensor:
        """Σ_diag = mean θ² − θ̄², clamped at 0: ``(dim,)`` float64."""
        return (self.sq_mean - self.mean**2).clamp_min(0.0)

    def covariance(self) -> torch.Tensor:
        """The full covariance ½ (Σ_diag + D̂ D̂ᵀ / (K − 1)) as a ``(dim, dim)`` matrix (small dim only)."""
        cov = torch.diag(self.variance)
        k = len(self.deviations) if self.max_rank else 0
        if k > 1:
            d = torch.stack(list(self.deviations), 1)
            cov = cov + d @ d.T / (k - 1)
        else:
            cov = cov * 2.0  # diagonal SWAG: N(θ̄, Σ_diag)
        return 0.5 * cov

    def sample(self, generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
        """One draw θ̃ ``(dim,)`` float64 (sec. 3); the diagonal form N(θ̄, Σ_diag) when fewer than
        two deviations are held or ``max_rank = 0``.

        Raises:
            RuntimeError: nothing collected yet.
        """
        if self.num_collected == 0:
            raise RuntimeError("SWAG.sample before any collect(): run SGD and collect iterates first")
        z1 = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        k = len(self.deviations) if self.max_rank else 0
        if k < 2:
            return self.mean + math.sqrt(scale) * self.variance.sqrt() * z1
        d = torch.stack(list(self.deviations), 1)
        z2 = torch.randn(k, generator=generator, dtype=torch.float64)
        return self.mean + math.sqrt(scale) * (
            self.variance.sqrt() * z1 / math.sqrt(2.0) + d @ z2 / math.sqrt(2.0 * (k - 1))
        )
