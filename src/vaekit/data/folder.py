"""A folder of image files read from disk on demand (e.g. CelebA), for data that do not fit in memory.

Unlike the other loaders, which return an in-memory :class:`~vaekit.data.base.Dataset`,
:class:`ImageFolder` is a map-style ``torch.utils.data.Dataset``: :func:`vaekit.training.fit`
batches it through a DataLoader with ``num_workers`` worker processes that decode the images in
parallel, with pinned memory on CUDA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import fixed_split

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolder(torch.utils.data.Dataset):
    """Images under ``root`` (searched recursively), centre-cropped to a square and resized.

    Args:
        root: folder of image files (for CelebA: ``img_align_celeba/``).
        split: "train" or "test" part of a fixed, seeded 80/20 split of the sorted file list
            (:func:`vaekit.data.base.fixed_split`), or "all".
        image_size: side of the square images returned, in pixels (64 for CelebA in the VAE
            literature).
        channels: 3 (RGB) or 1 (grey).
        crop: side of the centre crop taken before resizing (CelebA: 140 or 148, which keeps the
            face); None = the largest centred square.

    ``dataset[i]`` is a float32 tensor ``(channels, image_size, image_size)`` with values in
    [0, 1]; ``data_shape`` and ``unit_interval`` describe it as the in-memory datasets do.

    Raises:
        FileNotFoundError: ``root`` is not a folder or holds no image files.
        ValueError: bad ``split``, ``image_size``, ``channels`` or ``crop``.
    """

    unit_interval = True

    def __init__(self, root, split: str = "train", image_size: int = 64, channels: int = 3, crop: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if image_size < 1 or (crop is not None and crop < 1):
            raise ValueError(f"image_size and crop must be positive, got {image_size} and {crop}")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"{root} holds no image files ({', '.join(SUFFIXES)})")
        if split != "all":
            files = [files[i] for i in fixed_split(len(files), split)]
        self.name, self.files = root.name, files
        self.image_size, self.channels, self.crop = image_size, channels, crop
        self.labels: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.files)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """``(channels, image_size, image_size)``."""
        return (self.channels, self.image_size, self.image_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as ``(channels, image_size, image_size)`` float32 in [0, 1]."""
        from PIL import Image

        with Image.open(self.files[index]) as image:
            image = image.convert("RGB" if self.channels == 3 else "L")
            w, h = image.size
            side = min(w, h) if self.crop is None else min(self.crop, w, h)
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array))


def load(split: str = "train", path=None, image_size: int | None = None, **_options) -> ImageFolder:
    """Registry loader of ``--data image-folder --path DIR``: an :class:`ImageFolder` (read lazily).

    Raises:
        ValueError: no ``path`` (pass --path DIR).
    """
    if path is None:
        raise ValueError("the 'image-folder' dataset reads your own images: pass --path FOLDER")
    return ImageFolder(path, split, image_size=image_size or 64)


def materialize(dataset, num_workers: int = 0, batch_size: int = 256) -> torch.Tensor:
    """All examples of a lazily read ``dataset`` in one tensor ``(N, *data_shape)``, read in
    batches by ``num_workers`` worker processes (for validation and test sets)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    return torch.cat(list(loader))
