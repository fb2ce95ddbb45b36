"""Aligned CelebA faces from a user folder, centre-cropped and resized to 64x64, with 40 attributes.

Put ``list_attr_celeba.txt`` and the aligned JPEGs (``img_align_celeba/*.jpg``, or the images
directly in the folder) in ``<data_dir>/celeba`` or pass the folder as ``--path``. The official
``list_eval_partition.txt`` (0 train, 1 validation, 2 test) defines the split when present
(validation counts as train here); otherwise a fixed, seeded 80/20 split is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import Dataset, check_split, fixed_split

ATTRIBUTES_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
#: Side of the square centre crop of the 178x218 aligned images (as in most CelebA-64 VAE work).
CROP = 148
SIZE = 64


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (file names, attribute names, int64 (N, A) in {0, 1}).

    The file holds the count, a line of attribute names, then ``name v1 ... vA`` rows with
    values -1/1 (mapped to 0/1).

    Raises:
        ValueError: a malformed file (the message names the line).
    """
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path} is not a CelebA attribute file: expected a count line and a header line")
    names = lines[1]
    files, rows = [], []
    for number, row in enumerate(lines[2:], start=3):
        if len(row) != len(names) + 1:
            raise ValueError(
                f"{path} line {number}: expected a file name and {len(names)} values, got {len(row)} fields"
            )
        files.append(row[0])
        rows.append(row[1:])
    try:
        values = np.asarray(rows, dtype=np.int64)
    except ValueError as error:
        raise ValueError(f"{path}: attribute values must be -1 or 1 ({error})") from None
    return files, names, (values > 0).astype(np.int64)


def load_image(path: Path) -> np.ndarray:
    """One image: centre crop :data:`CROP` (or the shorter side), resize to :data:`SIZE`, ``(3, 64, 64)`` in [0, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        side = min(CROP, w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BILINEAR)
        return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0


def load(split: str = "train", data_dir="data", path=None, **_options) -> Dataset:
    """CelebA split as a Dataset: ``x`` ``(N, 3, 64, 64)`` in [0, 1], 40 labels (0/1) named as in the file.

    Memory: float32, 49 KB per image (the full 202,599 images take ≈ 10 GB); use a subset folder
    on small machines (only the images listed in the attribute file and present are read).

    Raises:
        FileNotFoundError: no attribute file, or an image it lists is missing (named).
        ValueError: malformed attribute or partition file.
    """
    check_split(split)
    folder = Path(path) if path is not None else Path(data_dir) / "celeba"
    attr_path = folder / ATTRIBUTES_FILE
    if not attr_path.is_file():
        raise FileNotFoundError(
            f"{attr_path} not found: put list_attr_celeba.txt and img_align_celeba/ of aligned CelebA in {folder} "
            "(or pass --path FOLDER); CelebA cannot be downloaded automatically"
        )
    files, names, values = read_attributes(attr_path)
    images = folder / "img_align_celeba" if (folder / "img_align_celeba").is_dir() else folder
    partition = folder / PARTITION_FILE
    if partition.is_file():
        part = dict(line.split()[:2] for line in partition.read_text().splitlines() if line.strip())
        wanted = ("0", "1") if split == "train" else ("2",)
        index = np.array([i for i, f in enumerate(files) if part.get(f) in wanted], dtype=np.int64)
    else:
        index = fixed_split(len(files), split)
    missing = [files[i] for i in index if not (images / files[i]).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} CelebA image(s) listed in {attr_path.name} are missing from {images}, e.g. {missing[0]}"
        )
    x = (
        torch.from_numpy(np.stack([load_image(images / files[i]) for i in index]))
        if len(index)
        else torch.zeros(0, 3, SIZE, SIZE)
    )
    labels = {name: torch.from_numpy(values[index, j]) for j, name in enumerate(names)}
    return Dataset("celeba", x, labels)
