"""The HVAE bound (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian variational auto-encoder",
NeurIPS, Alg. 1) as a training objective: the model (:class:`vaekit.models.hamiltonian.HamiltonianVAE`)
supplies the tempered leapfrog flow, this file the bound
L = log p(x, z_K) + log N(ρ_K; 0, I) − log q_0(z_0|x) − log N(γ; 0, I) (nats, per example)."""

from __future__ import annotations

import dataclasses
import math

import torch

from .elbo import _terms


def _standard_log_prob(v: torch.Tensor) -> torch.Tensor:
    return (-0.5 * v.square() - 0.5 * math.log(2 * math.pi)).sum(-1)


@dataclasses.dataclass(frozen=True)
class HVAEBound:
    """The HVAE bound as a loss (Caterini et al. 2018, Alg. 1), ``num_samples`` draws of (z_0, γ) averaged.

    Logged terms: ``reconstruction`` = log p(x|z_K), ``kl`` = reconstruction − bound (the gap the
    bound charges for z_K), so ``elbo`` is the HVAE bound itself. ``warmup`` is unused."""

    num_samples: int = 1

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0):
        """x ``(batch, *data_shape)`` -> :class:`~vaekit.objectives.LossTerms`; ``model.flow`` runs the dynamics."""
        q = model.encode(model.corrupt(x))
        z0 = q.rsample((self.num_samples,))
        gamma = torch.randn_like(z0)
        z, rho = model.flow(x, z0, gamma)
        reconstruction = model.decode(z).log_prob(x)
        bound = (
            reconstruction
            + model.prior().log_prob(z)
            + _standard_log_prob(rho)
            - q.log_prob(z0)
            - _standard_log_prob(gamma)
        )
        reconstruction, bound = reconstruction.mean(0), bound.mean(0)
        return _terms(-bound.mean(), reconstruction, reconstruction - bound)


def build_objective(config, dataset_size: int = 0) -> HVAEBound:
    """The registry's objective builder: the HVAE bound with ``--num-samples`` draws."""
    return HVAEBound(config.train.num_samples)
