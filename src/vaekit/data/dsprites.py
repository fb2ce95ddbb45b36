"""dSprites (Matthey et al. 2017; Higgins et al. 2017): binary 64x64 sprites on a full grid of
5 factors, from the official file or from a deterministic procedural generator.

Factors and their classes (the official ``latents_classes`` columns after ``color``):
``shape`` 3 (square, ellipse, heart), ``scale`` 6 (linspace(0.5, 1, 6)), ``orientation`` 40
(linspace(0, 2π, 40) radians), ``pos_x`` 32 and ``pos_y`` 32 (linspace(0, 1, 32)). Row r of the
official file holds the image with classes c where r = c · (737280, 245760, 40960, 1024, 32, 1).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .factors import FactorDataset, factor_split, grid_classes

FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = "https://github.com/deepmind/dsprites-dataset"
NUM_IMAGES = 737_280
#: Strides of the official latents_classes columns (color, shape, scale, orientation, pos_x, pos_y).
STRIDES = np.array([737280, 245760, 40960, 1024, 32, 1])
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_VALUES = (
    np.arange(3.0),
    np.linspace(0.5, 1, 6),
    np.linspace(0, 2 * np.pi, 40),
    np.linspace(0, 1, 32),
    np.linspace(0, 1, 32),
)
#: Factors thinned by ``grid_step``.
STEPPED = ("orientation", "pos_x", "pos_y")
NATIVE_SIZE = 64
#: Generator geometry, in units of the image side: sprite half-size at scale 1, and the margin
#: between the image border and the sprite centre at position 0 or 1.
HALF_SIZE, MARGIN = 0.15, 0.22
_RENDER_CHUNK = 256


def grid(grid_step: int = 1) -> list[np.ndarray]:
    """Kept classes of each factor: every ``grid_step``-th orientation, pos_x, pos_y; all others."""
    if not isinstance(grid_step, int) or grid_step < 1:
        raise ValueError(f"grid_step must be a positive integer, got {grid_step!r}")
    return [np.arange(len(v))[:: grid_step if name in STEPPED else 1] for name, v in zip(FACTOR_NAMES, FACTOR_VALUES)]


def _check_size(image_size) -> int:
    size = NATIVE_SIZE if image_size is None else image_size
    if not isinstance(size, int) or size < 4 or NATIVE_SIZE % size:
        raise ValueError(f"image_size must divide 64 (64, 32, 16, 8, 4), got {image_size!r}")
    return size


def render(values: np.ndarray, image_size: int = NATIVE_SIZE) -> np.ndarray:
    """Draw sprites from factor values: a pixel is on when its centre lies inside the shape.

    Args:
        values: ``(n, 5)`` float: shape id (0 square, 1 ellipse, 2 heart), scale (0.5-1),
            orientation (radians), pos_x and pos_y in [0, 1].
        image_size: side of the square images.

    Returns:
        uint8 ``(n, image_size, image_size)`` in {0, 1}; a deterministic function of ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 5:
        raise ValueError(f"values must have shape (n, 5), got {values.shape}")
    centres = ((np.arange(image_size) + 0.5) / image_size).astype(np.float32)
    out = np.zeros((len(values), image_size, image_size), dtype=np.uint8)
    for shape, inside in enumerate(_SHAPES):
        rows = np.flatnonzero(values[:, 0] == shape)
        for start in range(0, len(rows), _RENDER_CHUNK):
            chunk = rows[start : start + _RENDER_CHUNK]
            v = values[chunk, :, None, None].astype(np.float32)
            radius = HALF_SIZE * v[:, 1]
            cos, sin = np.cos(v[:, 2]) / radius, np.sin(v[:, 2]) / radius
            dx = centres[None, None, :] - (MARGIN + v[:, 3] * (1 - 2 * MARGIN))
            dy = centres[None, :, None] - (MARGIN + v[:, 4] * (1 - 2 * MARGIN))
            out[chunk] = inside(cos * dx + sin * dy, cos * dy - sin * dx)
    return out


def _square(u, w):
    return np.maximum(np.abs(u), np.abs(w)) <= 1


def _ellipse(u, w):
    return u * u + 4 * w * w <= 1


def _heart(u, w):
    """Inside of the heart curve (x² + y² − 1)³ − x² y³ ≤ 0, upright and centred."""
    x, y = 1.15 * u, 0.1 - 1.15 * w
    x2, r = x * x, x * x + y * y - 1
    return r * r * r <= x2 * y * y * y


