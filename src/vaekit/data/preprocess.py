"""Preprocessing shared by training and evaluation: binarization and the validation split.

(Feature standardisation of tabular data is :mod:`vaekit.data.scaling`.)
"""

from __future__ import annotations

import torch

#: Seed of the fixed binarization of validation and test data (the same in every run).
EVAL_BINARIZE_SEED = 1234


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per value: x in [0, 1] -> {0, 1} with P(1) = x (dynamic/static binarization)."""
    return torch.bernoulli(x, generator=generator)


def prepare(x: torch.Tensor, mode: str, training: bool = False) -> torch.Tensor:
    """Data as the model sees it, for a resolved binarize ``mode`` (none, static, dynamic):
    evaluation data are binarized once with a fixed seed when static or dynamic; training data only
    when static (dynamic draws anew per batch, in the training loop)."""
    if mode == "none" or (training and mode == "dynamic"):
        return x
    return binarize(x, torch.Generator().manual_seed(EVAL_BINARIZE_SEED + (0 if training else 1)))


def split_validation(x: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` ``(N, ...)`` into (train, validation) with ``val_fraction`` of N, seeded by ``seed``."""
    n_val = int(round(val_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[n_val:]], x[order[:n_val]]
