"""The maximum mean discrepancy between the aggregate posterior q(z) and the prior p(z), and the
objectives that penalise it: WAE-MMD (Tolstikhin et al. 2018, "Wasserstein Auto-Encoders", ICLR,
Algorithm 2) and InfoVAE-MMD (Zhao et al. 2019, "InfoVAE: Balancing Learning and Inference in
Variational Autoencoders", AAAI, sec. 3, eq. 6 with the MMD divergence of sec. 3.2)."""

from __future__ import annotations

import dataclasses
import functools
import operator

import torch

from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior

#: Tolstikhin et al. 2018, sec. 4: the IMQ kernel summed over these multiples of its base scale C.
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖², ``(n, m)`` for a ``(n, d)``, b ``(m, d)`` (clamped at 0; differentiable at a_i = b_j,
    where ``torch.cdist``'s gradient is not)."""
    return (a.square().sum(-1)[:, None] + b.square().sum(-1)[None, :] - 2 * a @ b.T).clamp_min(0)


def _imq(d2: torch.Tensor, c: float) -> torch.Tensor:
    return c / (c + d2)


def _rbf(d2: torch.Tensor, c: float) -> torch.Tensor:
    return torch.exp(-d2 / c)


#: kernel name -> k(‖x − y‖², C): the inverse multiquadratic C / (C + ‖x − y‖²) (Tolstikhin et al.
#: 2018, sec. 4) and the Gaussian (RBF) exp(−‖x − y‖² / C).
KERNELS = {"imq": _imq, "rbf": _rbf}


def kernel_matrix(
    a: torch.Tensor, b: torch.Tensor, kernel: str = "imq", scales=SCALES, prior_variance: float = 1.0
) -> torch.Tensor:
    """Σ_s k(a_i, b_j; C_s) ``(n, m)`` with C_s = 2 · d · σ² · s (Tolstikhin et al. 2018, sec. 4: C = 2dσ²
    for a N(0, σ² I) prior in d dimensions, summed over the scales s).

    Raises:
        ValueError: an unknown kernel or an empty/non-positive scale.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    d2 = squared_distances(a, b)
    base = 2.0 * a.shape[-1] * prior_variance
    return functools.reduce(operator.add, (KERNELS[kernel](d2, base * s) for s in scales))


def mmd_unbiased(
    x: torch.Tensor, y: torch.Tensor, kernel: str = "imq", scales=SCALES, prior_variance: float = 1.0
) -> torch.Tensor:
    """The unbiased U-statistic estimate of MMD²(P, Q) from x ~ P ``(n, d)`` and y ~ Q ``(m, d)``
    (Gretton et al. 2012, JMLR, eq. 3; Tolstikhin et al. 2018, Algorithm 2):
    1/(n(n−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(x_i, y_j).

    Its expectation is the population MMD² (0 for P = Q); a single value may be negative. Scalar;
    0 when n < 2 or m < 2 (no pair to compare: a last batch of one example).

    Raises:
        ValueError: x and y of different dimension, or a bad kernel / scales (:func:`kernel_matrix`).
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must be (n, d) and (m, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return x.new_zeros(()) + 0 * x.sum()
    kxx = kernel_matrix(x, x, kernel, scales, prior_variance)
    kyy = kernel_matrix(y, y, kernel, scales, prior_variance)
    kxy = kernel_matrix(x, y, kernel, scales, prior_variance)
    return _off_diagonal_mean(kxx, n) + _off_diagonal_mean(kyy, m) - 2 * kxy.mean()


def _off_diagonal_mean(k: torch.Tensor, size: int) -> torch.Tensor:
    """The mean of a kernel matrix's off-diagonal entries (the U-statistic's within-sample term)."""
    return (k.sum() - k.diagonal().sum()) / (size * (size - 1))


def prior_draws(model, n: int) -> torch.Tensor:
    """``n`` draws of ``model.prior()`` ``(n, latent_dim)`` (reparameterised where the prior can be)."""
    prior = model.prior()
    return prior.rsample((n,)) if prior.has_rsample else prior.sample((n,))


@dataclasses.dataclass(frozen=True)
class MMDRegularised:
    """−E log p(x|z) + κ·KL(q(z|x) ‖ p(z)) + λ·MMD²(q(z), p(z)), per batch.

    With ``kl_weight`` κ = 0 and a deterministic encoder this is WAE-MMD (Tolstikhin et al. 2018,
    Algorithm 2), its cost c(x, g(z)) the model's negative log-likelihood −log p(x|z) (the squared
    error ‖x − g(z)‖² / 2s² plus a constant for a Gaussian head of scale s, the paper's cost);
    with κ = 1 − α and λ = α + λ_Info − 1 it is InfoVAE (Zhao et al. 2019, eq. 6, MMD divergence).
    MMD² is the unbiased estimate (:func:`mmd_unbiased`) between the batch's codes z ~ q(z|x) and
    as many fresh prior draws. The loop's KL warm-up ``warmup`` scales κ only.
    """

    weight: float = 10.0
    kernel: str = "imq"
    scales: tuple = SCALES
    kl_weight: float = 0.0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (reconstruction, kl: ``(batch,)`` nats)."""
        out = forward(model, x, None)
        kl = kl_to_prior(model, out.q, out.z)
        mmd = mmd_unbiased(out.z, prior_draws(model, len(x)), self.kernel, self.scales)
        loss = (self.kl_weight * warmup * kl - out.log_px).mean() + self.weight * mmd
        return _terms(loss, out.log_px, kl)
