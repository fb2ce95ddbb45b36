"""The one Dataset type every loader returns, and the checks shared by all loaders."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

#: Seed of the fixed train/test split of datasets that ship without one (digits, arrays).
#: It never depends on the training seed, so every run sees the same held-out test split.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclasses.dataclass
class Dataset:
    """A dataset held in memory.

    Attributes:
        name: registry name, e.g. ``"digits"``.
        x: float32 tensor ``(N, *data_shape)``. Images are channels-first ``(C, H, W)`` with
            values in [0, 1]; tabular rows are ``(D,)``.
        labels: name -> LongTensor ``(N,)``, e.g. ``{"digit": ...}``; may be empty.
        unit_interval: True when every value of ``x`` lies in [0, 1] (images), which the
            Bernoulli likelihoods require.
    """

    name: str
    x: torch.Tensor
    labels: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    unit_interval: bool = True

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor):
            raise TypeError(f"Dataset.x must be a torch.Tensor, got {type(self.x).__name__}")
        self.x = self.x.float()
        for key, value in self.labels.items():
            if len(value) != len(self.x):
                raise ValueError(f"label {key!r} has {len(value)} entries but the dataset has {len(self.x)} examples")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 8, 8)`` or ``(30,)``."""
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        """True for ``(C, H, W)`` examples."""
        return len(self.data_shape) == 3

    def subset(self, index) -> Dataset:
        """The examples at ``index`` (a LongTensor or array of positions), labels included."""
        index = torch.as_tensor(index, dtype=torch.long)
        return dataclasses.replace(self, x=self.x[index], labels={k: v[index] for k, v in self.labels.items()})


def fixed_split(n: int, split: str, stratify=None) -> np.ndarray:
    """Positions of the ``split`` ("train" or "test") part of a fixed 80/20 split of ``n`` examples.

    The split is seeded by :data:`SPLIT_SEED` (stratified when ``stratify`` labels are given), so
    the test split is the same in every run and never seen in training.
    """
    check_split(split)
    train, test = _split_positions(n, stratify)
    return train if split == "train" else test


def _split_positions(n: int, stratify) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) positions of scikit-learn's ``train_test_split`` with :data:`SPLIT_SEED`,
    cached on disk (``$VAEKIT_CACHE``, default ``~/.cache/vaekit``, keyed by n, the labels and
    scikit-learn's version): importing scikit-learn and SciPy costs seconds at every start."""
    import hashlib
    import importlib.metadata
    import os
    from pathlib import Path

    key = hashlib.sha256(f"{n} {TEST_FRACTION} {SPLIT_SEED} {importlib.metadata.version('scikit-learn')}".encode())
    if stratify is not None:
        key.update(np.ascontiguousarray(np.asarray(stratify)).astype(np.int64).tobytes())
    cache = (
        Path(os.environ.get("VAEKIT_CACHE", Path.home() / ".cache" / "vaekit"))
        / "splits"
        / f"{key.hexdigest()[:32]}.npz"
    )
    try:
        with np.load(cache, allow_pickle=False) as saved:
            return saved["train"], saved["test"]
    except (OSError, KeyError, ValueError):
        pass
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(n), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify)
    train, test = np.sort(train), np.sort(test)
    try:  # atomic: a concurrent run reads a whole file or none
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, train=train, test=test)
        os.replace(tmp, cache)
    except OSError:
        pass
    return train, test


def check_split(split: str) -> None:
    """Raise ValueError unless ``split`` is "train" or "test"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def check_finite(x: np.ndarray, source: str) -> None:
    """Raise ValueError naming how many NaN/Inf values ``x`` ``(N, D)`` holds, or values beyond
    float32's range (|x| > 3.4e38, which become Inf when the model reads them as float32), and
    the first rows and columns where they are."""
    bad = ~np.isfinite(x)
    what = "NaN/Inf value(s)"
    if not bad.any():
        bad = np.abs(x) > np.finfo(np.float32).max
        what = f"value(s) beyond float32's range (|x| > {np.finfo(np.float32).max:.3g}, Inf to the model)"
    if bad.any():
        rows, columns = np.unique(np.nonzero(bad)[0]), np.unique(np.nonzero(bad)[1])
        raise ValueError(
            f"{source} has {int(bad.sum())} {what} in {len(rows)} row(s) "
            f"(rows {_first(rows)}; columns {_first(columns)}; counting from 0); remove or impute them first"
        )


def _first(indices: np.ndarray, shown: int = 5) -> str:
    return ", ".join(str(i) for i in indices[:shown]) + (", ..." if len(indices) > shown else "")
