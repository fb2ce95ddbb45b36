"""MNIST and Fashion-MNIST from the standard IDX files, read with numpy (no torchvision).

Files live in ``<data_dir>/mnist/`` resp. ``<data_dir>/fashion-mnist/`` under their official
names, gzipped (``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``). Missing
files are fetched with pooch (md5-checked) unless ``download=False``.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pooch
import torch

from .base import Dataset, check_split

#: Seconds pooch waits for the server before a download counts as failed.
DOWNLOAD_TIMEOUT = 30

#: IDX type code -> numpy dtype (big-endian, as the format prescribes).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Where one IDX dataset comes from and what its label is called."""

    folder: str
    label: str
    url: str
    md5: dict[str, str]  # official file name -> md5 of the .gz file


# md5 hashes as published in torchvision/datasets/mnist.py.
SPECS = {
    "mnist": _Spec(
        folder="mnist",
        label="digit",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        md5={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _Spec(
        folder="fashion-mnist",
        label="item",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}

_PREFIX = {"train": "train", "test": "t10k"}


def load(name: str, split: str = "train", data_dir: str | Path = "data", download: bool = True, **_options) -> Dataset:
    """MNIST (``name="mnist"``) or Fashion-MNIST (``name="fashion-mnist"``), 28x28 grey images.

    Args:
        name: "mnist" or "fashion-mnist" (see :data:`SPECS`).
        split: "train" (the 60,000 official training images) or "test" (the 10,000 official
            test images).
        data_dir: folder holding ``mnist/`` and ``fashion-mnist/`` with the IDX files.
        download: fetch missing files (md5-checked, with a network timeout) into that folder.

    Returns:
        Dataset with ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1] (bytes / 255) and
        ``labels = {"digit": (N,)}`` (MNIST) or ``{"item": (N,)}`` (Fashion-MNIST), values 0..9.

    Raises:
        ValueError: unknown name or split; a file that is not a valid IDX file, or image and
            label files that disagree (the message names the file).
        FileNotFoundError: files are missing and cannot be downloaded (the message names them,
            the folder to put them in and the URL to get them from).
    """
    if name not in SPECS:
        raise ValueError(f"unknown IDX dataset {name!r}; choose one of: {', '.join(SPECS)}")
    check_split(split)
    spec = SPECS[name]
    folder = Path(data_dir) / spec.folder
    stems = [f"{_PREFIX[split]}-images-idx3-ubyte", f"{_PREFIX[split]}-labels-idx1-ubyte"]
    image_path, label_path = _find_or_download(spec, folder, stems, download)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{image_path} should hold uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{label_path} should hold {len(images)} labels (one per image in {image_path.name}), "
            f"got shape {labels.shape}"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return Dataset(name, x, {spec.label: torch.from_numpy(labels.astype(np.int64))})


def _find_or_download(spec: _Spec, folder: Path, stems: list[str], download: bool) -> list[Path]:
    """Paths of the files ``stems`` (``.gz`` or plain) in ``folder``, downloading missing ones."""
    found = {stem: _existing(folder, stem) for stem in stems}
    missing = [stem for stem, path in found.items() if path is None]
    reason, error = "pass download=True to fetch them", None
    if missing and download:
        pooch.get_logger().setLevel("WARNING")  # no "Downloading ..." lines: errors stay one line
        try:
            for stem in missing:
                found[stem] = Path(
                    pooch.retrieve(
                        spec.url + stem + ".gz",
                        known_hash="md5:" + spec.md5[stem],
                        fname=stem + ".gz",
                        path=folder,
                        downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT),
                    )
                )
            missing = []
        except Exception as failure:  # offline, timeout, HTTP error or checksum mismatch
            error = failure
            message = str(error) if len(str(error)) <= 100 else str(error)[:97] + "..."
            reason = f"downloading failed: {type(error).__name__}: {message}"
            missing = [stem for stem in missing if found[stem] is None]
    if missing:
        names = ", ".join(stem + ".gz" for stem in missing)
        every = ", ".join(
            f"{p}-{kind}-idx{n}-ubyte.gz" for p in _PREFIX.values() for kind, n in (("images", 3), ("labels", 1))
        )
        raise FileNotFoundError(
            f"{names} not found in {folder} ({reason}): download {every} from {spec.url} "
            f"and put them, gzipped or not, in {folder}"
        ) from error
    return [found[stem] for stem in stems]


def _existing(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem``, whichever exists first; None if neither does."""
    for path in (folder / (stem + ".gz"), folder / stem):
        if path.is_file():
            return path
    return None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped if the name ends in ``.gz``) into a numpy array.

    Args:
        path: an IDX file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
        Array with the file's dimensions and native-endian dtype, e.g. uint8 ``(60000, 28, 28)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an IDX file (bad magic number or type code), is truncated or
            has trailing bytes, or is a corrupt gzip file; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a valid gzip file ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, "
            f"expected 0000 followed by a type code and the number of dimensions"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"{path} is {problem}: its header announces shape {shape} ({expected} bytes), but it holds {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``); parent folders are made.

    Args:
        path: destination, e.g. ``tmp/mnist/train-images-idx3-ubyte.gz``.
        array: array-like of uint8, int8, int16, int32, float32 or float64, any shape with at
            most 255 dimensions (e.g. uint8 images ``(N, 28, 28)`` or labels ``(N,)``).

    Returns:
        The path written.

    Raises:
        ValueError: the dtype has no IDX type code.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, codes))}")
    big = array.astype(native.newbyteorder(">"))
    raw = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + big.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path
