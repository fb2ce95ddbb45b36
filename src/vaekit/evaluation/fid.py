"""Fréchet distance of samples to test data in the feature space of a small CNN classifier.

This is **not** the Inception FID of Heusel et al. (2017): the features are the penultimate
layer (128 units) of a small CNN trained here on the dataset's own labels (one softmax head per
label), so the numbers are comparable between models on the same dataset and classifier only,
never with published FIDs. The distance itself is the formula of Heusel et al., eq. 6,
‖m₁ − m₂‖² + Tr(C₁ + C₂ − 2(C₁C₂)^½), with the matrix square root from ``scipy.linalg.sqrtm``
as in the reference implementation pytorch-fid (``calculate_frechet_distance``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

FEATURES = 128


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, eq. 6).

    As pytorch-fid: when the product of covariances is singular, ``eps`` is added to both
    diagonals; a negligible imaginary part of the square root (numerical error) is dropped.

    Raises:
        ValueError: mismatching shapes, or a square root with a large imaginary part.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mean and covariance shapes differ: {mu1.shape}/{mu2.shape}, {sigma1.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products (dead features) are handled below, as in pytorch-fid
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in the matrix square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FeatureNet(nn.Module):
    """Two 3x3 conv layers (32, 64 channels; the second stride 2), a dense layer of
    :data:`FEATURES` units (the features) and one linear head per label."""

    def __init__(self, data_shape, num_classes: dict[str, int]):
        super().__init__()
        c, h, w = data_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * 16, FEATURES),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(FEATURES, k) for name, k in num_classes.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, FEATURES)`` penultimate activations of images ``(batch, C, H, W)``."""
        return self.body(x)


def fit_feature_net(
    x: torch.Tensor,
    labels: dict[str, torch.Tensor],
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> FeatureNet:
    """Train a :class:`FeatureNet` on images ``x`` ``(N, C, H, W)`` to predict every label (sum of
    cross-entropies). Returns it in eval mode.

    Raises:
        ValueError: non-image data or no labels.
    """
    if x.dim() != 4 or not labels:
        raise ValueError(
            f"the FID feature net needs labelled images (N, C, H, W), got {tuple(x.shape)} with labels {list(labels)}"
        )
    torch.manual_seed(seed)
    net = FeatureNet(x.shape[1:], {k: int(v.max()) + 1 for k, v in labels.items()})
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            h = net.features(x[idx])
            loss = sum(F.cross_entropy(head(h), labels[k][idx]) for k, head in net.heads.items())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def feature_statistics(net: FeatureNet, x: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(FEATURES,)`` and covariance ``(FEATURES, FEATURES)`` of the features of ``x``."""
    feats = torch.cat([net.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).double().numpy()
    return feats.mean(0), np.cov(feats, rowvar=False)


def fid(net: FeatureNet, real: torch.Tensor, generated: torch.Tensor) -> float:
    """Fréchet distance between the feature distributions of ``real`` and ``generated`` images
    (each ``(N, C, H, W)`` in [0, 1]); lower is better, 0 for identical statistics."""
    return frechet_distance(*feature_statistics(net, real.cpu()), *feature_statistics(net, generated.cpu()))
