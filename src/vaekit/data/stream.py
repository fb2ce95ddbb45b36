"""A ``.npy`` file larger than memory, memory-mapped and read a batch at a time (``--data npy-stream``).

:class:`NpyStream` is a map-style ``torch.utils.data.Dataset`` over ``numpy.load(path,
mmap_mode="r")``: nothing is read until a batch asks for its rows, so a training set far larger
than memory streams from disk through :func:`vaekit.training.fit`'s DataLoader with
``--num-workers`` worker processes (each maps the file itself; the page cache is shared). A batch
is read with one fancy index on the mapped array (``__getitems__``, sorted rows), not row by row.
Measured in benchmarks/streaming.py against the in-memory path (docs/scale-and-speed.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import fixed_split

#: Rows scanned at a time when checking a float file (values in [0, 1]? finite?).
SCAN_ROWS = 4096


class NpyStream(torch.utils.data.Dataset):
    """Rows of a ``.npy`` file, memory-mapped, for the part ``split`` of a fixed 80/20 split.

    Args:
        path: a ``.npy`` file of shape ``(N, D)`` rows, ``(N, H, W)`` grey images or ``(N, C, H, W)``
            images with C = 1 or 3; uint8 images are scaled by 1/255 to [0, 1].
        split: "train" or "test" (:func:`vaekit.data.base.fixed_split`, as ``--data array``), or "all".

    ``dataset[i]`` is float32 ``data_shape``; ``unit_interval`` is True when every value lies in
    [0, 1] (uint8 files always; float files are scanned once, :data:`SCAN_ROWS` rows at a time).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a ``.npy`` file of numbers, an object array (never unpickled), another
            shape, fewer than 2 rows, or NaN/Inf values (the message names the file).
    """

    def __init__(self, path, split: str = "train"):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
        if path.suffix.lower() != ".npy":
            raise ValueError(
                f"{path}: --data npy-stream reads one .npy file (numpy.save); for .npz or .csv use --data array"
            )
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path} is not a .npy file vaekit can map ({e}); write it with numpy.save") from None
        if not (np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)):
            raise ValueError(f"{path} holds {array.dtype} values; store real numbers (uint8 images or floats)")
        if array.ndim not in (2, 3, 4) or 0 in array.shape or (array.ndim == 4 and array.shape[1] not in (1, 3)):
            raise ValueError(
                f"{path}: shape {array.shape}; expected (N, D) rows, (N, H, W) grey images or "
                "(N, C, H, W) images with C = 1 or 3 and no axis of size 0"
            )
        if len(array) < 2:
            raise ValueError(f"{path} has {len(array)} row(s); the 80/20 train/test split needs at least 2")
        self.path, self.array, self.name = path, array, path.stem
        self.index = np.arange(len(array)) if split == "all" else fixed_split(len(array), split)
        self.scale = 1 / 255 if array.dtype == np.uint8 else None
        self.labels: dict[str, torch.Tensor] = {}
        self.unit_interval = self.scale is not None or self._scan()

    def _scan(self) -> bool:
        """True if every value is in [0, 1]; refuses NaN/Inf (one pass, a chunk of rows at a time)."""
        inside = True
        for start in range(0, len(self.array), SCAN_ROWS):
            chunk = np.asarray(self.array[start : start + SCAN_ROWS], dtype=np.float64)
            if not np.isfinite(chunk).all():
                bad = start + int(np.flatnonzero(~np.isfinite(chunk.reshape(len(chunk), -1)).all(1))[0])
                raise ValueError(f"{self.path}: row {bad} holds NaN or Inf values; remove or impute them first")
            inside = inside and bool(chunk.min() >= 0 and chunk.max() <= 1)
        return inside

    @property
    def data_shape(self) -> tuple[int, ...]:
        """One example's shape: ``(D,)``, or ``(C, H, W)`` (a grey file gets C = 1)."""
        shape = tuple(self.array.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape

    def __len__(self) -> int:
        return len(self.index)

    def _rows(self, positions) -> torch.Tensor:
        rows = self.index[np.asarray(positions, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")  # read the mapped file forwards
        block = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        block[order] = self.array[rows[order]]
        x = torch.from_numpy(block.astype(np.float32))
        if self.scale is not None:
            x.mul_(self.scale)
        return x.reshape(len(rows), *self.data_shape)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._rows([i])[0]

    def __getitems__(self, positions: list[int]) -> list[torch.Tensor]:
        """A batch of rows with one read of the mapped array (the DataLoader's batched fetch)."""
        return list(self._rows(positions).unbind(0))


def load(split: str = "train", path=None, **_options) -> NpyStream:
    """Registry loader of ``--data npy-stream --path FILE.npy``: an :class:`NpyStream` (read lazily).

    Raises:
        ValueError: no ``path`` (pass --path FILE.npy).
    """
    if path is None:
        raise ValueError("the 'npy-stream' dataset maps your own .npy file: pass --path FILE.npy")
    return NpyStream(path, split)
