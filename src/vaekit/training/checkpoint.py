"""The training checkpoint: one safetensors file holding model, optimizer and RNG tensors, with the
loop's JSON state in the file's metadata, so it is replaced in one atomic rename."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import torch
from safetensors.torch import save as save_bytes

from ..config import FORMAT_VERSION
from ..runtime import files
from ..runtime.files import read_safetensors


def save_checkpoint(path, model, optimizer, state: dict, extra: dict[str, torch.Tensor]) -> None:
    """Atomically write a training checkpoint: weights, optimizer tensors, loop state, extra tensors.

    Args:
        path: the checkpoint file (``.safetensors``).
        state: JSON-serialisable loop state (epoch, step, history, ...).
        extra: name -> tensor, e.g. RNG states (uint8) and the best weights so far.
    """
    files.atomic_write(path, checkpoint_bytes(model, optimizer, state, extra))


def checkpoint_bytes(model, optimizer, state: dict, extra: dict[str, torch.Tensor]) -> bytes:
    """The bytes :func:`save_checkpoint` writes (a snapshot: later steps do not change them)."""
    return checkpoint_snapshot(model, optimizer, state, extra)()


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy that later in-place updates of ``tensor`` do not reach."""
    return tensor.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)


def checkpoint_snapshot(model, optimizer, state: dict, extra: dict[str, torch.Tensor]) -> Callable[[], bytes]:
    """A snapshot of the checkpoint now (copies of the tensors, the JSON metadata) and the function
    that serialises it to the bytes :func:`save_checkpoint` writes: the training loop takes the
    snapshot at an epoch's end and the serialisation runs in the background while training goes on."""
    tensors = {f"model.{k}": _copy(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entries in opt["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = _copy(value)
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors.update({f"extra.{k}": _copy(v) for k, v in extra.items()})
    metadata = {
        "state": json.dumps(state),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "format_version": str(FORMAT_VERSION),
    }
    return functools.partial(save_bytes, tensors, metadata=metadata)


def _match_layouts(optimizer) -> None:
    """Give every loaded state tensor of a parameter's shape that parameter's memory layout (the
    file holds contiguous tensors; a channels-last conv weight's moments were channels-last when
    saved, and torch's fused Adam rounds differently when the layouts differ: resume would not be
    bit-identical)."""
    for param, entries in optimizer.state.items():
        for key, value in entries.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                entries[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


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
    _match_layouts(optimizer)
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return json.loads(metadata["state"]), extra
