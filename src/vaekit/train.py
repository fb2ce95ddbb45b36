"""One training loop for every model: Adam, KL warm-up, clipping, early stopping, checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .io import load_checkpoint, save_checkpoint
from .models import given
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


def _batches(train, batch_size: int, generator: torch.Generator, labels: torch.Tensor | None = None,
             conditional: bool = False):
    """``(x, c)`` batches of a tensor (and its labels) by slicing a shuffled index, or the batches
    of a DataLoader as they come (c = the batch's second entry for a conditional model, else None)."""
    if torch.is_tensor(train):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch_size):
            index = order[start:start + batch_size]
            yield train[index], (None if labels is None else labels[index])
    else:
        for batch in train:
            pair = isinstance(batch, (tuple, list))
            yield (batch[0] if pair else batch), (batch[1] if pair and conditional else None)


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
def validate(model, x: torch.Tensor, config, batch_size: int = 1000,
             labels: torch.Tensor | None = None) -> dict[str, float]:
    """Validation metrics with the target β, averaged over examples (nats per example).

    ``loss`` = −(reconstruction − β·KL), the quantity early stopping watches. ``labels``
    ``(M,)``: the conditions of a conditional model.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = dict.fromkeys(LOGGED, 0.0)
    for start in range(0, len(x), batch_size):
        c = None if labels is None else labels[start:start + batch_size]
        out = vae_loss(given(model, c), x[start:start + batch_size].to(device), config.replace(objective="elbo"),
                       config.beta)
        n = len(out["elbo"])
        sums["loss"] += out["loss"].item() * n
        for key in LOGGED[1:]:
            sums[key] += out[key].sum().item()
    model.train(was_training)
    return {key: value / len(x) for key, value in sums.items()}


def fit(model, train, config, val: torch.Tensor | None = None, checkpoint: str | Path | None = None,
        resume: bool = False, on_epoch_end: Callable[[dict, list], None] | None = None,
        progress: bool = True, labels: torch.Tensor | None = None,
        val_labels: torch.Tensor | None = None) -> list[dict]:
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
        labels, val_labels: ``(N,)`` / ``(M,)`` class indices of ``train`` / ``val``, the condition
            c of a conditional model (CVAE), batched together with x. With a DataLoader, a
            conditional model takes c from the second entry of each batch.

    Returns:
        The history: one dict per epoch with ``train_*`` and ``val_*`` metrics (nats per example,
        averaged over the epoch), ``beta``, ``step`` and ``time`` (seconds).

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the message names the step; the checkpoint of
            the last good epoch is kept).
        ValueError: a conditional model without labels.
    """
    if model.conditional and torch.is_tensor(train) and (labels is None or (val is not None and val_labels is None)):
        raise ValueError(f"model {type(model).__name__} is conditional: pass labels= (and val_labels=) class indices")
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
        start = time.perf_counter()
        steps, terms = [], []
        seen = 0
        for xb, cb in _batches(train, config.batch_size, shuffle, labels, model.conditional):
            xb = xb.to(device, non_blocking=True)
            if dynamic:
                xb = binarize(xb)
            beta = beta_at(config, epoch + seen / n_train)
            out = loss_fn(given(model, cb), xb, config, beta)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            steps.append(out["loss"].detach())
            terms.append([out[k] for k in LOGGED[1:]])
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
        sizes = torch.tensor([len(t[0]) for t in terms], device=device, dtype=losses.dtype)
        sums = [(losses * sizes).sum()] + [torch.cat(column).sum() for column in zip(*terms)]
        metrics = {"epoch": epoch + 1, "step": state["step"], "beta": beta,
                   **{f"train_{k}": v / seen for k, v in zip(LOGGED, torch.stack(sums).tolist())}}
        if val is not None and len(val):
            metrics.update({f"val_{k}": v for k, v in validate(model, val, config, labels=val_labels).items()})
            if metrics["val_loss"] < state["best_loss"]:
                state["best_loss"], state["bad_epochs"] = metrics["val_loss"], 0
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
        metrics["time"] = time.perf_counter() - start
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
