"""Binarization, shared by training (dynamic: a new draw per batch) and evaluation (one fixed draw).

(Data as a run's model sees it, and the validation split: :mod:`vaekit.data.splits`; feature
standardisation of tabular data: :mod:`vaekit.data.scaling`.)
"""

from __future__ import annotations

import torch

#: Seed of the fixed binarization of validation and test data (the same in every run).
EVAL_BINARIZE_SEED = 1234


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per value: x in [0, 1] -> {0, 1} with P(1) = x (dynamic/static binarization)."""
    return torch.bernoulli(x, generator=generator)
