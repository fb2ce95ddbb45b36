"""Losses with the coupling term C_ρ: AVAE, smooth encoders (SE), SE-AVAE and AVAE-SS.

C_ρ(x, x′) = E_{z~q(z|x)} KL(q(z′|x′) ‖ N(ρz, (1−ρ²)I)) (:func:`vaekit.distributions.coupling_kl`)
asks the encoder to map x′ close to where it maps x. The models differ only in which x′ they
pass: the decoder mean of the same z as the reconstruction (AVAE, Cemgil et al. NeurIPS 2020,
sec. 3), the worst point of an L∞ ball around x found by PGD (SE, Cemgil et al. ICLR 2020,
sec. 3), both (SE-AVAE), or — with no data at all — the decoder mean of a prior draw (AVAE-SS).
Each is an objective object returning :class:`~vaekit.objectives.terms.LossTerms`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch

from ..attacks import pgd
from ..distributions import Deterministic, coupling_kl, diagonal_normal, sample_prior
from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior


def _detached(q):
    """A copy of the diagonal Gaussian ``q`` with no gradient path (a constant target)."""
    return diagonal_normal(q.mean.detach(), q.stddev.detach())


def _encode_many(model, x: torch.Tensor):
    """q(z|x) for inputs ``(*lead, *data_shape)`` of any leading shape, batch shape ``lead``."""
    lead = x.shape[: x.dim() - len(model.data_shape)]
    q = model.encode(x.reshape(-1, *model.data_shape))
    return diagonal_normal(q.mean.reshape(*lead, -1), q.stddev.reshape(*lead, -1))


def smooth_point(model, x: torch.Tensor, q, rho: float, epsilon: float, num_steps: int) -> torch.Tensor:
    """x_b = argmax over ‖x_b − x‖∞ ≤ ε of C_ρ(x, x_b), by ``num_steps`` PGD steps.

    The ball is ``epsilon`` in data units ([0, 1] pixel units for images); data in [0, 1]
    stay clipped to [0, 1] (other data, e.g. standardised features, are not clipped); the start
    is random and the step 2.5ε/num_steps (Cemgil et al., ICLR 2020, sec. 3 and alg. 1).
    ``q`` (q(z|x)) is held fixed. Returns a detached ``(batch, *data_shape)`` tensor.
    """
    target = _detached(q)
    clip = (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else None
    return pgd(
        lambda xb: coupling_kl(target, model.encode(xb), rho),
        x,
        epsilon,
        num_steps=num_steps,
        keep_best=False,
        clip=clip,
    )


@dataclasses.dataclass(frozen=True)
class Coupling:
    """−ELBO (``beta``-weighted KL, ``num_samples`` draws) plus coupling terms C_ρ (weight 1, as in
    both papers); the loop's ``warmup`` w in [0, 1] scales the KL weight to w·β, not C_ρ.

    ``avae``: C_ρ(x, x̃), x̃ = stop_grad(g(z)) with the same z as the reconstruction (Cemgil et
    al. 2020, eq. 9; the official JAX code reuses the random key to the same effect). That code
    draws z = μ + ε·σ² (the variance); here z = μ + ε·σ (the standard deviation), as the paper
    states. ``aux="sample"`` encodes a draw x̃ ~ p(x|z) instead of the decoder mean.
    ``smooth``: C_ρ(x, x_b) with x_b from :func:`smooth_point` in the ``epsilon`` ball
    (``num_steps`` PGD steps), a constant for the update (Cemgil et al., ICLR 2020, eq. 6).
    AVAE = ``Coupling(rho)``, SE = ``Coupling(rho, avae=False, smooth=True)``, SE-AVAE = both.
    """

    rho: float = 0.975
    avae: bool = True
    smooth: bool = False
    epsilon: float = 0.1
    num_steps: int = 5
    num_samples: int = 1
    aux: Literal["mean", "sample"] = "mean"
    beta: float = 1.0

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` with ``coupling`` ``(batch,)`` nats."""
        out = forward(model, x, self.num_samples)
        reconstruction, kl = out.log_px.mean(0), kl_to_prior(model, out.q, out.z)
        coupling = torch.zeros_like(kl)
        if self.avae:
            aux = out.px.mean if self.aux == "mean" else out.px.sample()
            coupling = coupling + coupling_kl(out.q, _encode_many(model, aux.detach()), self.rho).mean(0)
        if self.smooth:
            xb = smooth_point(model, x, out.q, self.rho, self.epsilon, self.num_steps)
            coupling = coupling + coupling_kl(out.q, model.encode(xb), self.rho)
        loss = (-(reconstruction - self.beta * warmup * kl) + coupling).mean()
        return _terms(loss, reconstruction, kl, coupling=coupling)


@dataclasses.dataclass(frozen=True)
class SelfSupervised:
    """AVAE-SS: refine the encoder of a trained VAE on data the model generates itself.

    z ~ p(z), x̃ = stop_grad(g(z)); the loss is KL(q(z′|x̃) ‖ N(ρz, (1−ρ²)I)), the AVAE coupling
    term with the data distribution replaced by the model's own (z, g(z)) pairs (Cemgil et al.
    2020, sec. 5, "AVAE-SS"). ``x`` is used only for its batch size: no training data enter the
    loss, and the decoder receives no gradient (it stays as trained). The logged ELBO terms are
    those of the generated x̃, so validation reports the ELBO of the data from a separate pass
    (``scores_data`` is False); there is no KL weight and ``warmup`` is unused (the encoder is
    fitted to the coupling alone).
    """

    rho: float = 0.975
    #: the returned ELBO terms are not those of ``x`` (see :func:`vaekit.training.loop.validate`)
    scores_data: ClassVar[bool] = False

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` (its size only) -> :class:`LossTerms`."""
        z = sample_prior(model.prior(), len(x))  # z ~ p(z), the model's own prior
        with torch.no_grad():
            generated = model.decode(z).mean
        q = model.encode(generated)
        coupling = coupling_kl(Deterministic(z), q, self.rho)
        with torch.no_grad():
            reconstruction = model.decode(q.rsample()).log_prob(generated)
            kl = kl_to_prior(model, q)  # closed form, or Monte Carlo with its own draws
        return _terms(coupling.mean(), reconstruction, kl, coupling=coupling)
