"""One training loop for every model: Adam, KL warm-up, clipping, early stopping.

The same loop runs on one CPU, one GPU (mixed precision, torch.compile, channels-last) and under
torchrun across processes (DistributedDataParallel; see :mod:`vaekit.runtime.distributed`).
What a run does besides training — KL diagnostics, checkpoints, metric logs, progress — are
hooks (:mod:`vaekit.training.hooks`) that the caller passes in.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .. import runtime
from ..data.preprocess import binarize
from ..models import condition
from ..objectives import ELBO, LossTerms, build_objective
from ..objectives.elbo import linear_capacity
from ..options import RunOptions
from ..runtime import distributed
from .checkpoint import load_checkpoint
from .lean_adam import LeanAdam

LOGGED = ("loss", "elbo", "reconstruction", "kl")


class TrainingDiverged(RuntimeError):
    """A loss, gradient or weight became NaN or Inf (the message names the step)."""


def warmup_at(train, progress: float) -> float:
    """The KL warm-up factor in [0, 1] after ``progress`` epochs: linear from 0 over
    ``warmup_epochs``, then 1 (the objective's KL weights, e.g. β, are multiplied by it)."""
    if train.warmup_epochs <= 0:
        return 1.0
    return min(1.0, progress / train.warmup_epochs)


def capacity_at(objective, step: int) -> float:
    """Capacity C (nats) at optimisation ``step``: linear from 0 to ``capacity_max`` over
    ``capacity_steps`` steps, then constant (Burgess et al. 2018, sec. 5). ``objective``: a run's
    :class:`~vaekit.config.ObjectiveConfig`."""
    return linear_capacity(objective.capacity_max, objective.capacity_steps, step)


def _batches(
    train,
    batch_size: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    conditional: bool = False,
    rank: int = 0,
    world_size: int = 1,
):
    """``(x, c, global batch size)`` triples. A tensor (and its labels) is batched by slicing a
    shuffled index (this rank's shard of it, :func:`vaekit.distributed.shard`); a DataLoader's
    batches come as they are (c = the batch's second entry for a conditional model, else None)."""
    if torch.is_tensor(train):
        # the permutation goes to the data's device once per epoch, not once per batch
        order = torch.randperm(len(train), generator=generator).to(train.device)
        for index, global_size in distributed.shard(order, batch_size, rank, world_size):
            c = None if labels is None else labels[index.to(labels.device)]
            yield train[index], c, global_size
    else:
        sizes = None
        for i, batch in enumerate(train):
            sizes = getattr(train.batch_sampler, "global_sizes", None) if i == 0 else sizes
            pair = isinstance(batch, (tuple, list))
            xb = batch[0] if pair else batch
            yield xb, (batch[1] if pair and conditional else None), sizes[i] if sizes else len(xb) * world_size


def data_loader(
    dataset, batch_size: int, generator: torch.Generator, options: RunOptions, device: torch.device
) -> torch.utils.data.DataLoader:
    """A DataLoader of a map-style ``dataset`` (e.g. images read from disk) that batches exactly as
    :func:`fit` batches a tensor: a permutation per epoch from ``generator``, this rank's shard of
    every global batch, ``options.num_workers`` worker processes, pinned memory on CUDA."""
    sampler = distributed.ShardBatchSampler(
        len(dataset), batch_size, generator, distributed.rank(), distributed.world_size()
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=options.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=options.num_workers > 0,
        # worker seeds from their own generator: the global RNG (the
        # noise of the objective) advances as with a tensor
        generator=torch.Generator().manual_seed(distributed.rank()),
    )


def _rng_state(shuffle: torch.Generator) -> dict[str, torch.Tensor]:
    """RNG states to checkpoint; under DDP every rank's (a collective: all ranks must call it)."""
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    if distributed.world_size() > 1:
        for key in [k for k in ("torch", "cuda") if k in state]:
            for r, value in enumerate(distributed.all_gather(state[key])[1:], start=1):
                state[f"{key}.rank{r}"] = value
    return state


def _set_rng_state(shuffle: torch.Generator, rng: dict[str, torch.Tensor], fallback_seed: int) -> None:
    """Restore this rank's RNG states; a rank the checkpoint has no state for (the world size
    changed) is reseeded with ``fallback_seed`` instead."""
    suffix = f".rank{distributed.rank()}" if distributed.rank() else ""
    if "torch" + suffix in rng:
        torch.set_rng_state(rng["torch" + suffix])
    else:
        torch.manual_seed(fallback_seed)
    shuffle.set_state(rng["shuffle"])
    if "cuda" + suffix in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda" + suffix])


class TrainingStep(nn.Module):
    """The training loss of ``model`` as a module, so that DistributedDataParallel and
    torch.compile wrap one forward: ``forward(x, c, **schedule)`` returns
    ``objective(condition(model, c), x, **schedule)`` (c: the condition of a conditional model, or None)."""

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, **schedule) -> LossTerms:
        """x ``(batch, *data_shape)``, c ``(batch,)`` or None -> :class:`~vaekit.objectives.LossTerms`
        (``schedule``: the warm-up factor and, when on, the capacity C)."""
        return self.objective(condition(self.model, c), x, **schedule)


