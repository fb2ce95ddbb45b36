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

import math

import torch
from torch.distributions import Normal, kl_divergence

from .models import given

#: Examples of the validation (or training) set on which the training loop logs the decomposition.
DIAGNOSTIC_POINTS = 1000
#: Rows of the (M, M, latent_dim) density matrix computed at once.
_ROW_CHUNK = 256


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
    for start in range(0, len(z), _ROW_CHUNK):
        rows = slice(start, start + _ROW_CHUNK)
        log_q = Normal(loc.unsqueeze(0), scale.unsqueeze(0)).log_prob(z[rows].unsqueeze(1))  # (m, M, D)
        weights = log_w[rows].unsqueeze(-1)
        joint.append(torch.logsumexp(log_q.sum(-1) + log_w[rows], dim=1))
        marginal.append(torch.logsumexp(log_q + weights, dim=1).sum(-1))
    return torch.cat(joint), torch.cat(marginal)


def kl_decomposition_terms(q, z: torch.Tensor, prior, dataset_size: int, sampling: str = "mss") -> dict[str, torch.Tensor]:
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


def betatc_loss(model, x: torch.Tensor, config, beta: float) -> dict[str, torch.Tensor]:
    """β-TCVAE loss: −E_q log p(x|z) + α·MI + β·TC + γ·dimension-wise KL (Chen et al. 2018, eq. 4).

    One z per example; the mixtures use ``config.tc_sampling`` and N = ``config.dataset_size``
    (the training loop fills it with the number of training examples), or the batch size when N
    is 0. α = ``config.alpha``, γ = ``config.gamma``, β = ``beta`` (``config.beta`` after warm-up).
    α = β = γ = 1 is the VAE with a one-sample KL estimate.

    Returns:
        ``loss``: scalar, averaged over the batch; ``elbo``, ``reconstruction``, ``kl``
        (closed form) and ``mi``, ``tc``, ``dimwise_kl``: ``(batch,)`` nats, detached.
    """
    q = model.encode(model.corrupt(x))
    z = q.rsample()
    reconstruction = model.decode(z).log_prob(x)
    n = config.dataset_size or len(x)
    terms = kl_decomposition_terms(q, z, model.prior(), max(n, len(x)), config.tc_sampling)
    penalty = config.alpha * terms["mi"] + beta * terms["tc"] + config.gamma * terms["dimwise_kl"]
    kl = kl_divergence(q, model.prior()).detach()
    loss = -(reconstruction - penalty).mean()
    reconstruction = reconstruction.detach()
    return {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
            **{k: v.detach() for k, v in terms.items()}}


def kl_per_dim(q) -> torch.Tensor:
    """KL(q(z_d|x) ‖ N(0, 1)) per dimension in closed form, ``(batch, latent_dim)`` nats."""
    base = q.base_dist
    return kl_divergence(base, Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale)))


@torch.no_grad()
def kl_decomposition(model, x: torch.Tensor, seed: int = 0, batch_size: int = 500, labels=None) -> dict:
    """The KL decomposition over the data set ``x`` ``(M, *data_shape)``, with q(z) the exact mixture
    of the M posteriors (stratified weights with N = M), one z per example drawn with ``seed``.
    ``labels`` ``(M,)``: the conditions of a conditional model (q(z|x, c)).

    Returns:
        ``kl_mi``, ``kl_tc``, ``kl_dimwise``: nats per example (averaged over the M examples);
        ``kl_mc``: their sum, the one-sample Monte Carlo KL; ``kl``: the closed-form KL averaged
        over the examples; ``kl_per_dim``: list of closed-form KL per latent dimension, nats per
        example. The MI estimate is at most log M.

    Raises:
        ValueError: for a deterministic model (no posterior).
    """
    if not model.stochastic:
        raise ValueError("the KL decomposition needs a VAE (a stochastic encoder); got a deterministic AE")
    was_training = model.training
    model.eval()
    locs, scales = [], []
    for start in range(0, len(x), batch_size):
        c = None if labels is None else labels[start:start + batch_size]
        base = given(model, c).encode(x[start:start + batch_size]).base_dist
        locs.append(base.loc)
        scales.append(base.scale)
    model.train(was_training)
    loc, scale = torch.cat(locs), torch.cat(scales)
    generator = torch.Generator(device=loc.device).manual_seed(seed)
    z = loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    q = torch.distributions.Independent(Normal(loc, scale), 1)
    terms = kl_decomposition_terms(q, z, model.prior(), len(x), "mss")
    means = {key: value.mean().item() for key, value in terms.items()}
    per_dim = kl_per_dim(q).mean(0)
    return {"kl_mi": means["mi"], "kl_tc": means["tc"], "kl_dimwise": means["dimwise_kl"],
            "kl_mc": sum(means.values()), "kl": per_dim.sum().item(), "kl_per_dim": per_dim.tolist()}