#: Shape class -> inside test on rotated, scaled sprite coordinates (u, w).
_SHAPES = (_square, _ellipse, _heart)


def _pool(images: np.ndarray, size: int) -> np.ndarray:
    """Binary ``(n, 64, 64)`` -> ``(n, size, size)``: a pixel is on when most of its block is."""
    k = NATIVE_SIZE // size
    if k == 1:
        return images
    blocks = images.reshape(len(images), size, k, size, k).mean(axis=(2, 4))
    return (blocks >= 0.5).astype(np.uint8)


def _dataset(name: str, split: str, images: np.ndarray, kept) -> FactorDataset:
    values = [FACTOR_VALUES[k][kept[k]] for k in range(len(FACTOR_NAMES))]
    return factor_split(name, split, images[:, None], FACTOR_NAMES, values)


def load_synthetic(
    split: str = "train", image_size: int | None = None, grid_step: int = 1, **_options
) -> FactorDataset:
    """``dsprites-synthetic``: the dSprites factor grid drawn by :func:`render` (no file needed).

    Args:
        split: "train" or "test" of a fixed, seeded 80/20 split of the grid cells.
        image_size: side of the images (64 native; 32 or 16 for CPU budgets).
        grid_step: keep every ``grid_step``-th orientation, pos_x and pos_y class.

    Returns:
        :class:`~vaekit.data.factors.FactorDataset`, ``x`` ``(N, 1, S, S)`` in {0, 1}, labels
        the 5 factor classes (indices into the kept classes).
    """
    size, kept = _check_size(image_size), grid(grid_step)
    return _dataset("dsprites-synthetic", split, _synthetic_grid(size, grid_step), kept)


@functools.lru_cache(maxsize=2)
def _synthetic_grid(size: int, grid_step: int) -> np.ndarray:
    """Every image of the thinned grid, rendered once per process (train and test splits share it)."""
    kept = grid(grid_step)
    classes = grid_classes([len(k) for k in kept])
    values = np.stack([FACTOR_VALUES[j][kept[j][classes[:, j]]] for j in range(len(kept))], axis=1)
    images = render(values, size)
    images.flags.writeable = False
    return images


def load(
    split: str = "train", data_dir: str | Path = "data", image_size: int | None = None, grid_step: int = 1, **_options
) -> FactorDataset:
    """``dsprites``: the official file ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` in ``data_dir``.

    Only the ``imgs`` and ``latents_classes`` arrays are read (``allow_pickle=False``: the file's
    pickled ``metadata`` is never loaded). Arguments as :func:`load_synthetic`; images are reduced
    to ``image_size`` by majority over pixel blocks. The full grid needs ~3 GB as uint8 and
    ~12 GB as the float32 training tensor; ``grid_step`` thins it.

    Raises:
        FileNotFoundError: the file is not in ``data_dir`` (no automatic download).
        ValueError: the file lacks the arrays, or cells of the requested grid.
    """
    size = _check_size(image_size)
    path = Path(data_dir) / FILENAME
    if not path.is_file():
        raise FileNotFoundError(
            f"dSprites needs {FILENAME} in {Path(data_dir).resolve()} (no automatic download): get it from "
            f"{URL} and pass --data-dir, or use --data dsprites-synthetic"
        )
    with np.load(path, allow_pickle=False) as archive:
        if not {"imgs", "latents_classes"} <= set(archive.files):
            raise ValueError(f"{path} has arrays {archive.files}; expected 'imgs' and 'latents_classes'")
        images, classes = archive["imgs"], archive["latents_classes"]
    if images.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE) or classes.shape != (len(images), 6):
        raise ValueError(
            f"{path}: imgs {images.shape} and latents_classes {classes.shape}; "
            f"expected ({NUM_IMAGES}, 64, 64) and ({NUM_IMAGES}, 6)"
        )
    rows = np.full(NUM_IMAGES, -1, dtype=np.int64)
    rows[classes @ STRIDES] = np.arange(len(classes))
    kept = grid(grid_step)
    cells = grid_classes([len(k) for k in kept])
    original = np.stack([kept[j][cells[:, j]] for j in range(len(kept))], axis=1)
    wanted = rows[original @ STRIDES[1:]]
    if (wanted < 0).any():
        raise ValueError(
            f"{path} has {len(images)} images and lacks {int((wanted < 0).sum())} cells of the "
            f"requested factor grid (grid_step={grid_step}); the official file has {NUM_IMAGES:,}"
        )
    return _dataset("dsprites", split, _pool(images[wanted].astype(np.uint8), size), kept)
