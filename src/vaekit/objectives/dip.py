"""The DIP-VAE objectives (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR, sec. 3, eq. 6 (DIP-VAE-I) and eq. 7 (DIP-VAE-II))."""

from __future__ import annotations

import dataclasses

import torch

from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior


def moment_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)² for a ``(d, d)`` covariance C (Kumar et al. 2018, eq. 6-7). Scalar."""
    diag = cov.diagonal()
    return lambda_od * (cov.square().sum() - diag.square().sum()) + lambda_d * (diag - 1).square().sum()


def aggregate_covariance(q, kind: str) -> torch.Tensor:
    """The batch estimate of the covariance DIP-VAE matches to I, ``(d, d)``: Cov_x[μ(x)] ("i", eq. 6) or
    Cov_q(z)[z] = E_x[diag σ²(x)] + Cov_x[μ(x)] ("ii", eq. 7), for q(z|x) with ``mean`` / ``variance``
    ``(batch, d)``. The batch covariance is the biased (1/n) estimate, as the paper's."""
    mu = q.mean
    centred = mu - mu.mean(0, keepdim=True)
    cov = centred.T @ centred / len(mu)
    if kind == "ii":
        cov = cov + torch.diag(q.variance.mean(0))
    return cov


@dataclasses.dataclass(frozen=True)
class DIP:
    """DIP-VAE loss: −ELBO (KL weight β·warm-up) + the moment penalty of :func:`aggregate_covariance`.

    Raises:
        ValueError: ``kind`` not "i" or "ii".
    """

    lambda_od: float = 10.0
    lambda_d: float = 100.0
    kind: str = "i"
    beta: float = 1.0

    def __post_init__(self):
        if self.kind not in ("i", "ii"):
            raise ValueError(f"kind must be 'i' or 'ii', got {self.kind!r}")

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, None)
        kl = kl_to_prior(model, out.q, out.z)
        penalty = moment_penalty(aggregate_covariance(out.q, self.kind), self.lambda_od, self.lambda_d)
        loss = (self.beta * warmup * kl - out.log_px).mean() + penalty
        return _terms(loss, out.log_px, kl)
