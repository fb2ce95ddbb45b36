"""The discriminators adversarial models keep inside themselves (FactorVAE, the adversarial AE), and
how one loss with one optimizer trains them: the generator's term calls the discriminator with
detached parameters (:func:`call_detached`), the discriminator's term sees detached inputs."""

from __future__ import annotations

import torch
from torch import nn


def check_hidden(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of widths. Raises ValueError if it is not a non-empty list of positive integers."""
    if (
        not isinstance(hidden, (list, tuple))
        or not hidden
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise ValueError(f"disc_hidden must be a non-empty list of positive integers, got {hidden!r}")
    return tuple(hidden)


def mlp_discriminator(in_features: int, hidden) -> nn.Sequential:
    """An MLP ``(batch, in_features) -> (batch, 1)`` logits with leaky-ReLU (0.2) hidden layers."""
    layers, width = [], in_features
    for h in check_hidden(hidden):
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


def call_detached(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with its parameters detached (``torch.func.functional_call``): the gradient reaches
    ``x`` (the generator) and never the module."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))
