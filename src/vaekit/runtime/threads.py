"""How many intra-op CPU threads a run uses: the policy (one thread for small models, one per idle
core for large ones), measured in ``benchmarks/threads.py``."""

from __future__ import annotations

import copy
import dataclasses
import math
import os

import torch

#: Below this many FLOPs per training step (forward + backward ≈ 3 forward passes) one intra-op
#: thread is fastest; above it, one thread per idle core. Measured with ``benchmarks/threads.py``
#: on a 2-core AMD EPYC (``benchmarks/results/threads.json``): the default MLP (0.07 GFLOP per
#: step) and the 4x200 MLP on 28x28 (0.23) run fastest on one thread (the issue measured 2.1x
#: slower on 2 threads at idle); the conv net on 28x28 (1.9 GFLOP per step) is the size where a
#: second core can pay, and only when it is idle (on a busy machine 2 threads ran 10-100x slower).
THREAD_FLOPS_THRESHOLD = 5e8


def idle_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not busy with other work: ``cores`` minus the 1-minute load average (rounded, this
    process's own share not counted), at least 1. On a machine shared with other jobs a thread
    per core makes every parallel region wait for a busy core (the issue measured 30x slower)."""
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, round(cores - max(0.0, load - 1.0))))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _layer_flops(module: torch.nn.Module, inputs, output) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one call of a linear or (transposed) convolution."""
    x = inputs[0]
    if isinstance(module, torch.nn.Linear):
        return 2 * (x.numel() // module.in_features) * module.in_features * module.out_features
    kernel = math.prod(module.kernel_size)
    if isinstance(module, torch.nn.Conv2d):
        return 2 * output.numel() * (module.in_channels // module.groups) * kernel
    return 2 * x.numel() * (module.out_channels // module.groups) * kernel  # ConvTranspose2d


def flops_per_step(model: torch.nn.Module, batch_size: int) -> float:
    """Floating-point operations of one training step of ``model`` on ``batch_size`` examples:
    3 × the forward FLOPs of encoder and decoder (the backward pass costs about twice the
    forward), counted from the shapes of the linear and convolution layers in a forward pass of
    one example on a private copy of the model (the caller's forward hooks do not see it; the
    element-wise work is not counted). Cheap: no tracing, no torch._dynamo
    import (``torch.utils.flop_counter`` costs seconds of imports). A model whose nets cannot run
    on a lone x (a conditional one) is counted as 2 FLOPs per weight per example."""
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    counted = [0]

    def hook(module, inputs, output):
        counted[0] += _layer_flops(module, inputs, output)

    try:
        # a private copy without the caller's hooks: the probe pass must not be seen by them
        probe = copy.deepcopy(model)
        for m in probe.modules():
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        for m in probe.modules():
            if isinstance(m, layers):
                m.register_forward_hook(hook)
        p = next(probe.parameters())
        x = torch.zeros((1, *tuple(getattr(probe, "data_shape", ()))), dtype=p.dtype, device=p.device)
        with torch.no_grad():
            out = probe.encoder(x)
            probe.decoder(out[0] if isinstance(out, (tuple, list)) else out)
    except Exception:  # noqa: BLE001 - nets with other inputs (a CVAE's condition): count the weights
        counted[0] = 2 * sum(q.numel() for q in model.parameters())
    return 3.0 * batch_size * counted[0]


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count a run uses and why: ``source`` is "threads" (the option),
    "OMP_NUM_THREADS" (the environment) or "policy" (from ``flops_per_step``)."""

    threads: int
    source: str
    flops_per_step: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (FLOPs rounded to 3 significant digits)."""
        flops = None if self.flops_per_step is None else float(f"{self.flops_per_step:.3g}")
        return {"threads": self.threads, "source": self.source, "flops_per_step": flops}


def choose_threads(
    model: torch.nn.Module | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    environ=None,
    load: float | None = None,
) -> ThreadChoice:
    """The intra-op thread count for ``model`` trained (or evaluated) ``batch_size`` examples at a time.

    Order (first that applies): ``threads`` (``--threads N`` / ``RunOptions(threads=N)``);
    the ``OMP_NUM_THREADS`` environment variable when set to a positive integer; the policy:
    1 thread when a step costs less than :data:`THREAD_FLOPS_THRESHOLD` FLOPs (small GEMMs do not
    parallelise), else :func:`idle_cores` (every core on an idle machine, fewer when other jobs
    keep cores busy). Without a model the policy gives 1. ``load``: the 1-minute load average to
    assume (default: the machine's).
    """
    environ = os.environ if environ is None else environ
    if threads is not None:
        return ThreadChoice(int(threads), "threads")
    env = environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    if model is None:
        return ThreadChoice(1, "policy")
    flops = flops_per_step(model, batch_size)
    return ThreadChoice(1 if flops < THREAD_FLOPS_THRESHOLD else idle_cores(load=load), "policy", flops)


def apply_threads(
    model: torch.nn.Module | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    device: torch.device | None = None,
) -> ThreadChoice:
    """:func:`choose_threads` and ``torch.set_num_threads`` of the result (on a GPU only an explicit
    ``threads`` or OMP_NUM_THREADS is applied; the policy is for CPU work). Returns the choice."""
    choice = choose_threads(model, batch_size, threads)
    on_gpu = device is not None and torch.device(device).type != "cpu"
    if on_gpu and choice.source == "policy":
        return ThreadChoice(torch.get_num_threads(), "torch default (GPU run)")
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice
