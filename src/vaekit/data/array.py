"""A user's own data from a ``.npy``, ``.npz`` or ``.csv`` file (tabular rows or images)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from .base import TEST_FRACTION, Dataset, check_finite, fixed_split

SUFFIXES = (".npy", ".npz", ".csv")
_DATA_KEYS = ("x", "X", "data")
#: Fewest examples a file may hold to be split into train and test (one example in each part).
MIN_EXAMPLES = 2


def load(
    split: str = "train",
    path: str | Path | None = None,
    label_column: str | int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    **_options,
) -> Dataset:
    """Load an array file as a dataset with a fixed, seeded 80/20 train/test split.

    Args:
        split: "train" or "test" part of the split (stratified by the label when there is one
            and every class has at least two examples, else unstratified).
        path: a ``.npy`` file (the data array), a ``.npz`` file (data under key "x", "X" or
            "data", else the first array; every other 1-D array of length N is a label named by
            its key) or a ``.csv`` file (numbers; the header row is optional and detected).
        label_column: CSV: the column (name or 0-based index, negative counts from the end) that
            holds a label rather than data. NPZ: the key of the label to stratify by.
        image_shape: ``(C, H, W)`` (or a string "C,H,W") to reshape each example into an
            image; the example must have C*H*W values.

    The data keeps its shape: ``(N, D)`` rows stay tabular ``(D,)``; ``(N, H, W)`` becomes
    ``(N, 1, H, W)``; ``(N, C, H, W)`` is kept when C is 1 or 3, else ``(N, H, W, C)`` is assumed
    and moved to channels-first. uint8 images are scaled by 1/255 to [0, 1]. Labels become
    LongTensors; labels that are not integers (e.g. strings) are replaced by their position in
    the sorted unique values.

    Returns:
        Dataset named "array" with ``x`` float32 ``(N, *data_shape)``, ``labels`` name ->
        LongTensor ``(N,)`` and ``unit_interval`` True iff every value lies in [0, 1].

    Raises:
        ValueError: ``path`` not given (pass --path), unsupported suffix, empty file, fewer than
            :data:`MIN_EXAMPLES` examples, a CSV that is not UTF-8 text, a non-numeric cell (the message names column and row), NaN/Inf values (count and
            rows), ragged CSV rows, an unknown label column, or a bad ``image_shape``.
        FileNotFoundError: ``path`` does not exist.
    """
    if path is None:
        raise ValueError("the 'array' dataset reads your own file: pass --path FILE (.npy, .npz or .csv)")
    x, labels, stratify_by = _read(path, label_column, image_shape)
    if len(x) < MIN_EXAMPLES:
        raise ValueError(
            f"{path} has {len(x)} example(s); the fixed 80/20 train/test split needs at least "
            f"{MIN_EXAMPLES}: add rows (to score single rows with a trained model use vaekit score)"
        )
    stratify = labels.get(stratify_by)
    index = fixed_split(len(x), split, stratify=stratify if _can_stratify(stratify) else None)
    x = torch.from_numpy(x[index].astype(np.float32))
    labels = {name: torch.from_numpy(values[index]) for name, values in labels.items()}
    unit_interval = bool(((x >= 0) & (x <= 1)).all())
    return Dataset("array", x, labels, unit_interval=unit_interval)


def read(
    path: str | Path,
    label_column: str | int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    columns: list[str] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a whole ``.npy``/``.npz``/``.csv`` file, without splitting (e.g. data to score).

    Same formats, shapes, scaling and checks as :func:`load`. ``columns``: the names of the
    columns a model was trained on, in order (:func:`column_names` of its training file); a CSV
    with a header is then matched by name (its columns may come in any order; a missing or extra
    column is refused, naming it). A CSV without a header, or ``columns=None``, is read by position.

    Returns:
        ``(x, labels)``: float64 ``(N, *data_shape)`` and name -> int64 ``(N,)`` label codes.

    Raises:
        ValueError, FileNotFoundError: as :func:`load` (the NaN/Inf message names the rows).
    """
    x, labels, _ = _read(path, label_column, image_shape, columns)
    return x, labels