def _wrap(model: nn.Module, objective, options: RunOptions, device: torch.device) -> nn.Module:
    """The training step, in DDP when a process group is up, compiled when asked."""
    step: nn.Module = TrainingStep(model, objective)
    if distributed.world_size() > 1:
        step = nn.parallel.DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(step) if options.compile else step


def build_optimizer(model: nn.Module, train) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with ``train``'s lr and weight decay
    (:class:`~vaekit.config.TrainConfig`).

    ``train.fused_optimizer``: torch's fused step (``fused=True``: one kernel updates every
    parameter, on CPU and CUDA since torch 2.4) without torch.optim's per-step Python
    (:class:`~vaekit.training.lean_adam.LeanAdam`: the same kernel and numbers), where torch has
    it for the parameters' device; elsewhere, and with ``fused_optimizer=False``, the foreach step
    (one kernel per state tensor kind). Both compute Adam (Kingma & Ba 2015, algorithm 1) and
    differ in rounding only. :func:`optimizer_kind` tells which one an optimizer uses.
    """
    params = list(model.parameters())
    settings = {"lr": train.lr, "weight_decay": train.weight_decay}
    if train.fused_optimizer:
        try:
            return LeanAdam(params, **settings)
        except RuntimeError:  # no fused kernel for this device or dtype (e.g. MPS on older torch)
            pass
    return torch.optim.Adam(params, foreach=True, **settings)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """``"fused"`` or ``"foreach"``: the step ``optimizer`` takes (from its parameter groups)."""
    return "fused" if optimizer.param_groups[0].get("fused") else "foreach"


@torch.no_grad()
def validate(
    model, x: torch.Tensor, objective=None, batch_size: int = 1000, labels: torch.Tensor | None = None, **schedule
) -> dict[str, float]:
    """Validation metrics of the objective being trained, averaged over examples (nats per example).

    ``loss``: the objective's loss (default :class:`~vaekit.objectives.ELBO`, i.e. −ELBO) with
    its full weights (warm-up over; ``schedule``: e.g. the capacity C reached), averaged over
    batches of ``batch_size`` weighted by their size: the quantity early stopping watches.
    ``elbo``, ``reconstruction``, ``kl``: the ELBO (β = 1) of ``x`` and its two terms, from the
    same pass (from a separate :class:`~vaekit.objectives.ELBO` pass for an objective whose terms
    are not those of ``x``, ``scores_data = False``: AVAE-SS). ``labels`` ``(M,)``: the
    conditions of a conditional model. Under torch.distributed each rank evaluates its part of
    ``x`` and the sums are all-reduced, so every rank returns the same numbers.
    """
    objective = objective or ELBO()
    elbo_pass = None if getattr(objective, "scores_data", True) else ELBO()
    was_training = model.training
    if was_training:  # (a walk over every submodule: skipped when fit has switched already)
        model.eval()
    device = next(model.parameters()).device
    world, rank = distributed.world_size(), distributed.rank()
    part = x.tensor_split(world)[rank]
    part_labels = None if labels is None else labels.tensor_split(world)[rank]
    rows = [torch.zeros(len(LOGGED), dtype=torch.float64, device=device)]
    for start in range(0, len(part), batch_size):
        c = None if part_labels is None else part_labels[start : start + batch_size]
        view, xb = condition(model, c), part[start : start + batch_size].to(device)
        out = objective(view, xb, **schedule)
        data = elbo_pass(view, xb) if elbo_pass else out
        # float64 sums of float32 values, as on the host: one transfer at the end, not one per batch
        rows.append(
            torch.stack([out.loss.double() * len(xb)] + [getattr(data, key).sum().double() for key in LOGGED[1:]])
        )
    sums = distributed.all_reduce_sum(torch.stack(rows).sum(0).cpu())
    if was_training:
        model.train()
    return {key: value / len(x) for key, value in zip(LOGGED, sums.tolist())}


@dataclasses.dataclass
class TrainState:
    """The state of a training run, as hooks see it and checkpoints keep it.

    ``epoch`` and ``step`` count completed epochs and optimisation steps; ``history`` holds one
    metrics dict per epoch; ``best`` the weights of the best validation loss (early stopping);
    ``threads`` the intra-op thread choice the run applied (:class:`vaekit.runtime.ThreadChoice`);
    a checkpoint keeps the policy's count in use, and a resume goes on with it.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    shuffle: torch.Generator
    config: object
    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    bad_epochs: int = 0
    elapsed: float = 0.0
    stopped_early: bool = False
    best: dict | None = None
    threads: object = None
    channels_last: bool = False  # conv weights and batches in the channels-last layout (RunOptions.channels_last)

    #: the loop fields a checkpoint stores as JSON
    SAVED = ("epoch", "step", "history", "best_loss", "bad_epochs", "elapsed", "stopped_early")

    def state(self) -> dict:
        """JSON-ready loop state (and the gradient scaler's, when in use)."""
        state = {k: getattr(self, k) for k in self.SAVED}
        state["optimizer"] = optimizer_kind(self.optimizer)
        if getattr(self.threads, "source", None) == "policy":  # the count in use now, for a resume
            state["threads"] = {**self.threads.to_dict(), "now": torch.get_num_threads()}
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        return state

    def resume(self, path) -> None:
        """Restore weights, optimizer, loop state and RNG states from the checkpoint ``path``."""
        kind = {k: self.optimizer.param_groups[0].get(k) for k in ("fused", "foreach")}
        state, rng = load_checkpoint(path, self.model, self.optimizer)
        for group in self.optimizer.param_groups:  # the step the config asks for, not the checkpoint's
            group.update(kind)
        for key in self.SAVED:
            if key in state:
                setattr(self, key, state[key])
        seed = self.config.train.seed
        _set_rng_state(self.shuffle, rng, fallback_seed=seed + distributed.rank() + 1000 * self.epoch)
        self.best = {k[5:]: v for k, v in rng.items() if k.startswith("best.")} or None
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        saved = state.get("threads") if isinstance(state.get("threads"), dict) else {}
        n = saved.get("now")
        if isinstance(n, int) and n >= 1 and getattr(self.threads, "source", None) == "policy":
            # the policy's count of the interrupted run, not this moment's: the thread count can
            # change a conv net's last bits (tests/test_threads.py), and a resume must not
            torch.set_num_threads(n)
            reductions = tuple((int(a), int(b)) for a, b in saved.get("reductions", ()))
            self.threads = dataclasses.replace(self.threads, threads=n, reductions=reductions)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """RNG states (and the best weights under early stopping) to checkpoint; a collective under DDP."""
        rng = _rng_state(self.shuffle)
        if self.best is not None and self.config.train.patience > 0:
            rng.update({f"best.{k}": v for k, v in self.best.items()})
        return rng


