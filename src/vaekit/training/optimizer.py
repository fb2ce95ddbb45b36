"""The optimizer of a run: Adam, with torch's fused step by default (issue 32)."""

from __future__ import annotations

import torch
from torch import nn

from .lean_adam import LeanAdam


def build_optimizer(model: nn.Module, train) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with ``train``'s lr and weight decay
    (:class:`~vaekit.config.TrainConfig`).

    ``train.fused_optimizer``: torch's fused step (``fused=True``: one kernel updates every
    parameter, on CPU and CUDA since torch 2.4) without torch.optim's per-step Python
    (:class:`~vaekit.training.lean_adam.LeanAdam`: the same kernel and numbers), where torch has
    it for the parameters' device; elsewhere, and with ``fused_optimizer=False``, the foreach step
    (one kernel per state tensor kind). Both compute Adam (Kingma & Ba 2015, algorithm 1) and
    differ in rounding only. :func:`optimizer_kind` tells which one an optimizer uses.
    """
    params = list(model.parameters())
    settings = {"lr": train.lr, "weight_decay": train.weight_decay}
    if train.fused_optimizer:
        try:
            return LeanAdam(params, **settings)
        except RuntimeError:  # no fused kernel for this device or dtype (e.g. MPS on older torch)
            pass
    return torch.optim.Adam(params, foreach=True, **settings)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """``"fused"`` or ``"foreach"``: the step ``optimizer`` takes (from its parameter groups)."""
    return "fused" if optimizer.param_groups[0].get("fused") else "foreach"