def column_names(path: str | Path, label_column: str | int | None = None) -> list[str] | None:
    """The names of the data columns of a CSV with a header (the label column left out), in
    order; None for a CSV without a header or another kind of file. Reads the first line only."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = next((row for row in csv.reader(handle) if any(cell.strip() for cell in row)), None)
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    named = isinstance(label_column, str) and not label_column.lstrip("-").isdigit()
    if first is None or not (named or _looks_like_header([first])):
        return None
    names = [cell.strip() for cell in first]
    label = _column_index(label_column, names, path)
    return [name for j, name in enumerate(names) if j != label]


def _by_name(names: list[str], data_columns: list[int], columns: list[str], path: Path) -> list[int]:
    """The positions of ``columns`` (the training columns, in order) among this file's data columns."""
    have = [names[j] for j in data_columns]
    missing = [c for c in columns if c not in have]
    extra = [c for c in have if c not in columns]
    twice = sorted({c for c in have if have.count(c) > 1})
    if missing or extra or twice:
        what = "; ".join(
            part
            for part in (
                f"missing column(s) {', '.join(map(repr, missing))}" if missing else "",
                f"column(s) the model was not trained on {', '.join(map(repr, extra))}" if extra else "",
                f"column(s) named twice {', '.join(map(repr, twice))}" if twice else "",
            )
            if part
        )
        raise ValueError(
            f"{path}: its header does not name the model's {len(columns)} training columns ({what}); "
            f"the model was trained on columns {', '.join(columns)}: give exactly those (in any order), "
            "or pass --label-column for a label column"
        )
    return [data_columns[have.index(c)] for c in columns]


def _read(path, label_column, image_shape, columns=None):
    """(float64 data, {name: int64 codes}, label to stratify by) of a checked file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass one data file (.npy, .npz or .csv)")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix.lower() == ".csv":
        x, labels, stratify_by = _read_csv(path, label_column, columns)
    else:
        x, labels, stratify_by = {".npy": _read_npy, ".npz": _read_npz}[path.suffix.lower()](path, label_column)
    is_bytes = x.dtype == np.uint8
    x = _to_data_shape(x.astype(np.float64), image_shape, path)
    if is_bytes and x.ndim == 4:
        x /= 255.0
    check_finite(x.reshape(len(x), -1), str(path))
    return x, {name: _to_codes(values) for name, values in labels.items()}, stratify_by


def _read_npy(path: Path, label_column):
    """(data array, no labels, no stratification label) from a .npy file."""
    if label_column is not None:
        raise ValueError(f"{path}: a .npy file holds only data; put labels in a .npz or .csv file")
    return _numeric(_np_load(path), path), {}, None


def _read_npz(path: Path, label_column):
    """(data array, {key: 1-D label array}, key to stratify by) from a .npz file."""
    with _np_load(path) as archive:
        try:
            arrays = {key: archive[key] for key in archive.files}
        except ValueError as e:  # object arrays (need pickle, refused) or a corrupt member
            raise ValueError(
                f"could not read {path}: {e} (object arrays are refused for safety: vaekit never "
                "unpickles); store numbers, e.g. numpy.savez(FILE, x=x.astype(float))"
            ) from None
    if not arrays:
        raise ValueError(f"{path} is empty: it holds no arrays")
    data_key = next((key for key in _DATA_KEYS if key in arrays), next(iter(arrays)))
    x = _numeric(arrays.pop(data_key), f"{path}[{data_key!r}]")
    labels = {key: value for key, value in arrays.items() if value.ndim == 1 and len(value) == len(x)}
    if label_column is not None and label_column not in labels:
        raise ValueError(
            f"{path}: label_column {label_column!r} is not a label array; labels found: {', '.join(labels) or 'none'}"
        )
    return x, labels, label_column if label_column is not None else next(iter(labels), None)


def _np_load(path: Path):
    if path.suffix.lower() == ".npy":
        _check_npy_size(path)
    try:
        return np.load(path, allow_pickle=False)
    except MemoryError:
        raise ValueError(
            f"{path} does not fit in memory ({path.stat().st_size / 1e9:.3g} GB); "
            "use a subset of its rows, or a machine with more memory"
        ) from None
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty or truncated file
        raise ValueError(
            f"could not read {path}: it is not a valid {path.suffix} file of numbers (empty, truncated, another "
            "format, or pickled object arrays, which are refused for safety); write it with numpy.save / numpy.savez"
        ) from error


def _check_npy_size(path: Path) -> None:
    """Compare the shape a .npy header claims with the bytes the file holds, before anything is
    allocated (a header claiming 10**9 rows would otherwise ask for gigabytes).

    Raises:
        ValueError: the data would be larger than the file (truncated or corrupt), naming both sizes.
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as handle:
            version = fmt.read_magic(handle)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read_header is None:
                return  # another version: np.load checks it
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
    except (ValueError, EOFError, OSError):
        return  # not a valid header: np.load's message (see _np_load)
    if dtype.hasobject:
        return
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = path.stat().st_size - offset
    if needed > held:
        raise ValueError(
            f"{path}: its header claims an array of shape {shape} ({dtype}, {needed / 1e9:,.1f} GB) but "
            f"the file holds {held} bytes of data: it is truncated or corrupt; write it again with numpy.save"
        )


