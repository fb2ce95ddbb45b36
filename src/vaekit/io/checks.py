"""Does a run folder still match what it says? Checks that the rest of :mod:`vaekit.io` calls with one-line hooks.

A run folder records what it was trained on in ``data.json`` (:func:`record_data`): the data
file's absolute path, its size in bytes and SHA-256 (its fingerprint), and the names of its CSV
columns. Later commands use it to

- find a data file given as a relative path from another folder (:func:`located`),
- refuse to evaluate a run on a data file that changed since training, unless asked
  (:func:`check_data`; ``vaekit evaluate --allow-changed-data``),
- match a CSV's columns to the training columns by name (:func:`training_columns`).

Every refusal is one line naming the file and what to do. The layer is io's: this module
imports only the config, data and runtime layers (and nothing else of io).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from ..runtime.files import read_json, write_json

#: The record of a run's training data file.
DATA_RECORD = "data.json"

_allow_changed = contextvars.ContextVar("allow_changed_data", default=False)


@contextlib.contextmanager
def allowing_changed_data(enabled: bool = True):
    """Within this context :func:`check_data` warns about a changed data file instead of refusing it."""
    token = _allow_changed.set(enabled)
    try:
        yield
    finally:
        _allow_changed.reset(token)


def fingerprint(path) -> dict:
    """``{"size": bytes, "sha256": hex}`` of the file ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}


def record_data(run_dir, config, standardized: bool) -> None:
    """Write ``RUN/data.json``: whether the run standardised its features (so a missing
    ``scaler.json`` is noticed), and for a run trained on a user's data file (``--data array
    --path``) the file's absolute path, fingerprint and CSV column names. Kept when it exists (a
    resumed run keeps the record of the data it started on)."""
    path = config.data.path
    target = Path(run_dir) / DATA_RECORD
    if target.exists():
        return
    record: dict[str, Any] = {"standardized": bool(standardized)}
    if config.data.name == "array" and path and Path(path).is_file():
        from ..data.array import column_names

        record.update(
            {
                "path": str(Path(path).resolve()),
                **fingerprint(path),
                "columns": column_names(path, config.data.label_column),
            }
        )
    write_json(target, record)


def data_record(run_dir) -> dict | None:
    """``RUN/data.json`` (None for a run without one: built-in data, or trained before it existed)."""
    path = Path(run_dir) / DATA_RECORD
    return read_json(path) if path.is_file() else None


def training_columns(run_dir) -> list[str] | None:
    """The names of the CSV columns the run was trained on (label column left out), in order;
    None when the run's data had no header (or was not a CSV)."""
    record = data_record(run_dir)
    return None if record is None else record.get("columns")


def located(run_dir, config):
    """``config`` with its data file as the run recorded it, when the stored path is relative and
    does not exist from the current folder (a run used from another folder).

    Raises:
        FileNotFoundError: neither the stored path nor the recorded absolute path exists; names both and the fix.
    """
    path = config.data.path
    if config.data.name != "array" or not path or Path(path).exists():
        return config
    record = data_record(run_dir) or {}
    recorded = record.get("path")
    if recorded and Path(recorded).is_file():
        return dataclasses.replace(config, data=dataclasses.replace(config.data, path=recorded))
    where = (
        f" (recorded as {recorded})"
        if recorded
        else (" (a path relative to the folder the run was trained from)" if not Path(path).is_absolute() else "")
    )
    raise FileNotFoundError(
        f"the data file {path}{where} of run {run_dir} does not exist from {os.getcwd()}; run the "
        f"command from the folder the run was trained in, or put the file back at that path"
    )


def check_data(run_dir, config) -> None:
    """Refuse a run whose data file changed since training (another size or SHA-256 than
    ``RUN/data.json`` records): its test split is no longer the one the run was evaluated on.
    Within :func:`allowing_changed_data` it is a warning instead.

    Raises:
        ValueError: naming the file, what changed and the flag that evaluates anyway.
    """
    record = data_record(run_dir)
    path = config.data.path
    if record is None or "sha256" not in record or config.data.name != "array" or not path or not Path(path).is_file():
        return
    now = fingerprint(path)
    if now == {"size": record["size"], "sha256": record["sha256"]}:
        return
    change = (
        f"{record['size']} bytes then, {now['size']} now"
        if now["size"] != record["size"]
        else f"same size, SHA-256 {record['sha256'][:12]}... then, {now['sha256'][:12]}... now"
    )
    message = (
        f"the data file {path} changed since run {run_dir} was trained ({change}; recorded in "
        f"{Path(run_dir) / DATA_RECORD})"
    )
    if _allow_changed.get():
        import warnings

        warnings.warn(message + "; evaluating anyway, as asked", stacklevel=2)
        return
    raise ValueError(
        message + "; restore the file the run was trained on, or pass --allow-changed-data to evaluate on it anyway"
    )


