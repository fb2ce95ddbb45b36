"""The bottom layer: how and where vaekit computes, and nothing of vaekit itself.

* :mod:`.distributed` — data-parallel helpers (torchrun ranks, collectives, shards).
* :mod:`.device` — device, precision (autocast, gradient scaler), memory layout.
* :mod:`.threads` — the intra-op thread policy.
* :mod:`.progress` — progress bars on a terminal, plain lines elsewhere.
* :mod:`.files` — atomic writes, JSON and safetensors reading with clear errors.

Every module here imports only torch, safetensors and the standard library, never another part of
vaekit, so every layer above may use it.
"""

from .device import PRECISIONS, autocast, float32_outputs, grad_scaler, resolve_device, to_device, uses_conv
from .threads import (
    THREAD_FLOPS_THRESHOLD,
    ThreadChoice,
    ThreadGuard,
    apply_threads,
    available_cores,
    choose_threads,
    flops_per_step,
    guard_for,
    guarded,
    idle_cores,
    one_thread,
    running_elsewhere,
)

__all__ = [
    "PRECISIONS",
    "THREAD_FLOPS_THRESHOLD",
    "ThreadChoice",
    "ThreadGuard",
    "apply_threads",
    "autocast",
    "available_cores",
    "choose_threads",
    "flops_per_step",
    "float32_outputs",
    "grad_scaler",
    "guard_for",
    "guarded",
    "idle_cores",
    "one_thread",
    "resolve_device",
    "running_elsewhere",
    "to_device",
    "uses_conv",
]
