"""β-TCVAE and the decomposition of the KL term (Chen et al. 2018, "Isolating Sources of
Disentanglement in VAEs").

With q(z) = (1/N) Σ_n q(z|x_n) the aggregate posterior of N training examples, the average KL
term of the ELBO splits into three non-negative terms (Chen et al. 2018, eq. 2):

    E_n KL(q(z|x_n) ‖ p(z)) = I_q(z; n)                      index-code mutual information
                            + KL(q(z) ‖ Π_j q(z_j))          total correlation
                            + Σ_j KL(q(z_j) ‖ p(z_j))        dimension-wise KL

Each term is an expectation over z ~ q(z|x_n); log q(z) and log q(z_j) are mixtures over the
whole data set, estimated from a minibatch of M examples by minibatch-weighted sampling (MWS,
Chen et al. 2018, sec. 3.1 and appendix C.1) or minibatch-stratified sampling (MSS, appendix C.2).
With M = N and stratified weights the mixture is exact, and the three per-example terms sum to
log q(z|x) − log p(z), the one-sample Monte Carlo estimate of the KL.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior

#: Rows of the (M, M, latent_dim) density matrix computed at once.
_ROW_CHUNK = 256
_HALF_LOG_2PI = math.log(math.sqrt(2 * math.pi))


def log_weight_matrix(batch_size: int, dataset_size: int, sampling: str, device=None) -> torch.Tensor:
    """log w_ij of the mixture estimate q(z_i) ≈ Σ_j w_ij q(z_i|x_j) over a minibatch, ``(M, M)``.

    ``"mws"``: w_ij = 1 / (N M) for every pair (Chen et al. 2018, eq. S6; a biased estimate whose
    bias is a constant in the parameters). ``"mss"``: stratified sampling with the example's own
    component weighted 1/N and the other M − 1 sharing the rest, w_ii = 1/N,
    w_ij = (N − 1) / (N (M − 1)); unbiased for q(z_i) when the other examples are drawn without
    replacement, and exact for M = N. (Chen et al.'s released code gives one of the other M − 1
    examples a different weight; the weights here are the plain stratified estimator of the
    mixture with the example's own stratum of size 1.)

    Raises:
        ValueError: unknown sampling, M < 1, or N < M.
    """
    m, n = int(batch_size), int(dataset_size)
    if sampling not in ("mws", "mss"):
        raise ValueError(f"sampling must be 'mws' or 'mss', got {sampling!r}")
    if m < 1 or n < m:
        raise ValueError(f"need 1 <= batch_size <= dataset_size, got batch_size={m}, dataset_size={n}")
    if sampling == "mws":
        return torch.full((m, m), -math.log(n * m), device=device)
    if m == 1:
        return torch.zeros(1, 1, device=device)
    weights = torch.full((m, m), (n - 1) / (n * (m - 1)), device=device)
    weights.fill_diagonal_(1.0 / n)
    return weights.log()


def _log_mixtures(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, log_w: torch.Tensor):
    """(log q(z_i), Σ_d log q(z_id)) under the weighted mixtures, each ``(M,)``, in row chunks."""
    joint, marginal = [], []
    # Normal(loc, scale).log_prob(z) written out (the same operations, so the same bits), with the
    # variance and log-scale computed once: no distribution object and argument checks per chunk
    loc, var, log_scale = loc.unsqueeze(0), scale.unsqueeze(0) ** 2, scale.unsqueeze(0).log()
    for start in range(0, len(z), _ROW_CHUNK):
        rows = slice(start, start + _ROW_CHUNK)
        log_q = -((z[rows].unsqueeze(1) - loc) ** 2) / (2 * var) - log_scale - _HALF_LOG_2PI  # (m, M, D)
        weights = log_w[rows].unsqueeze(-1)
        joint.append(torch.logsumexp(log_q.sum(-1) + log_w[rows], dim=1))
        marginal.append(torch.logsumexp(log_q + weights, dim=1).sum(-1))
    return torch.cat(joint), torch.cat(marginal)


def kl_decomposition_terms(
    q, z: torch.Tensor, prior, dataset_size: int, sampling: str = "mss"
) -> dict[str, torch.Tensor]:
    """Per-example estimates of the three KL terms for one sample z_i ~ q(z|x_i) per example.

    Args:
        q: diagonal Gaussian posterior, ``Independent(Normal(loc, scale), 1)`` with batch ``(M,)``.
        z: ``(M, latent_dim)`` samples, z_i from q(z|x_i) (reparameterised for training).
        prior: p(z) with event shape ``(latent_dim,)``; factorised (N(0, I)).
        dataset_size: N, the number of examples the aggregate posterior mixes.
        sampling: "mws" or "mss" (see :func:`log_weight_matrix`).

    Returns:
        ``mi`` = log q(z|x) − log q(z), ``tc`` = log q(z) − Σ_j log q(z_j),
        ``dimwise_kl`` = Σ_j log q(z_j) − log p(z): each ``(M,)`` in nats; their sum is
        log q(z|x) − log p(z) exactly.
    """
    base = q.base_dist
    log_w = log_weight_matrix(len(z), dataset_size, sampling, device=z.device).to(z.dtype)
    log_qz, log_qz_product = _log_mixtures(z, base.loc, base.scale, log_w)
    log_qz_x, log_pz = q.log_prob(z), prior.log_prob(z)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_qz_product, "dimwise_kl": log_qz_product - log_pz}


@dataclasses.dataclass(frozen=True)
class BetaTC:
    """β-TCVAE loss: −E_q log p(x|z) + α·MI + β·TC + γ·dimension-wise KL (Chen et al. 2018, eq. 4).

    One z per example; the mixtures use ``sampling`` (mws or mss) with N = ``dataset_size``
    training examples (0: the batch size). α = ``alpha``, β = ``beta`` (the total correlation's
    weight), γ = ``gamma``; α = β = γ = 1 is the VAE with a one-sample KL estimate. The training
    loop supplies only ``warmup`` w in [0, 1], the KL warm-up, which scales the whole KL penalty
    (w·(α·MI + β·TC + γ·dimension-wise KL)), as it scales β·KL in :class:`~vaekit.objectives.ELBO`.
    """

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    sampling: Literal["mws", "mss"] = "mws"
    dataset_size: int = 0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` with ``mi``, ``tc``, ``dimwise_kl``
        ``(batch,)`` nats; ``kl`` is the closed form."""
        out = forward(model, x, None)
        z, reconstruction = out.z, out.log_px
        n = max(self.dataset_size or len(x), len(x))
        terms = kl_decomposition_terms(out.q, z, model.prior(), n, self.sampling)
        alpha, beta, gamma = (warmup * w for w in (self.alpha, self.beta, self.gamma))
        penalty = alpha * terms["mi"] + beta * terms["tc"] + gamma * terms["dimwise_kl"]
        loss = -(reconstruction - penalty).mean()
        return _terms(loss, reconstruction, kl_to_prior(model, out.q, out.z), **terms)