@torch.no_grad()
def _weights_finite(model: nn.Module) -> bool:
    """True when every weight is finite, told from one norm over all of them (a foreach kernel,
    torch >= 2.6); False means "look at each" (the norm also overflows for weights beyond ~1e19)."""
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    return total_norm is not None and bool(torch.isfinite(total_norm(list(model.parameters()))))


def _check_finite(loop: TrainState, losses: torch.Tensor, epoch: int) -> None:
    """Raise :class:`TrainingDiverged` if a loss of this epoch or a weight is NaN/Inf."""
    reduced = distributed.all_reduce_sum(losses)  # NaN on any rank stops every rank
    finite = torch.isfinite(reduced)
    if not finite.all():
        bad = loop.step + int((~finite).nonzero()[0])
        raise TrainingDiverged(f"the loss became {reduced[~finite][0].item()} at step {bad} (epoch {epoch + 1})")
    if _weights_finite(loop.model):
        return
    broken = [name for name, p in loop.model.named_parameters() if not torch.isfinite(p).all()]
    if broken:
        raise TrainingDiverged(
            f"the weights {', '.join(broken[:3])} became NaN/Inf in epoch {epoch + 1} (step {loop.step})"
        )


def as_examples(name: str, x, model):
    """The examples ``x`` given to :func:`fit` as ``name``, checked and converted at the entry,
    before anything trains: a NumPy array becomes a tensor; integer, boolean and float64 values
    become float32 (the model's dtype); a Dataset or DataLoader passes unchanged.

    Raises:
        TypeError: ``x`` is not an array, a tensor, a Dataset or a DataLoader, or holds no numbers.
        ValueError: an axis of size 0, examples of another shape than ``model.data_shape``, or
            values beyond float32's range; each message names ``name``.
    """
    import numpy as np

    if x is None or isinstance(x, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        return x
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise TypeError(
                f"{name} must hold numbers, got a NumPy array of dtype {x.dtype}; convert it, e.g. "
                f"{name}.astype(np.float32)"
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(
            f"{name} must be a tensor or NumPy array of shape (N, *data_shape), a Dataset or a "
            f"DataLoader, got {type(x).__name__}"
        )
    if x.is_complex():
        raise TypeError(f"{name} holds complex numbers ({x.dtype}); pass real values")
    if 0 in x.shape or x.dim() < 2:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (N, *data_shape) with N >= 1 examples and "
            f"no axis of size 0" + (f", here (N, {', '.join(map(str, model.data_shape))})" if model.data_shape else "")
        )
    if model.data_shape is not None and tuple(x.shape[1:]) != tuple(model.data_shape):
        raise ValueError(
            f"{name} has examples of shape {tuple(x.shape[1:])} but the model was built for "
            f"{tuple(model.data_shape)}; pass {name} of shape (N, {', '.join(map(str, model.data_shape))})"
        )
    dtype = next(model.parameters()).dtype
    if x.dtype != dtype:
        converted = x.to(dtype)
        if x.is_floating_point() and not torch.isfinite(converted).all() and torch.isfinite(x).all():
            raise ValueError(
                f"{name} holds values beyond {dtype}'s range (|x| > {torch.finfo(dtype).max:.3g}); rescale them first"
            )
        x = converted
    return x


def as_labels(name: str, labels, x):
    """Class indices ``labels`` given to :func:`fit` as ``name``: a NumPy array or tensor of
    integers, one per example of ``x``, as an int64 tensor (None stays None).

    Raises:
        TypeError: labels that are not integers.
        ValueError: not one label per example.
    """
    import numpy as np

    if labels is None:
        return None
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"{name} must be integer class indices 0..K-1 (a tensor or array of ints), got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}"
        )
    if torch.is_tensor(x) and labels.shape != (len(x),):
        raise ValueError(f"{name} has shape {tuple(labels.shape)}; expected one class index per example, ({len(x)},)")
    return labels.long()


