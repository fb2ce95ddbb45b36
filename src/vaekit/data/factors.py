"""Datasets with ground-truth factors of variation on a full factor grid (dSprites and the like).

The disentanglement metrics need to draw observations for chosen factor values; a
:class:`FactorDataset` holds one image per cell of its factor grid and answers
:meth:`~FactorDataset.sample_factors` / :meth:`~FactorDataset.observations_from_factors`, the
interface of disentanglement_lib's ``GroundTruthData`` (Locatello et al. 2019).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import Dataset, fixed_split


@dataclasses.dataclass
class FactorDataset(Dataset):
    """A :class:`Dataset` split of a factor grid, plus the whole grid for the metrics.

    Attributes (beyond :class:`Dataset`'s):
        factor_names: names of the K factors, e.g. ``("shape", "scale", ...)``.
        factor_values: per factor, the value of each of its classes (e.g. radians, [0, 1] positions).
        grid_images: uint8 ``(G, C, H, W)`` in {0, 1}: one image per grid cell, G = Π factor sizes,
            cells in C order of the factor classes (the last factor varies fastest).
    """

    factor_names: tuple[str, ...] = ()
    factor_values: tuple[tuple[float, ...], ...] = ()
    grid_images: np.ndarray | None = None

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """Number of classes of each factor."""
        return tuple(len(v) for v in self.factor_values)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor draws, each class uniform and the factors independent: int64 ``(n, K)``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    def grid_index(self, factors) -> np.ndarray:
        """Grid cells of factor classes ``(n, K)``: int64 ``(n,)``.

        Raises:
            ValueError: factors of the wrong shape or outside the grid.
        """
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != len(self.factor_sizes):
            raise ValueError(f"factors must have shape (n, {len(self.factor_sizes)}), got {factors.shape}")
        if (factors < 0).any() or (factors >= np.array(self.factor_sizes)).any():
            raise ValueError(f"factor classes must lie in [0, size) for sizes {self.factor_sizes}")
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes)

    def observations_from_factors(self, factors) -> torch.Tensor:
        """Images of the given factor classes ``(n, K)``: float32 ``(n, C, H, W)`` in {0, 1}."""
        return torch.from_numpy(self.grid_images[self.grid_index(factors)]).float()


def grid_classes(sizes) -> np.ndarray:
    """Every cell of a factor grid in C order: int64 ``(Π sizes, K)``."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), tuple(sizes)), axis=1)


def factor_split(name: str, split: str, grid_images: np.ndarray, factor_names, factor_values) -> FactorDataset:
    """The fixed, seeded 80/20 ``split`` of a grid of images (see :func:`vaekit.data.base.fixed_split`).

    Args:
        grid_images: uint8 ``(G, C, H, W)``, one image per cell in C order of the factor classes.
        factor_names, factor_values: as in :class:`FactorDataset`.
    """
    sizes = tuple(len(v) for v in factor_values)
    if len(grid_images) != int(np.prod(sizes)):
        raise ValueError(f"{len(grid_images)} images do not fill a factor grid of sizes {sizes}")
    index = fixed_split(len(grid_images), split)
    classes = grid_classes(sizes)[index]
    labels = {key: torch.from_numpy(classes[:, k]).long() for k, key in enumerate(factor_names)}
    return FactorDataset(
        name,
        torch.from_numpy(grid_images[index]).float(),
        labels,
        True,
        tuple(factor_names),
        tuple(tuple(map(float, v)) for v in factor_values),
        grid_images,
    )
