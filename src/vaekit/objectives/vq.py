"""The VQ-VAE objective (van den Oord et al. 2017, eq. 3 with the EMA codebook of appendix A.1) plus
the cross-entropy of its autoregressive code prior, in one loss whose parts reach disjoint parameters."""

from __future__ import annotations

import dataclasses

import torch

from .elbo import _terms
from .terms import LossTerms


@dataclasses.dataclass(frozen=True)
class VQLoss:
    """−log p(x|z_q) + β‖z_e − sg(z_q)‖² (eq. 3; the codebook term is replaced by the EMA update, made
    here in training mode) + the code prior's cross-entropy on the detached codes (nats per example)."""

    commitment: float = 0.25

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (``kl`` zero: a deterministic code)."""
        z_e = model._encoder_output(model.corrupt(x))
        codes, z_q = model.quantize(z_e)
        if model.training:
            model.update_codebook(z_e.detach(), codes)
            z_q = model.codebook[codes].reshape(z_e.shape)
        z = z_e + (z_q - z_e).detach()
        log_px = model.decode(z).log_prob(x)
        commit = (z_e - z_q.detach()).square().sum(-1)
        prior_nll = model.code_nll(codes)
        loss = (self.commitment * commit - log_px + prior_nll).mean()
        return _terms(loss, log_px, torch.zeros_like(log_px))