def fit(
    model,
    train,
    config,
    val: torch.Tensor | None = None,
    hooks: Sequence = (),
    resume_from: str | Path | None = None,
    labels: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    options: RunOptions | None = None,
    objective=None,
) -> list[dict]:
    """Train ``model`` with its objective (:func:`vaekit.objectives.build_objective` of ``config``).

    Args:
        model: an AE/VAE built for the data (on the device to train on, unless ``options`` says).
        train: ``(N, *data_shape)`` tensor, batched by slicing a shuffled index (seeded by
            ``config.train.seed``); or a map-style Dataset of examples (e.g. images read from
            disk), batched the same way by :func:`data_loader` with ``options.num_workers``
            workers; or a DataLoader, whose batches are used as they come.
        config: the run's :class:`~vaekit.config.Config` (train settings; ``binarize``).
        val: optional ``(M, *data_shape)`` tensor for validation metrics and early stopping.
        hooks: objects with optional ``metrics(loop, metrics)`` (add entries to an epoch's
            metrics; the model is in eval mode), ``epoch_end(loop)`` (after the epoch is recorded) and ``close(loop)``
            methods, called in order (:mod:`vaekit.training.hooks`: progress, KL diagnostics,
            checkpoints, logs).
        resume_from: a checkpoint written by :class:`~vaekit.training.hooks.Checkpoint` to
            continue from; the end state equals an uninterrupted run's.
        labels, val_labels: ``(N,)`` / ``(M,)`` class indices of ``train`` / ``val``, the condition
            c of a conditional model (CVAE), batched together with x. With a DataLoader, a
            conditional model takes c from the second entry of each batch.
        options: device, precision, compile, channels-last, loader workers and intra-op threads
            (:class:`~vaekit.options.RunOptions`); None keeps the model where it is, in
            float32. The thread count is set with ``torch.set_num_threads`` for this process
            (:func:`~vaekit.runtime.threads.choose_threads`: the option, else OMP_NUM_THREADS,
            else 1 thread for a small model and the idle cores for a larger one, fewer when the
            steps slow down later, :class:`~vaekit.runtime.threads.ThreadGuard`) and stays set after ``fit``.
        objective: the loss object to minimise; default ``build_objective(config, N)``.

    Under torchrun (an initialised process group), the model is wrapped in
    DistributedDataParallel; each rank trains on its shard of every global batch of
    ``batch_size × world_size`` examples (see :mod:`vaekit.runtime.distributed`), train and
    validation metrics are all-reduced. Every rank must call ``fit`` with the same arguments.

    Returns:
        The history: one dict per epoch with ``train_*`` and ``val_*`` metrics (nats per example,
        averaged over the epoch; ``val_loss`` is the trained objective's loss, which early stopping
        watches), ``beta`` (the objective's β times the warm-up factor), ``capacity`` (when on),
        ``step``, ``time`` (wall-clock seconds) and ``cpu_time`` (CPU seconds of this process:
        robust to other load on a shared machine).

    Raises:
        TrainingDiverged: a loss or weight became NaN/Inf (the message names the step).
        ValueError: a conditional model without labels; examples of another shape than the
            model's, with an axis of size 0 or values beyond float32 (:func:`as_examples`).
        TypeError: ``train`` / ``val`` / labels of a type or dtype that is not numbers.
    """
    train, val = as_examples("train", train, model), as_examples("val", val, model)
    labels, val_labels = as_labels("labels", labels, train), as_labels("val_labels", val_labels, val)
    if model.conditional and torch.is_tensor(train) and (labels is None or (val is not None and val_labels is None)):
        raise ValueError(f"model {type(model).__name__} is conditional: pass labels= (and val_labels=) class indices")
    t = config.train
    device = runtime.resolve_device(options.device) if options else next(model.parameters()).device
    options = options or RunOptions()
    rank = distributed.rank()
    model.to(device)
    threads = runtime.apply_threads(model, t.batch_size, options.threads, device)
    channels_last = runtime.uses_conv(model) and (
        options.channels_last if options.channels_last is not None else device.type == "cpu"
    )
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, t)
    loop = TrainState(
        model,
        optimizer,
        runtime.grad_scaler(device, options.precision),
        torch.Generator().manual_seed(t.seed),
        config,
        threads=threads,
        channels_last=channels_last,
    )
    torch.manual_seed(t.seed + rank)  # ranks draw independent noise; rank 0 = one process
    dynamic = config.binarize == "dynamic"
    if torch.is_tensor(train):
        train = train.to(device)  # in-memory data (and their labels) are copied to the device once
        labels = None if labels is None else labels.to(device)
    elif not isinstance(train, torch.utils.data.DataLoader):
        train = data_loader(train, t.batch_size, loop.shuffle, options, device)
    n_train = len(train) if torch.is_tensor(train) else len(train.dataset)
    objective = objective or build_objective(config, dataset_size=n_train)
    if resume_from is not None and Path(resume_from).exists():
        loop.resume(resume_from)
    step = _wrap(model, objective, options, device)
    # Per-step work kept to what the options need (benchmarks/fit_overhead.py: fit against a hand-written loop):
    # a plain training step is called without nn.Module's call machinery, float32 enters no
    # autocast context, a disabled gradient scaler is bypassed, in-memory batches are already on
    # the device. None of this changes a number (tests/test_training.py: bit for bit).
    call = step.forward if type(step) is TrainingStep else step
    amp = runtime.autocast(device, options.precision) if options.precision != "32" else None
    scaler = loop.scaler if loop.scaler.is_enabled() else None
    moved = torch.is_tensor(train) and not channels_last
    casts = runtime.float32_outputs(model.encoder, model.decoder) if options.precision != "32" else []
    model.train()
    epochs = [] if loop.stopped_early else range(loop.epoch, t.epochs)
    try:
        _epochs(
            loop,
            epochs,
            train,
            labels,
            val,
            val_labels,
            hooks,
            objective,
            call,
            amp,
            scaler,
            moved,
            dynamic,
            channels_last,
            n_train,
            device,
        )
    finally:  # a checkpoint still being written is on disk before fit returns or raises
        for hook in hooks:
            getattr(hook, "flush", lambda *_: None)(loop)
    for hook in hooks:
        getattr(hook, "close", lambda *_: None)(loop)
    for cast in casts:
        cast.remove()
    if t.patience > 0 and loop.best is not None:
        model.load_state_dict(loop.best)
    model.eval()
    return loop.history