def checked_data(run_dir, config):
    """:func:`located` then :func:`check_data`: the config whose data file is the run's, checked."""
    config = located(run_dir, config)
    check_data(run_dir, config)
    return config


#: The scaler file of a run (``vaekit.io.SCALER``).
SCALER = "scaler.json"


def load_scaler(run_dir):
    """The run's feature standardiser (``RUN/scaler.json``), or None when the run has none.

    Raises:
        FileNotFoundError: the run standardised its features (``RUN/data.json`` says so) but its
            scaler.json is gone: scoring unstandardised data would be silently wrong.
        ValueError: a damaged scaler.json (not JSON, missing keys, lengths that differ, zero,
            negative or non-finite scales): the message names the file, the features and the fix.
    """
    from ..data.scaling import Standardizer

    path = Path(run_dir) / SCALER
    fix = "restore it from a copy of the run, or train the run again (vaekit train writes it)"
    if not path.is_file():
        if (data_record(run_dir) or {}).get("standardized"):
            raise FileNotFoundError(
                f"{path} is missing, but run {run_dir} standardised its features in training "
                f"(RUN/{DATA_RECORD} says so), so its inputs cannot be scaled as the model expects; "
                f"{fix}"
            )
        return None
    try:
        return Standardizer.from_dict(read_json(path))
    except ValueError as e:
        raise ValueError(f"{path} is damaged: {str(e).replace(f'{path} ', '')}; {fix}") from None


def check_not_training(run_dir, lock) -> None:
    """Refuse to use a run folder that a ``vaekit train`` is still writing: the lock file ``lock``
    (``vaekit.io.lock_path``) is held by a live process (an exclusive ``flock``).

    Raises:
        RuntimeError: naming the run, the process and what to do.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: nothing is locked
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:  # no lock file: nothing trains there
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise RuntimeError(
                f"run {run_dir} is still training (process {pid}, lock {lock}): its model and "
                f"summary are not final yet; wait for it to end (or stop it: kill {pid}), then run "
                "the command again"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


#: The largest integer a model setting or data dimension may hold (torch's sizes are int64; no
#: network vaekit builds has a layer this wide: ``models`` refuses 2**31 parameters).
MAX_SIZE = 2**31 - 1


def _large_numbers(value, where: str):
    """``(setting, value)`` of every integer above :data:`MAX_SIZE` (or non-finite float) in ``value``."""
    import math

    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > MAX_SIZE:
        yield where, value
    elif isinstance(value, float) and not math.isfinite(value):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _large_numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _large_numbers(item, f"{where}[{i}]")


def check_record(path, record: dict) -> None:
    """Check a config.json record (``vaekit.io.load_record``) before anything is built from it: a
    ``format_version`` this vaekit knows, a ``data_shape`` of positive sizes, model settings and
    sizes within what can be built.

    Raises:
        ValueError: naming the file, the key and what to do.
    """
    from ..config import FORMAT_VERSION

    version = record.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version!r}, which this vaekit does not know (it reads formats "
            f"1 to {FORMAT_VERSION}): it was written by a newer vaekit, or edited; upgrade vaekit "
            "(pip install -U vaekit) or restore the file"
        )
    shape = record.get("data_shape")
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_SIZE for d in shape)
    ):
        raise ValueError(
            f"{path}: data_shape must be a list of sizes in [1, {MAX_SIZE}], got {shape!r:.80}; "
            "was config.json edited by hand? restore the config.json written with the weights"
        )
    config = record.get("config")
    model = config.get("model", config) if isinstance(config, dict) else config
    for where, value in _large_numbers(model, "model"):
        raise ValueError(
            f"{path}: {where} = {value!r:.40} is beyond any network vaekit builds (sizes up to "
            f"{MAX_SIZE}); was config.json edited by hand? restore the config.json written with the weights"
        )


def weights_mismatch(folder, model, error: Exception) -> Exception:
    """The error to raise when ``model``, built from ``folder/config.json``, does not fit the weights
    in ``folder/model.safetensors`` (:func:`vaekit.io.load_weights` raised ``error``): names both
    files, the first tensor whose shape differs, and the likely cause (config.json edited)."""
    from ..runtime.files import read_safetensors

    folder = Path(folder)
    if "does not match the model" not in str(error):
        return error
    try:
        tensors, _ = read_safetensors(folder / "model.safetensors")
    except (OSError, ValueError):
        return error
    expected = model.state_dict()
    detail = next(
        (
            f"{k} is {tuple(tensors[k].shape)} in the weights but {tuple(v.shape)} for the config"
            for k, v in expected.items()
            if k in tensors and tensors[k].shape != v.shape
        ),
        f"the tensors differ: {sorted(set(expected) ^ set(tensors))[:3]}",
    )
    return ValueError(
        f"{folder / 'config.json'} does not describe the weights in {folder / 'model.safetensors'} "
        f"({detail}): was config.json edited by hand (e.g. latent_dim or hidden)? restore the "
        "config.json written with these weights, or train the run again"
    )
