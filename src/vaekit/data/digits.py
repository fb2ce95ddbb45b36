"""The handwritten digits bundled with scikit-learn: 1,797 real 8x8 grey images, offline."""

from __future__ import annotations

import torch

from .base import Dataset, fixed_split


def load(split: str = "train", **_options) -> Dataset:
    """The scikit-learn digits (UCI optical digits), 8x8 images scaled from 0..16 to [0, 1].

    Args:
        split: "train" (1,437 images) or "test" (360 images) of a fixed, stratified, seeded
            80/20 split; the test split is held out from every training run.

    Returns:
        Dataset with ``x`` of shape ``(N, 1, 8, 8)`` in [0, 1] and ``labels = {"digit": (N,)}``.

    Raises:
        ValueError: for an unknown split.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = fixed_split(len(bunch.target), split, stratify=bunch.target)
    x = torch.from_numpy(bunch.images[index] / 16.0).float().unsqueeze(1)
    y = torch.from_numpy(bunch.target[index]).long()
    return Dataset("digits", x, {"digit": y})
