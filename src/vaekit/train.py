"""One training loop for every model: Adam, KL warm-up, clipping, early stopping, checkpoints.

The same loop runs on one CPU, one GPU (mixed precision, torch.compile, channels-last) and under
torchrun across processes (DistributedDataParallel; see :mod:`vaekit.distributed`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed, runtime
from .io import load_checkpoint, save_checkpoint
from .models import given
from .betatc import kl_decomposition
from .objectives import LOSSES, vae_loss
from .runtime import RunOptions

LOGGED = ("loss", "elbo", "reconstruction", "kl")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def beta_at(config, progress: float) -> float:
    """β after ``progress`` epochs: linear warm-up from 0 over ``warmup_epochs``, then ``config.beta``."""
    if config.warmup_epochs <= 0:
        return config.beta
    return config.beta * min(1.0, progress / config.warmup_epochs)


def capacity_at(config, step: int) -> float:
    """Capacity C (nats) at optimisation ``step``: linear from 0 to ``capacity_max`` over
    ``capacity_steps`` steps, then constant (Burgess et al. 2018, sec. 5)."""
    return config.capacity_max * min(1.0, step / config.capacity_steps)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per value: x in [0, 1] -> {0, 1} with P(1) = x (dynamic/static binarization)."""
    return torch.bernoulli(x, generator=generator)


def _batches(train, batch_size: int, generator: torch.Generator, labels: torch.Tensor | None = None,
             conditional: bool = False, rank: int = 0, world_size: int = 1):
    """``(x, c, global batch size)`` triples. A tensor (and its labels) is batched by slicing a
    shuffled index (this rank's shard of it, :func:`vaekit.distributed.shard`); a DataLoader's
    batches come as they are (c = the batch's second entry for a conditional model, else None)."""
    if torch.is_tensor(train):
        order = torch.randperm(len(train), generator=generator)
        for index, global_size in distributed.shard(order, batch_size, rank, world_size):
            c = None if labels is None else labels[index.to(labels.device)]
            yield train[index.to(train.device)], c, global_size
    else:
        sizes = None
        for i, batch in enumerate(train):
            sizes = getattr(train.batch_sampler, "global_sizes", None) if i == 0 else sizes
            pair = isinstance(batch, (tuple, list))
            xb = batch[0] if pair else batch
            yield xb, (batch[1] if pair and conditional else None), sizes[i] if sizes else len(xb) * world_size


def data_loader(dataset, batch_size: int, generator: torch.Generator, options: RunOptions,
                device: torch.device) -> torch.utils.data.DataLoader:
    """A DataLoader of a map-style ``dataset`` (e.g. images read from disk) that batches exactly as
    :func:`fit` batches a tensor: a permutation per epoch from ``generator``, this rank's shard of
    every global batch, ``options.num_workers`` worker processes, pinned memory on CUDA."""
    sampler = distributed.ShardBatchSampler(len(dataset), batch_size, generator,
                                            distributed.rank(), distributed.world_size())
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=options.num_workers,
                                       pin_memory=device.type == "cuda",
                                       persistent_workers=options.num_workers > 0,
                                       # worker seeds from their own generator: the global RNG (the
                                       # noise of the objective) advances as with a tensor
                                       generator=torch.Generator().manual_seed(distributed.rank()))


class TrainingStep(nn.Module):
    """The training loss of ``model`` as a module, so that DistributedDataParallel and
    torch.compile wrap one forward: ``forward(x, c, beta)`` returns
    ``loss_fn(given(model, c), x, config, beta)`` (c: the condition of a conditional model, or None)."""

    def __init__(self, model: nn.Module, loss_fn: Callable, config):
        super().__init__()
        self.model, self.loss_fn, self.config = model, loss_fn, config

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, beta: float, **schedule) -> dict[str, torch.Tensor]:
        """x ``(batch, *data_shape)``, c ``(batch,)`` or None -> the loss dict of :data:`vaekit.objectives.LOSSES`
        (``schedule``: scheduled loss settings such as the capacity C)."""
        return self.loss_fn(given(self.model, c), x, self.config, beta, **schedule)


def _wrap(model: nn.Module, loss_fn: Callable, config, options: RunOptions, device: torch.device) -> nn.Module:
    """The training step, in DDP when a process group is up, compiled when asked."""
    step: nn.Module = TrainingStep(model, loss_fn, config)
    if distributed.world_size() > 1:
        step = nn.parallel.DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(step) if options.compile else step


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