def _epochs(
    loop: TrainState,
    epochs,
    train,
    labels,
    val,
    val_labels,
    hooks,
    objective,
    call,
    amp,
    scaler,
    moved: bool,
    dynamic: bool,
    channels_last: bool,
    n_train: int,
    device: torch.device,
) -> None:
    """The epochs of :func:`fit` (its prepared step, data and hooks)."""
    model, optimizer, t, t_objective = loop.model, loop.optimizer, loop.config.train, loop.config.objective
    rank, world = distributed.rank(), distributed.world_size()
    logged_terms = operator.attrgetter(*LOGGED[1:])  # the per-example terms of a step, in LOGGED order
    chosen = loop.threads
    guard = runtime.ThreadGuard() if getattr(chosen, "source", None) == "policy" and chosen.threads > 1 else None
    for epoch in epochs:
        start, cpu_start = time.perf_counter(), time.process_time()
        if guard is not None:
            guard.restart()
        losses, terms = [], []
        seen = 0  # examples of the global batches so far (all ranks together)
        for xb, cb, global_size in _batches(train, t.batch_size, loop.shuffle, labels, model.conditional, rank, world):
            if not moved:
                xb = runtime.to_device(xb, device, channels_last)
                cb = None if cb is None else cb.to(device, non_blocking=True)
            if dynamic:
                xb = binarize(xb)
            schedule = {"warmup": warmup_at(t, epoch + seen / n_train)}
            if t_objective.capacity_max > 0:
                schedule["capacity"] = capacity_at(t_objective, loop.step + len(losses))
            if amp is None:
                out = call(xb, cb, **schedule)
            else:
                with amp:
                    out = call(xb, cb, **schedule)
            # DDP averages gradients over ranks: weight by this rank's share of the global batch.
            loss = out.loss if world == 1 else out.loss * (len(xb) * world / global_size)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                if t.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            losses.append(out.loss.detach())
            terms.append(logged_terms(out))
            seen += global_size
            if guard is not None and (lowered := guard.step()) is not None:  # another job took cores
                reductions = (*loop.threads.reductions, (loop.step + len(losses), lowered))
                loop.threads = dataclasses.replace(loop.threads, reductions=reductions)
                guard = guard if lowered > 1 else None
        losses = torch.stack(losses).float()
        _check_finite(loop, losses, epoch)
        loop.step += len(losses)
        loop.elapsed += time.perf_counter() - start
        sizes = torch.tensor([len(row[0]) for row in terms], device=device, dtype=losses.dtype)
        sums = [(losses * sizes).sum()] + [torch.cat(column).sum() for column in zip(*terms)]
        warmup = schedule.pop("warmup")
        metrics = {
            "epoch": epoch + 1,
            "step": loop.step,
            "beta": getattr(objective, "beta", 1.0) * warmup,
            **{
                f"train_{k}": v / seen
                for k, v in zip(LOGGED, distributed.all_reduce_sum(torch.stack(sums).float()).tolist())
            },
            **schedule,
        }
        model.eval()  # once for validation and the metrics hooks (KL diagnostics)
        if val is not None and len(val):
            # the objective being trained, with its full weights (warm-up over) and the capacity reached
            final = {"capacity": capacity_at(t_objective, loop.step)} if t_objective.capacity_max > 0 else {}
            metrics.update(
                {f"val_{k}": v for k, v in validate(model, val, objective, labels=val_labels, **final).items()}
            )
            if metrics["val_loss"] < loop.best_loss:
                loop.best_loss, loop.bad_epochs = metrics["val_loss"], 0
                loop.best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                loop.bad_epochs += 1
        for hook in hooks:
            getattr(hook, "metrics", lambda *_: None)(loop, metrics)
        model.train()
        metrics["time"] = time.perf_counter() - start
        metrics["cpu_time"] = time.process_time() - cpu_start
        loop.history.append(metrics)
        loop.epoch = epoch + 1
        loop.stopped_early = t.patience > 0 and loop.bad_epochs >= t.patience
        for hook in hooks:
            getattr(hook, "epoch_end", lambda *_: None)(loop)
        if loop.stopped_early:
            break
