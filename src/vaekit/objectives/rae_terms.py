"""The regularised autoencoder objectives RAE-L2 and RAE-GP (Ghosh et al. 2020, "From Variational
to Deterministic Autoencoders", ICLR, sec. 2.2, eq. 11)."""

from __future__ import annotations

import dataclasses

import torch

from .elbo import _terms
from .terms import LossTerms, forward, kl_to_prior


def decoder_l2(model) -> torch.Tensor:
    """‖θ‖²₂ summed over every decoder parameter (RAE-L2's L_REG, Ghosh et al. 2020, sec. 2.2). Scalar."""
    return sum(p.square().sum() for p in model.decoder.parameters())


def jacobian_norm(model, z: torch.Tensor) -> torch.Tensor:
    """Hutchinson's unbiased estimate of ‖∂g(z)/∂z‖²_F per example, ``(batch,)`` (RAE-GP's L_REG, the
    decoder's gradient penalty, Ghosh et al. 2020, sec. 2.2): E_v ‖vᵀJ‖² = tr(JJᵀ) for v ~ N(0, I)
    in data space, one vector–Jacobian product with ``create_graph`` so the penalty trains.
    ``g(z)`` is the decoder mean ``model.decode(z).mean``; ``z`` ``(batch, latent_dim)`` must
    require grad (it does when it comes from the encoder). Under ``torch.no_grad`` (validation) the
    value is computed with gradients on locally and returned detached."""
    if not torch.is_grad_enabled():
        with torch.enable_grad():
            return jacobian_norm(model, z.detach()).detach()
    if not z.requires_grad:
        z = z.detach().requires_grad_(True)
    mean = model.decode(z).mean
    v = torch.randn_like(mean)
    (grad,) = torch.autograd.grad((mean * v).sum(), z, create_graph=True)
    return grad.square().sum(-1)


#: RAE regulariser name -> L_REG(model, z): a scalar or ``(batch,)``.
REGULARISERS = {"l2": lambda model, z: decoder_l2(model), "gp": jacobian_norm}


@dataclasses.dataclass(frozen=True)
class RAELoss:
    """L_RAE = L_REC + β·L_Z + λ·L_REG (Ghosh et al. 2020, eq. 11), per batch: L_REC = −log p(x|z) for
    the deterministic code z = f(x) (the paper's squared error for a Gaussian head), L_Z = ½‖z‖²,
    L_REG the decoder's ‖θ‖² ("l2") or its Jacobian norm ("gp", :func:`jacobian_norm`).

    Raises:
        ValueError: an unknown regulariser.
    """

    embedding_weight: float = 1.0
    reg_weight: float = 1e-3
    regulariser: str = "l2"

    def __post_init__(self):
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"regulariser must be one of {', '.join(REGULARISERS)}, got {self.regulariser!r}")

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, None)
        code = 0.5 * out.z.square().sum(-1)
        reg = REGULARISERS[self.regulariser](model, out.z)
        loss = (self.embedding_weight * code - out.log_px).mean() + self.reg_weight * reg.mean()
        return _terms(loss, out.log_px, kl_to_prior(model, out.q, out.z))