@torch.no_grad()
def validate(model, x: torch.Tensor, config, batch_size: int = 1000,
             labels: torch.Tensor | None = None) -> dict[str, float]:
    """Validation metrics with the target β, averaged over examples (nats per example).

    ``loss`` = −(reconstruction − β·KL), the quantity early stopping watches. ``labels``
    ``(M,)``: the conditions of a conditional model. Under torch.distributed each rank evaluates
    its part of ``x`` and the sums are all-reduced, so every rank returns the same numbers.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    world, rank = distributed.world_size(), distributed.rank()
    part = x.tensor_split(world)[rank]
    part_labels = None if labels is None else labels.tensor_split(world)[rank]
    sums = torch.zeros(len(LOGGED), dtype=torch.float64)
    for start in range(0, len(part), batch_size):
        c = None if part_labels is None else part_labels[start:start + batch_size]
        out = vae_loss(given(model, c), part[start:start + batch_size].to(device), config.replace(objective="elbo"),
                       config.beta)
        n = len(out["elbo"])
        sums += torch.tensor([out["loss"].item() * n] + [out[key].sum().item() for key in LOGGED[1:]],
                             dtype=torch.float64)
    sums = distributed.all_reduce_sum(sums)
    model.train(was_training)
    return {key: value / len(x) for key, value in zip(LOGGED, sums.tolist())}


def fit(model, train, config, val: torch.Tensor | None = None, checkpoint: str | Path | None = None,
        resume: bool = False, on_epoch_end: Callable[[dict, list], None] | None = None,
        progress: bool = True, labels: torch.Tensor | None = None,
        val_labels: torch.Tensor | None = None, options: RunOptions | None = None) -> list[dict]:
    """Train ``model`` with the loss :data:`vaekit.objectives.LOSSES` registers for ``config.model``.

    Args:
        model: an AE/VAE built for the data (on the device to train on, unless ``options`` says).
        train: ``(N, *data_shape)`` tensor, batched by slicing a shuffled index (seeded by
            ``config.seed``); or a map-style Dataset of examples (e.g. images read from disk),
            batched the same way by :func:`data_loader` with ``options.num_workers`` workers; or
            a DataLoader, whose batches are used as they come.
        config: :class:`~vaekit.config.Config` (lr, epochs, batch_size, beta, warm-up, ...).
        val: optional ``(M, *data_shape)`` tensor for validation metrics and early stopping.
        checkpoint: file to write after every epoch (atomically) and to resume from.
        resume: continue from ``checkpoint``; the end state equals an uninterrupted run's.
        on_epoch_end: called with (this epoch's metrics, the whole history) after each epoch
            (on rank 0 only under torch.distributed).
        progress: show a progress bar (rank 0 only).
        labels, val_labels: ``(N,)`` / ``(M,)`` class indices of ``train`` / ``val``, the condition
            c of a conditional model (CVAE), batched together with x. With a DataLoader, a
            conditional model takes c from the second entry of each batch.
        options: device, precision, compile, channels-last and loader workers
            (:class:`~vaekit.runtime.RunOptions`); None keeps the model where it is, in float32.

    Under torchrun (an initialised process group), the model is wrapped in
    DistributedDataParallel; each rank trains on its shard of every global batch of
    ``batch_size × world_size`` examples (see :mod:`vaekit.distributed`), train and validation
    metrics are all-reduced, and only rank 0 writes the checkpoint. Every rank must call ``fit``
    with the same arguments.

    Returns:
        The history: one dict per epoch with ``train_*`` and ``val_*`` metrics (nats per example,
        averaged over the epoch), ``beta``, ``step``, ``time`` (wall-clock seconds) and ``cpu_time``
        (CPU seconds of this process: robust to other load on a shared machine).

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the message names the step; the checkpoint of
            the last good epoch is kept).
        ValueError: a conditional model without labels.
    """
    if model.conditional and torch.is_tensor(train) and (labels is None or (val is not None and val_labels is None)):
        raise ValueError(f"model {type(model).__name__} is conditional: pass labels= (and val_labels=) class indices")
    device = runtime.resolve_device(options.device) if options else next(model.parameters()).device
    options = options or RunOptions()
    rank, world = distributed.rank(), distributed.world_size()
    model.to(device)
    channels_last = options.channels_last and runtime.uses_conv(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = LOSSES[config.model]
    # foreach: one fused kernel per state tensor kind instead of a Python loop over parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    scaler = runtime.grad_scaler(device, options.precision)
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed + rank)  # ranks draw independent noise; rank 0 = one process
    dynamic = config.resolved_binarize == "dynamic"
    if torch.is_tensor(train):
        train = train.to(device)  # in-memory data are copied to the device once
    elif not isinstance(train, torch.utils.data.DataLoader):
        train = data_loader(train, config.batch_size, shuffle, options, device)
    n_train = len(train) if torch.is_tensor(train) else len(train.dataset)
    if config.dataset_size == 0:
        config = config.replace(dataset_size=n_train)
    state = {"epoch": 0, "step": 0, "history": [], "best_loss": math.inf, "bad_epochs": 0, "elapsed": 0.0}
    best = None
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state, rng = load_checkpoint(checkpoint, model, optimizer)
        _set_rng_state(shuffle, rng, fallback_seed=config.seed + rank + 1000 * state["epoch"])
        best = {k[5:]: v for k, v in rng.items() if k.startswith("best.")} or None
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    step = _wrap(model, loss_fn, config, options, device)
    hooks = runtime.float32_outputs(model.encoder, model.decoder) if options.precision != "32" else []
    model.train()
    remaining = [] if state.get("stopped_early") else range(state["epoch"], config.epochs)
    bar = tqdm(remaining, initial=state["epoch"], total=config.epochs,
               desc="train", unit="epoch", disable=None if (progress and rank == 0) else True, dynamic_ncols=True)  # None: off when not a terminal
    for epoch in bar:
        start, cpu_start = time.perf_counter(), time.process_time()
        steps, terms = [], []
        seen = 0  # examples of the global batches so far (all ranks together)
        for xb, cb, global_size in _batches(train, config.batch_size, shuffle, labels, model.conditional, rank, world):
            xb = runtime.to_device(xb, device, channels_last)
            cb = None if cb is None else cb.to(device, non_blocking=True)
            if dynamic:
                xb = binarize(xb)
            beta = beta_at(config, epoch + seen / n_train)
            schedule = {"capacity": capacity_at(config, state["step"] + len(steps))} if config.capacity_max > 0 else {}
            with runtime.autocast(device, options.precision):
                out = step(xb, cb, beta, **schedule)
            # DDP averages gradients over ranks: weight by this rank's share of the global batch.
            loss = out["loss"] if world == 1 else out["loss"] * (len(xb) * world / global_size)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            steps.append(out["loss"].detach())
            terms.append([out[k] for k in LOGGED[1:]])
            seen += global_size
        losses = torch.stack(steps).float()
        reduced = distributed.all_reduce_sum(losses)  # NaN on any rank stops every rank
        finite = torch.isfinite(reduced)
        if not finite.all():
            bad = state["step"] + int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"the loss became {reduced[~finite][0].item()} at step {bad} (epoch {epoch + 1}); "
                f"the last good checkpoint (epoch {epoch}) is kept; lower --lr or set --grad-clip"
            )
        state["step"] += len(steps)
        state["elapsed"] += time.perf_counter() - start
        sizes = torch.tensor([len(t[0]) for t in terms], device=device, dtype=losses.dtype)
        sums = [(losses * sizes).sum()] + [torch.cat(column).sum() for column in zip(*terms)]
        metrics = {"epoch": epoch + 1, "step": state["step"], "beta": beta,
                   **{f"train_{k}": v / seen
                      for k, v in zip(LOGGED, distributed.all_reduce_sum(torch.stack(sums).float()).tolist())},
                   **schedule}
        if val is not None and len(val):
            metrics.update({f"val_{k}": v for k, v in validate(model, val, config, labels=val_labels).items()})
            if metrics["val_loss"] < state["best_loss"]:
                state["best_loss"], state["bad_epochs"] = metrics["val_loss"], 0
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
        probe, probe_c = (val, val_labels) if val is not None and len(val) else (train, labels)
        points = config.kl_diagnostic_points
        if points and model.stochastic and torch.is_tensor(probe) and (probe_c is not None or not model.conditional):
            # what β is doing: Chen et al. 2018's KL terms, on up to kl_diagnostic_points examples
            c = None if probe_c is None else probe_c[:points].to(device)
            diagnostics = kl_decomposition(model, probe[:points].to(device), seed=config.seed, labels=c)
            metrics.update({f"{'val' if probe is val else 'train'}_{k}": v for k, v in diagnostics.items()})
        metrics["time"] = time.perf_counter() - start
        metrics["cpu_time"] = time.process_time() - cpu_start
        state["history"].append(metrics)
        state["epoch"] = epoch + 1
        stop = config.patience > 0 and state["bad_epochs"] >= config.patience
        state["stopped_early"] = stop
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        if checkpoint is not None:
            rng = _rng_state(shuffle)
            if best is not None and config.patience > 0:
                rng.update({f"best.{k}": v for k, v in best.items()})
            if rank == 0:
                save_checkpoint(checkpoint, model, optimizer, state, rng)
        bar.set_postfix(loss=f"{metrics['train_loss']:.2f}", elbo=f"{metrics['train_elbo']:.2f}",
                        **({"val_elbo": f"{metrics['val_elbo']:.2f}"} if "val_elbo" in metrics else {}))
        if on_epoch_end is not None and rank == 0:
            on_epoch_end(metrics, state["history"])
        if stop:
            break
    bar.close()
    for hook in hooks:
        hook.remove()
    if checkpoint is not None:
        distributed.barrier()  # the checkpoint rank 0 wrote exists for every rank from here on
    if config.patience > 0 and best is not None:
        model.load_state_dict(best)
    model.eval()
    return state["history"]