def _numeric(x: np.ndarray, source) -> np.ndarray:
    """``x`` unchanged after checking it is a non-empty array of real numbers."""
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise ValueError(f"{source} holds {x.dtype} values; expected real numbers")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{source} is empty: expected an array (N, ...) with N >= 1, got shape {x.shape}")
    return x


def _read_csv(path: Path, label_column, columns=None):
    """(float64 (N, D) data, {name: string labels}, label name) from a .csv file; with a header and
    ``columns``, the data columns in the order of ``columns`` (:func:`_by_name`)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as e:  # e.g. a field over csv.field_size_limit() (128 KB): not a CSV of numbers
        raise ValueError(
            f"{path}: line {reader.line_num}: {e}; expected a CSV of numbers (short fields): is this the right file?"
        ) from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8 text: byte {e.object[e.start : e.start + 1]!r} at line {line} (offset {e.start}); "
            "expected a UTF-8 CSV of numbers: re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE), "
            "or pass a .npy/.npz file"
        ) from None
    if not rows:
        raise ValueError(f"{path} is empty")
    width = len(rows[0])
    for line, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ValueError(f"{path}: non-blank line {line} has {len(row)} columns, but the first line has {width}")
    named = isinstance(label_column, str) and not label_column.lstrip("-").isdigit()
    header = named or _looks_like_header(rows)
    if header:
        names, rows = [cell.strip() for cell in rows[0]], rows[1:]
        if not rows:
            raise ValueError(f"{path} has a header but no data rows")
    else:
        names = [str(j) for j in range(width)]
    label = _column_index(label_column, names, path)
    data_columns = [j for j in range(width) if j != label]
    if not data_columns:
        raise ValueError(f"{path}: no data columns are left besides the label column")
    if header and columns is not None:
        data_columns = _by_name(names, data_columns, list(columns), path)
    table = np.array(rows, dtype=object)
    x = _parse_numbers(table[:, data_columns], [names[j] for j in data_columns], path)
    if label is None:
        return x, {}, None
    label_name = names[label] if names[label] != str(label) else "label"
    return x, {label_name: np.char.strip(table[:, label].astype(str))}, label_name


def _looks_like_header(rows: list[list[str]]) -> bool:
    """True if every cell of the first row is not a number (a header names every column). A first
    row mixing words and numbers is data with a bad cell, refused by :func:`_parse_numbers`,
    never dropped as a header."""
    return not any(_is_number(cell) for cell in rows[0])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _column_index(label_column, names: list[str], path: Path) -> int | None:
    if label_column is None:
        return None
    if isinstance(label_column, str) and label_column in names:
        return names.index(label_column)
    try:
        index = int(label_column)
    except ValueError:
        raise ValueError(f"{path}: no column named {label_column!r}; columns: {', '.join(names)}") from None
    if not -len(names) <= index < len(names):
        raise ValueError(f"{path}: label_column {index} is out of range for {len(names)} columns")
    return index % len(names)


def _parse_numbers(cells: np.ndarray, names: list[str], path: Path) -> np.ndarray:
    """Cells (strings) as float64; blank cells become NaN; a non-number raises naming its cell."""
    cells = np.char.strip(cells.astype(str))
    cells = np.where(cells == "", "nan", cells)
    try:
        return cells.astype(np.float64)
    except ValueError:
        for row, column in np.ndindex(cells.shape):
            if not _is_number(cells[row, column]):
                header = (
                    " (a first row is a header only when none of its cells is a number)"
                    if row == 0 and all(name.isdigit() for name in names)
                    else ""
                )
                raise ValueError(
                    f"{path}: column {names[column]!r}, row {row} (counting data rows from 0) holds "
                    f"{str(cells[row, column])!r}, which is not a number{header}"
                ) from None
        raise


def _to_data_shape(x: np.ndarray, image_shape, path: Path) -> np.ndarray:
    """(N, ...) float64 -> (N, D) tabular or (N, C, H, W) channels-first images."""
    if image_shape is not None:
        if isinstance(image_shape, str):  # "1,28,28" or "1x28x28" from a command line
            image_shape = image_shape.replace("x", ",").split(",")
        try:
            image_shape = tuple(int(d) for d in image_shape)
        except (TypeError, ValueError):
            raise ValueError(f"image_shape must be three integers (C, H, W), got {image_shape!r}") from None
        if len(image_shape) != 3 or int(np.prod(x.shape[1:])) != int(np.prod(image_shape)):
            raise ValueError(
                f"{path}: image_shape must be (C, H, W) with C*H*W = {int(np.prod(x.shape[1:]))} "
                f"features per example, got {image_shape}"
            )
        if image_shape[0] not in (1, 3):
            raise ValueError(
                f"{path}: image_shape {image_shape} has {image_shape[0]} channels; the run's figures draw "
                "C = 1 (grey) or 3 (RGB): pass --image-shape 1,H,W or 3,H,W, or leave it out for rows"
            )
        return x.reshape(len(x), *image_shape)
    if x.ndim > 4:
        raise ValueError(f"{path}: data of shape {x.shape} has too many dimensions; expected 2 to 4")
    if 0 in x.shape[1:]:
        raise ValueError(
            f"{path}: data of shape {x.shape} has an axis of size 0 (no values per example); "
            "store at least one feature per row, e.g. an array of shape (N, D) with D >= 1"
        )
    if x.ndim in (1, 3):  # (N,) -> (N, 1) column; (N, H, W) -> (N, 1, H, W) grey images
        return x[:, None]
    if x.ndim == 4 and x.shape[1] not in (1, 3):  # channels-last (N, H, W, C)
        if x.shape[-1] not in (1, 3):
            raise ValueError(
                f"{path}: data of shape {x.shape} is neither (N, C, H, W) nor (N, H, W, C) images with "
                "C = 1 (grey) or 3 (RGB) channels, which the run's figures draw; flatten each example "
                "into a row first, np.save(FILE, x.reshape(len(x), -1))"
            )
        return np.moveaxis(x, -1, 1)
    return x


def _to_codes(values: np.ndarray) -> np.ndarray:
    """Integer labels as int64; anything else replaced by its index in the sorted unique values."""
    try:
        numeric = values.astype(np.float64)
    except ValueError:  # words
        numeric = None
    if numeric is not None and np.all(np.isfinite(numeric)) and np.all(numeric == np.round(numeric)):
        return numeric.astype(np.int64)
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _can_stratify(labels: np.ndarray | None) -> bool:
    """True if a stratified 80/20 split exists: every class has 2+ examples, both parts fit all."""
    if labels is None:
        return False
    counts = np.unique(labels, return_counts=True)[1]
    n_test = int(np.ceil(TEST_FRACTION * len(labels)))
    return counts.min() >= 2 and len(counts) <= min(n_test, len(labels) - n_test)
