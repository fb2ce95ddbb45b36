"""Losses with the coupling term C_ρ: AVAE, smooth encoders (SE), SE-AVAE and AVAE-SS.

C_ρ(x, x′) = E_{z~q(z|x)} KL(q(z′|x′) ‖ N(ρz, (1−ρ²)I)) (:func:`vaekit.distributions.coupling_kl`)
asks the encoder to map x′ close to where it maps x. The models differ only in which x′ they
pass: the decoder mean of the same z as the reconstruction (AVAE, Cemgil et al. NeurIPS 2020,
sec. 3), the worst point of an L∞ ball around x found by PGD (SE, Cemgil et al. ICLR 2020,
sec. 3), both (SE-AVAE), or — with no data at all — the decoder mean of a prior draw (AVAE-SS).
Each loss returns the dict :data:`vaekit.objectives.LOSSES` entries return.
"""

from __future__ import annotations

from functools import partial

import torch

from .attacks import pgd
from .distributions import Deterministic, coupling_kl, diagonal_normal


def _detached(q):
    """A copy of the diagonal Gaussian ``q`` with no gradient path (a constant target)."""
    return diagonal_normal(q.mean.detach(), q.stddev.detach())


def _encode_many(model, x: torch.Tensor):
    """q(z|x) for inputs ``(*lead, *data_shape)`` of any leading shape, batch shape ``lead``."""
    lead = x.shape[:x.dim() - len(model.data_shape)]
    q = model.encode(x.reshape(-1, *model.data_shape))
    return diagonal_normal(q.mean.reshape(*lead, -1), q.stddev.reshape(*lead, -1))


def smooth_point(model, x: torch.Tensor, q, config) -> torch.Tensor:
    """x_b = argmax over ‖x_b − x‖∞ ≤ ε of C_ρ(x, x_b), by ``config.num_steps`` PGD steps.

    The ball is ``config.epsilon`` in data units ([0, 1] pixel units for images); data in [0, 1]
    stay clipped to [0, 1] (other data, e.g. standardised features, are not clipped); the start
    is random and the step 2.5ε/num_steps (Cemgil et al., ICLR 2020, sec. 3 and alg. 1).
    ``q`` (q(z|x)) is held fixed. Returns a detached ``(batch, *data_shape)`` tensor.
    """
    target = _detached(q)
    clip = (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else None
    return pgd(lambda xb: coupling_kl(target, model.encode(xb), config.rho), x, config.epsilon,
               num_steps=config.num_steps, keep_best=False, clip=clip)


def coupling_loss(model, x: torch.Tensor, config, beta: float, terms: tuple[str, ...] = ("avae",)) -> dict:
    """−ELBO (β-weighted, ``config.num_samples`` draws) plus the coupling terms named in ``terms``.

    ``"avae"``: C_ρ(x, x̃), x̃ = stop_grad(g(z)) with the same z as the reconstruction (Cemgil et
    al. 2020, eq. 9; the official JAX code reuses the random key to the same effect). That code
    draws z = μ + ε·σ² (the variance); here z = μ + ε·σ (the standard deviation), as the paper states.
    With ``config.aux_sample`` x̃ is a draw from p(x|z) instead of its mean (for the Gaussian
    likelihood g(z) + scale·noise, not clipped), still a constant for the update.
    ``"se"``: C_ρ(x, x_b) with x_b from :func:`smooth_point`, a constant for the update.

    Args:
        model: a VAE; x: ``(batch, *data_shape)``; config: uses rho, epsilon, num_steps, num_samples.
        beta: weight of KL(q(z|x) ‖ p(z)); the coupling terms have weight 1, as in both papers.

    Returns:
        ``loss`` scalar (mean over the batch, to minimise); ``elbo``, ``reconstruction``, ``kl``,
        ``coupling`` ``(batch,)`` nats per example, detached.
    """
    from .objectives import kl_to_prior

    q = model.encode(model.corrupt(x))
    z = q.rsample((config.num_samples,))
    px = model.decode(z)
    reconstruction, kl = px.log_prob(x).mean(0), kl_to_prior(model, q)
    coupling = torch.zeros_like(kl)
    if "avae" in terms:
        x_tilde = px.sample() if getattr(config, "aux_sample", False) else px.mean.detach()
        coupling = coupling + coupling_kl(q, _encode_many(model, x_tilde), config.rho).mean(0)
    if "se" in terms:
        coupling = coupling + coupling_kl(q, model.encode(smooth_point(model, x, q, config)), config.rho)
    loss = -(reconstruction - beta * kl) + coupling
    reconstruction, kl = reconstruction.detach(), kl.detach()
    return {"loss": loss.mean(), "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
            "coupling": coupling.detach()}


def self_supervised_loss(model, x: torch.Tensor, config, beta: float) -> dict:
    """AVAE-SS: refine the encoder of a trained VAE on data the model generates itself.

    z ~ p(z), x̃ = stop_grad(g(z)); the loss is KL(q(z′|x̃) ‖ N(ρz, (1−ρ²)I)), the AVAE coupling
    term with the data distribution replaced by the model's own (z, g(z)) pairs (Cemgil et al.
    2020, sec. 5, "AVAE-SS"). ``x`` is used only for its batch size: no training data enter the
    loss, and the decoder receives no gradient (it stays as trained). The logged ELBO terms are
    those of the generated x̃.

    Returns:
        As :func:`coupling_loss` (``beta`` is unused: the encoder is fitted to the coupling alone).
    """
    from .objectives import kl_to_prior

    p = next(model.parameters())
    z = torch.randn(len(x), model.latent_dim, device=p.device, dtype=p.dtype)
    with torch.no_grad():
        generated = model.decode(z).mean
    q = model.encode(generated)
    coupling = coupling_kl(Deterministic(z), q, config.rho)
    with torch.no_grad():
        reconstruction = model.decode(q.rsample()).log_prob(generated)
        kl = kl_to_prior(model, q)
    return {"loss": coupling.mean(), "elbo": reconstruction - kl, "reconstruction": reconstruction,
            "kl": kl, "coupling": coupling.detach()}


#: model name -> loss, merged into :data:`vaekit.objectives.LOSSES`.
COUPLING_LOSSES = {
    "avae": partial(coupling_loss, terms=("avae",)),
    "se": partial(coupling_loss, terms=("se",)),
    "se-avae": partial(coupling_loss, terms=("avae", "se")),
    "avae-ss": self_supervised_loss,
}
