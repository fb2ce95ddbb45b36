"""How many intra-op CPU threads a run uses: the policy (one thread for small models, one per idle
core for larger ones, fewer when the steps slow down later), measured in ``benchmarks/threads.py``."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time

import torch

#: Below this many FLOPs per training step (forward + backward ≈ 3 forward passes) one intra-op
#: thread is fastest; above it, one thread per idle core. Measured with ``benchmarks/threads.py``
#: on a 2-core AMD EPYC at idle (``benchmarks/results/threads-sizes.json``, 2 threads' speed-up over
#: 1): the digits MLP 64-256-256-8 at batch 16 (0.016 GFLOP per step) 0.76x, 32 (0.033) 0.80x,
#: 64 (0.065, the main job) 0.94x, 128 (0.13) 1.05x, 256 (0.26) 1.28x; the conv net on 28x28
#: (1.9 GFLOP per step) about 1.3x. On a busy machine a second thread costs 3-30x (two runs side by
#: side), which :func:`idle_cores` and :class:`ThreadGuard` are there to avoid.
THREAD_FLOPS_THRESHOLD = 1e8


def idle_cores(cores: int | None = None, running: int | None = None) -> int:
    """Cores not busy with other work, at least 1: ``cores`` minus ``running``, the other processes'
    threads runnable at this moment (:func:`running_elsewhere`). Defaults: this machine's. Not the
    load average: it lags by a minute, so it counts a job that has just ended and misses one that
    has just begun. A job that starts later is :class:`ThreadGuard`'s. On a machine shared with
    other jobs a thread per core makes every parallel region wait for a busy core (measured 3-30x
    slower, ``benchmarks/threads.py``)."""
    cores = available_cores() if cores is None else cores
    running = running_elsewhere() if running is None else running
    return max(1, min(cores, cores - running))


def running_elsewhere(loadavg: str = "/proc/loadavg", tasks: str = "/proc/self/task") -> int:
    """Threads of other processes runnable on this machine at this moment: the fourth field of
    Linux's ``/proc/loadavg`` ("runnable/total") minus this process's runnable threads (its
    ``/proc/self/task/*/stat`` in state R; an OpenMP worker may still spin after a parallel
    region). 0 where there are no such files. In a container that sees the host's ``/proc/loadavg``
    this counts the host's other work too: fewer threads, the safe side."""
    try:
        with open(loadavg) as f:
            runnable = int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0
    own = 0
    try:
        for task in os.scandir(tasks):
            try:
                with open(os.path.join(task.path, "stat")) as f:
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        own = 1
    return max(0, runnable - max(1, own))


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
    "OMP_NUM_THREADS" (the environment) or "policy" (from ``flops_per_step``). ``threads`` is the
    count the run started with; ``reductions`` the ``(step, threads)`` changes :class:`ThreadGuard`
    made later (the run's steps slowed down: another job took cores)."""

    threads: int
    source: str
    flops_per_step: float | None = None
    reductions: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (FLOPs rounded to 3 significant digits; ``reductions`` only when any)."""
        flops = None if self.flops_per_step is None else float(f"{self.flops_per_step:.3g}")
        out: dict = {"threads": self.threads, "source": self.source, "flops_per_step": flops}
        if self.reductions:
            out["reductions"] = [list(r) for r in self.reductions]
        return out

    def lowered(self, step: int, threads: int) -> ThreadChoice:
        """This choice with one more reduction: ``threads`` from ``step`` on."""
        return dataclasses.replace(self, reductions=(*self.reductions, (step, threads)))


def guard_for(choice: ThreadChoice | None) -> ThreadGuard | None:
    """A :class:`ThreadGuard` for a count the policy chose above 1; None for any other (an explicit
    count is the user's, one thread has nothing to lower)."""
    return ThreadGuard() if choice is not None and choice.source == "policy" and choice.threads > 1 else None


class ThreadGuard:
    """Fewer intra-op threads when a run's training steps slow down because another job started
    using the cores (with more threads than free cores, every parallel region waits for a thread
    that is not running: two runs side by side on 2 threads each ran 3-5x slower than on 1 each,
    ``benchmarks/threads.py``). :func:`choose_threads` sees the jobs already running at the start;
    this guard sees the ones that start later.

    The caller calls :meth:`step` after every training step and :meth:`restart` where the time
    between two steps is not a step's (an epoch's end, with its validation and hooks). Steps are
    timed in blocks of at least ``block_s`` seconds; when ``patience`` blocks in a row take more
    than ``slowdown`` × the fastest block's seconds per step, the thread count drops to the cores
    other processes leave free at that moment (:func:`running_elsewhere`), at most one fewer than
    now, at least 1; the guard then starts over at the new count and stops at 1 thread. It never
    raises the count again. ``clock`` (seconds) is for tests."""

    def __init__(self, block_s: float = 0.25, slowdown: float = 2.0, patience: int = 3, clock=time.perf_counter):
        self.block_s, self.slowdown, self.patience, self._clock = block_s, slowdown, patience, clock
        self.best, self._slow = math.inf, 0
        self.restart()

    def restart(self) -> None:
        """Start a new block here (the time since the last step is not counted)."""
        self._start, self._steps = self._clock(), 0

    def step(self) -> int | None:
        """Count one training step; returns the new thread count when it lowered it, else None."""
        self._steps += 1
        now = self._clock()
        if now - self._start < self.block_s:
            return None
        per_step = (now - self._start) / self._steps
        self._start, self._steps = now, 0
        self.best = min(self.best, per_step)
        self._slow = self._slow + 1 if per_step > self.slowdown * self.best else 0
        current = torch.get_num_threads()
        if self._slow < self.patience or current <= 1:
            return None
        threads = max(1, min(current - 1, available_cores() - running_elsewhere()))
        torch.set_num_threads(threads)
        self.best, self._slow = math.inf, 0
        return threads


@contextlib.contextmanager
def guarded(module: torch.nn.Module, choice: ThreadChoice):
    """A :class:`ThreadGuard` over the forward calls of ``module`` (one call = one step) inside the
    ``with`` block, for work that is not :func:`vaekit.fit`'s loop (``vaekit evaluate``'s decoder
    calls). Only for a count the policy chose above 1 (an explicit one is kept). Yields the list of
    ``(call, threads)`` reductions, filled as they happen."""
    reductions: list[tuple[int, int]] = []
    guard, calls = guard_for(choice), [0]
    if guard is None:
        yield reductions
        return

    def hook(*_):
        calls[0] += 1
        if (lowered := guard.step()) is not None:
            reductions.append((calls[0], lowered))

    handle = module.register_forward_hook(hook)
    try:
        yield reductions
    finally:
        handle.remove()


def choose_threads(
    model: torch.nn.Module | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    environ=None,
    running: int | None = None,
) -> ThreadChoice:
    """The intra-op thread count for ``model`` trained (or evaluated) ``batch_size`` examples at a time.

    Order (first that applies): ``threads`` (``--threads N`` / ``RunOptions(threads=N)``);
    the ``OMP_NUM_THREADS`` environment variable when set to a positive integer; the policy:
    1 thread when a step costs less than :data:`THREAD_FLOPS_THRESHOLD` FLOPs (small GEMMs do not
    parallelise), else :func:`idle_cores` (every core on an idle machine, fewer when other jobs
    keep cores busy). Without a model the policy gives 1. ``running``: the other processes'
    runnable threads to assume (default: this machine's at this moment, :func:`idle_cores`).
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
    return ThreadChoice(1 if flops < THREAD_FLOPS_THRESHOLD else idle_cores(running=running), "policy", flops)


def one_thread() -> None:
    """One intra-op thread for this process and the training runs it starts: ``torch.set_num_threads(1)``
    and ``OMP_NUM_THREADS=1`` in its environment, which :func:`choose_threads` obeys (without it the
    policy would choose again for each model) and child processes inherit. For workers that share
    the cores with each other (sweeps, benchmark rows)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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
