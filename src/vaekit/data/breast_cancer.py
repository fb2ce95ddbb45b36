"""The Wisconsin diagnostic breast-cancer table bundled with scikit-learn: a real tabular data set, offline."""

from __future__ import annotations

import torch

from .base import Dataset, fixed_split


def load(split: str = "train", **_options) -> Dataset:
    """scikit-learn's breast-cancer table (UCI WDBC; 569 tumours, 30 real-valued features).

    The features are the raw measurements (radius, texture, ... in their own units, not
    standardised: a tabular run standardises them with the training split's statistics).

    Args:
        split: "train" (455 rows) or "test" (114 rows) of a fixed, seeded 80/20 split stratified
            by diagnosis (:func:`vaekit.data.base.fixed_split`).

    Returns:
        Dataset named "breast-cancer" with ``x`` float32 ``(N, 30)``, ``labels = {"malignant": (N,)}``
        (1 = malignant, 0 = benign; scikit-learn's own target codes malignant as 0) and
        ``unit_interval`` False.

    Raises:
        ValueError: for an unknown split.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    malignant = (bunch.target == 0).astype("int64")  # sklearn: target_names = ['malignant', 'benign']
    index = fixed_split(len(malignant), split, stratify=malignant)
    x = torch.from_numpy(bunch.data[index]).float()
    return Dataset("breast-cancer", x, {"malignant": torch.from_numpy(malignant[index])}, unit_interval=False)
