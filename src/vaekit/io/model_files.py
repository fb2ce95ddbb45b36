"""Model files: a saved model is a folder with ``model.safetensors`` (weights) and ``config.json``
(the record that rebuilds it), written atomically, never pickled; old formats still load.

A run folder is one (:mod:`vaekit.io.run_folder` owns the rest of it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import save as save_bytes

from ..config import FORMAT_VERSION, Config, ModelConfig
from ..custom_nets import CodeNotTrusted
from ..models import build_model
from ..runtime import files
from ..runtime.files import read_json, read_safetensors, write_json
from . import checks as runcheck

__all__ = [
    "CONFIG",
    "FORMAT_VERSION",
    "WEIGHTS",
    "initialise",
    "load",
    "load_config",
    "load_record",
    "load_weights",
    "model_config",
    "model_record",
    "save",
    "save_weights",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def model_record(model, config: Config | None = None) -> dict:
    """The JSON record that rebuilds ``model``: its config, data shape and format version.

    ``config``: the whole run configuration (a run folder's); by default only the model section.

    Raises:
        ValueError: a model built from custom modules (it has no config to rebuild it from).
    """
    if model.config is None:
        raise ValueError(
            "this model was built from custom modules; save its weights with "
            "vaekit.io.save_weights and rebuild the modules yourself"
        )
    sections = config.to_dict() if config is not None else {"model": dataclasses.asdict(model.config)}
    return {
        "format_version": FORMAT_VERSION,
        "config": sections,
        "data_shape": list(model.data_shape),
        "extra": model.extra_config(),
    }


def save_weights(model, path) -> None:
    """Atomically write ``model.state_dict()`` to the safetensors file ``path``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files.atomic_write(path, save_bytes(state))


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
        raise ValueError(
            f"{path} holds NaN/Inf values in {len(broken)} tensor(s) ({', '.join(broken[:3])}); "
            "the file is corrupt or the model diverged"
        )
    model.load_state_dict(tensors)


def save(model, path, config: Config | None = None) -> Path:
    """Save a model built from a config to the folder ``path`` (model.safetensors + config.json).

    ``config``: the run configuration to keep beside the weights (default: the model section only).

    Returns:
        The folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{folder} is a file; vaekit.io.save writes a folder (model.safetensors + config.json): pass a folder path"
        )
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
    if not isinstance(record, dict) or "config" not in record or "data_shape" not in record:
        raise ValueError(f"{folder / CONFIG} is not a vaekit config (no 'config' or 'data_shape' key)")
    runcheck.check_record(folder / CONFIG, record)  # format_version, data_shape, sizes that can be built
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
        config = Config.from_dict(record["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{Path(path) / CONFIG}: {e}") from None
    saved = record["config"].get("train", record["config"])
    if isinstance(saved, dict) and "fused_optimizer" not in saved:
        config = config.replace(fused_optimizer=False)  # a run from before the setting: the foreach Adam step
    return config


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
        extra = {**_saved_defaults(config.name), **record.get("extra", {})}
        model = build_model(config, tuple(record["data_shape"]), trust_code=trust_code, **extra)
    except CodeNotTrusted as e:
        raise CodeNotTrusted(f"{folder / CONFIG}: {e}") from None
    try:
        load_weights(model, folder / WEIGHTS)
    except ValueError as e:  # a config.json edited by hand: name both files and the first differing tensor
        raise runcheck.weights_mismatch(folder, model, e) from None
    return model.to(map_location).eval()


def _saved_defaults(name: str) -> dict:
    """A model class's ``SAVED_DEFAULTS``: the option values that folders saved before the option
    existed were built with (a default that changed keeps old folders loading); {} for most models."""
    from ..registry import MODELS

    return dict(getattr(MODELS[name].load(), "SAVED_DEFAULTS", {})) if name in MODELS else {}


def initialise(model, init) -> None:
    """Load the weights of the run folder ``init`` into ``model`` (``--init RUN``, e.g. AVAE-SS).

    Raises:
        FileNotFoundError: ``init`` has no model.safetensors.
        ValueError: its weights do not fit this model's architecture (the message names them).
    """
    load_weights(model, Path(init) / WEIGHTS)
