"""The handwritten digits bundled with scikit-learn: 1,797 real 8x8 grey images, offline."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
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
    images, target = read_digits()
    index = fixed_split(len(target), split, stratify=target)
    x = torch.from_numpy(images[index] / 16.0).float().unsqueeze(1)
    y = torch.from_numpy(target[index]).long()
    return Dataset("digits", x, {"digit": y})


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) in 0..16, target (1797,))``: scikit-learn's ``load_digits`` data,
    read from its bundled ``digits.csv.gz`` without importing scikit-learn (whose import, with
    SciPy's, took longer than the rest of ``vaekit train``'s start); ``load_digits`` where the
    file is not found."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
