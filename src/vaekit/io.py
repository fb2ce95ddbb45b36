"""Saving and loading: safetensors weights + JSON config, written atomically, never pickle.

A saved model is a folder with ``model.safetensors`` and ``config.json``; a run folder is one.
A training checkpoint is one safetensors file holding model, optimizer and RNG tensors, with the
loop's JSON state in the file's metadata, so it is replaced in one atomic rename.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from .config import Config, ModelConfig
from .custom_nets import CodeNotTrusted
from .models import build_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
#: 2: ``config`` holds the nested sections (model, train, data); 1 (vaekit <= 0.1): one flat dict.
FORMAT_VERSION = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one rename.

    A reader (or a process killed mid-write) sees the old file or the new one, never half of one.

    Raises:
        OSError: the write failed (e.g. ENOSPC, a full disk); the message names ``path``, and the
            old file, if any, is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # e.g. "[Errno 28] No space left on device"
            kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
            raise OSError(e.errno, f"could not write {path}: {e.strerror or e}{kept}") from e
        raise


def write_json(path, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path) -> dict:
    """Read a JSON file; a missing or corrupt file raises FileNotFoundError / ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the file is corrupt") from None


def read_json_lines(path) -> list[dict]:
    """Read a JSON-lines file (one object per line, e.g. metrics.jsonl); blank lines are skipped.

    Raises:
        FileNotFoundError: no such file. ValueError: a line that is not JSON (truncated or
            corrupt), naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; the file is corrupt") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {number} is not valid JSON ({e.msg}): the file is truncated or corrupt; "
                             "re-run training with --resume to rewrite it") from None
    return rows


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (no code is executed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    raw = path.read_bytes()
    try:
        tensors = load_bytes(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8:8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid safetensors file (truncated, corrupt or foreign): {e}") from None
    return tensors, metadata


def model_record(model, config: Config | None = None) -> dict:
    """The JSON record that rebuilds ``model``: its config, data shape and format version.

    ``config``: the whole run configuration (a run folder's); by default only the model section.

    Raises:
        ValueError: a model built from custom modules (it has no config to rebuild it from).
    """
    if model.config is None:
        raise ValueError("this model was built from custom modules; save its weights with "
                         "vaekit.io.save_weights and rebuild the modules yourself")
    sections = config.to_dict() if config is not None else {"model": dataclasses.asdict(model.config)}
    return {"format_version": FORMAT_VERSION, "config": sections,
            "data_shape": list(model.data_shape), "extra": model.extra_config()}


def save_weights(model, path) -> None:
    """Atomically write ``model.state_dict()`` to the safetensors file ``path``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, save_bytes(state))


def load_weights(model, path) -> None:
    """Load a safetensors file into ``model`` (strict: every parameter, right shapes).

    Raises:
        FileNotFoundError, ValueError: missing, corrupt or mismatching file.
    """
    tensors, _ = read_safetensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shapes {wrong[:3]}; was it saved from a different config?"
        )
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ValueError(f"{path} holds NaN/Inf values in {len(broken)} tensor(s) ({', '.join(broken[:3])}); "
                         "the file is corrupt or the model diverged")
    model.load_state_dict(tensors)


def save(model, path, config: Config | None = None) -> Path:
    """Save a model built from a config to the folder ``path`` (model.safetensors + config.json).

    ``config``: the run configuration to keep beside the weights (default: the model section only).

    Returns:
        The folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; vaekit.io.save writes a folder (model.safetensors + config.json): "
                         "pass a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    record = model_record(model, config)
    save_weights(model, folder / WEIGHTS)
    write_json(folder / CONFIG, record)
    return folder


def load_record(path) -> dict:
    """The config.json record of a saved model or run folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a run folder or a folder written by vaekit.io.save")
    record = read_json(folder / CONFIG)
    if "config" not in record or "data_shape" not in record:
        raise ValueError(f"{folder / CONFIG} is not a vaekit config (no 'config' or 'data_shape' key)")
    return record


def model_config(record: dict) -> ModelConfig:
    """The :class:`~vaekit.config.ModelConfig` of a config.json record (nested, or flat from vaekit <= 0.1)."""
    values = record["config"]
    if isinstance(values, dict) and isinstance(values.get("model"), dict):
        return ModelConfig.from_dict(values["model"])
    return Config.from_dict(values).model


def load_config(path) -> Config:
    """The run :class:`~vaekit.config.Config` of a run folder (or a folder written by :func:`save`,
    whose train and data settings are the defaults). Old flat config.json files load too.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_record`, or settings that are no longer valid.
    """
    record = load_record(path)
    try:
        return Config.from_dict(record["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{Path(path) / CONFIG}: {e}") from None


def load(path, map_location: str | torch.device = "cpu", trust_code: bool | None = None):
    """Rebuild a saved model from its folder: JSON config -> model -> safetensors weights.

    No code is executed from the files, except that a config naming a custom encoder/decoder by
    import path (:mod:`vaekit.custom_nets`) imports it, which needs ``trust_code=True`` (None: the
    enclosing ``vaekit.custom_nets.trusting()`` block decides; CLI: ``--trust-code``). Returns the
    model in eval mode; ``model.config`` is its :class:`~vaekit.config.ModelConfig` (the run's
    whole config: :func:`load_config`).

    Raises:
        vaekit.custom_nets.CodeNotTrusted: the config names code and trust was not given.
        FileNotFoundError: the folder, its config.json or model.safetensors is missing.
        ValueError: a corrupt or foreign file, or weights that do not fit the config.
    """
    folder = Path(path)
    record = load_record(folder)
    try:
        config = model_config(record)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder / CONFIG}: {e}") from None
    try:
        model = build_model(config, tuple(record["data_shape"]), trust_code=trust_code, **record.get("extra", {}))
    except CodeNotTrusted as e:
        raise CodeNotTrusted(f"{folder / CONFIG}: {e}") from None
    load_weights(model, folder / WEIGHTS)
    return model.to(map_location).eval()


def save_checkpoint(path, model, optimizer, state: dict, extra: dict[str, torch.Tensor]) -> None:
    """Atomically write a training checkpoint: weights, optimizer tensors, loop state, extra tensors.

    Args:
        path: the checkpoint file (``.safetensors``).
        state: JSON-serialisable loop state (epoch, step, history, ...).
        extra: name -> tensor, e.g. RNG states (uint8) and the best weights so far.
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entries in opt["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra.items()})
    metadata = {"state": json.dumps(state), "param_groups": json.dumps(opt["param_groups"]),
                "optim_scalars": json.dumps(scalars), "format_version": str(FORMAT_VERSION)}
    atomic_write(path, save_bytes(tensors, metadata=metadata))


def load_checkpoint(path, model, optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore model and optimizer from :func:`save_checkpoint`; returns ``(state, extra)``."""
    tensors, metadata = read_safetensors(path)
    if "state" not in metadata:
        raise ValueError(f"{path} is not a vaekit checkpoint (no loop state in its metadata)")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    for index, entries in json.loads(metadata.get("optim_scalars", "{}")).items():
        opt_state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(metadata["param_groups"])})
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return json.loads(metadata["state"]), extra
