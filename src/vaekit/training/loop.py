"""One training loop for every model: Adam, KL warm-up, clipping, early stopping.

The same loop runs on one CPU, one GPU (mixed precision, torch.compile, channels-last) and under
torchrun across processes (DistributedDataParallel; see :mod:`vaekit.runtime.distributed`).
What a run does besides training — KL diagnostics, checkpoints, metric logs, progress — are
hooks (:mod:`vaekit.training.hooks`) that the caller passes in.
"""

from __future__ import annotations

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
from .batches import _batches, data_loader
from .inputs import as_examples, as_labels
from .optimizer import build_optimizer
from .state import TrainState

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
    guard = runtime.guard_for(loop.threads)
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
                loop.threads = loop.threads.lowered(loop.step + len(losses), lowered)
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
