"""One training loop for every model: Adam, KL warm-up, clipping, early stopping, checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .io import load_checkpoint, save_checkpoint
from .objectives import LOSSES, vae_loss

LOGGED = ("loss", "elbo", "reconstruction", "kl")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def beta_at(config, progress: float) -> float:
    """β after ``progress`` epochs: linear warm-up from 0 over ``warmup_epochs``, then ``config.beta``."""
    if config.warmup_epochs <= 0:
        return config.beta
    return config.beta * min(1.0, progress / config.warmup_epochs)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per value: x in [0, 1] -> {0, 1} with P(1) = x (dynamic/static binarization)."""
    return torch.bernoulli(x, generator=generator)


def _batches(train, batch_size: int, generator: torch.Generator):
    """Batches of a tensor by slicing a shuffled index, or the batches of a DataLoader as they come."""
    if torch.is_tensor(train):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch_size):
            yield train[order[start:start + batch_size]]
    else:
        for batch in train:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _rng_state(shuffle: torch.Generator) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(shuffle: torch.Generator, rng: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


@torch.no_grad()
def validate(model, x: torch.Tensor, config, batch_size: int = 1000) -> dict[str, float]:
    """Validation metrics with the target β, averaged over examples (nats per example).

    ``loss`` = −(reconstruction − β·KL), the quantity early stopping watches.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = dict.fromkeys(LOGGED, 0.0)
    for start in range(0, len(x), batch_size):
        out = vae_loss(model, x[start:start + batch_size].to(device), config.replace(objective="elbo"), config.beta)
        n = len(out["elbo"])
        sums["loss"] += out["loss"].item() * n
        for key in LOGGED[1:]:
            sums[key] += out[key].sum().item()
    model.train(was_training)
    return {key: value / len(x) for key, value in sums.items()}


def fit(model, train, config, val: torch.Tensor | None = None, checkpoint: str | Path | None = None,
        resume: bool = False, on_epoch_end: Callable[[dict, list], None] | None = None,
        progress: bool = True) -> list[dict]:
    """Train ``model`` with the loss :data:`vaekit.objectives.LOSSES` registers for ``config.model``.

    Args:
        model: an AE/VAE built for the data (on the device to train on).
        train: ``(N, *data_shape)`` tensor, batched by slicing a shuffled index (seeded by
            ``config.seed``), or a DataLoader for data that do not fit in memory.
        config: :class:`~vaekit.config.Config` (lr, epochs, batch_size, beta, warm-up, ...).
        val: optional ``(M, *data_shape)`` tensor for validation metrics and early stopping.
        checkpoint: file to write after every epoch (atomically) and to resume from.
        resume: continue from ``checkpoint``; the end state equals an uninterrupted run's.
        on_epoch_end: called with (this epoch's metrics, the whole history) after each epoch.
        progress: show a progress bar.

    Returns:
        The history: one dict per epoch with ``train_*`` and ``val_*`` metrics (nats per example,
        averaged over the epoch), ``beta``, ``step``, ``time`` (wall-clock seconds) and ``cpu_time``
        (CPU seconds of this process: robust to other load on a shared machine).

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the message names the step; the checkpoint of
            the last good epoch is kept).
    """
    device = next(model.parameters()).device
    loss_fn = LOSSES[config.model]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    dynamic = config.resolved_binarize == "dynamic"
    n_train = len(train) if torch.is_tensor(train) else len(train.dataset)
    state = {"epoch": 0, "step": 0, "history": [], "best_loss": math.inf, "bad_epochs": 0, "elapsed": 0.0}
    best = None
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state, rng = load_checkpoint(checkpoint, model, optimizer)
        _set_rng_state(shuffle, rng)
        best = {k[5:]: v for k, v in rng.items() if k.startswith("best.")} or None
    model.train()
    remaining = [] if state.get("stopped_early") else range(state["epoch"], config.epochs)
    bar = tqdm(remaining, initial=state["epoch"], total=config.epochs,
               desc="train", unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        start, cpu_start = time.perf_counter(), time.process_time()
        steps, sums = [], torch.zeros(len(LOGGED), device=device)
        seen = 0
        for xb in _batches(train, config.batch_size, shuffle):
            xb = xb.to(device, non_blocking=True)
            if dynamic:
                xb = binarize(xb)
            beta = beta_at(config, epoch + seen / n_train)
            out = loss_fn(model, xb, config, beta)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            steps.append(out["loss"].detach())
            sums += torch.stack([out["loss"].detach() * len(xb)] + [out[k].sum() for k in LOGGED[1:]])
            seen += len(xb)
        losses = torch.stack(steps)
        finite = torch.isfinite(losses)
        if not finite.all():
            bad = state["step"] + int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"the loss became {losses[~finite][0].item()} at step {bad} (epoch {epoch + 1}); "
                f"the last good checkpoint (epoch {epoch}) is kept; lower --lr or set --grad-clip"
            )
        state["step"] += len(steps)
        state["elapsed"] += time.perf_counter() - start
        metrics = {"epoch": epoch + 1, "step": state["step"], "beta": beta,
                   **{f"train_{k}": v / seen for k, v in zip(LOGGED, sums.tolist())}}
        if val is not None and len(val):
            metrics.update({f"val_{k}": v for k, v in validate(model, val, config).items()})
            if metrics["val_loss"] < state["best_loss"]:
                state["best_loss"], state["bad_epochs"] = metrics["val_loss"], 0
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
        metrics["time"] = time.perf_counter() - start
        metrics["cpu_time"] = time.process_time() - cpu_start
        state["history"].append(metrics)
        state["epoch"] = epoch + 1
        stop = config.patience > 0 and state["bad_epochs"] >= config.patience
        state["stopped_early"] = stop
        if checkpoint is not None:
            rng = _rng_state(shuffle)
            if best is not None and config.patience > 0:
                rng.update({f"best.{k}": v for k, v in best.items()})
            save_checkpoint(checkpoint, model, optimizer, state, rng)
        bar.set_postfix(loss=f"{metrics['train_loss']:.2f}", elbo=f"{metrics['train_elbo']:.2f}",
                        **({"val_elbo": f"{metrics['val_elbo']:.2f}"} if "val_elbo" in metrics else {}))
        if on_epoch_end is not None:
            on_epoch_end(metrics, state["history"])
        if stop:
            break
    bar.close()
    if config.patience > 0 and best is not None:
        model.load_state_dict(best)
    model.eval()
    return state["history"]
