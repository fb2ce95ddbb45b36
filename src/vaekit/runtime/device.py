"""Where a run computes and in which precision: the device, autocast, gradient scaling and memory
layout that :class:`vaekit.options.RunOptions` names (the options themselves live beside the configs)."""

from __future__ import annotations

import torch

from . import distributed

#: precision name -> (autocast dtype or None for float32, whether a gradient scaler is needed).
PRECISIONS: dict[str, tuple[torch.dtype | None, bool]] = {
    "32": (None, False),
    "bf16": (torch.bfloat16, False),
    "16-mixed": (torch.float16, True),
}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: "cpu", "cuda" (cuda:LOCAL_RANK under torchrun) or "auto".

    Raises:
        ValueError: "cuda" requested on a machine without a usable CUDA device.
    """
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch finds no CUDA device; use --device cpu or auto")
    return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (disabled for "32")."""
    dtype, _ = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 ("16-mixed"), where small gradients underflow."""
    return torch.amp.GradScaler(device.type, enabled=PRECISIONS[precision][1])


def _to_float32(_module, _inputs, output):
    if torch.is_tensor(output):
        return output.float() if output.dtype in (torch.float16, torch.bfloat16) else output
    if isinstance(output, (tuple, list)):
        return type(output)(_to_float32(None, None, o) for o in output)
    return output


def float32_outputs(*modules: torch.nn.Module) -> list:
    """Cast the float16/bfloat16 outputs of ``modules`` (encoder, decoder) to float32 by forward hooks.

    Under autocast the networks run in bf16/fp16, but the distributions built from their outputs
    (log-densities summed over hundreds of pixels, KL terms) are computed in float32. Outside
    autocast the hooks change nothing. Returns the hook handles; call ``.remove()`` on each.
    """
    return [m.register_forward_hook(_to_float32) for m in modules]


def uses_conv(model: torch.nn.Module) -> bool:
    """True when ``model`` holds a 2-D (transposed) convolution."""
    return any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """``x`` on ``device`` (non-blocking from pinned memory), channels-last for 4-D image batches."""
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
