"""The state of a training run (:class:`TrainState`): what hooks see and checkpoints keep, with
the RNG states a bit-identical resume restores."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ..config import Config
from ..runtime import distributed
from ..runtime.threads import ThreadChoice
from .checkpoint import load_checkpoint
from .optimizer import optimizer_kind


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
    config: Config
    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    bad_epochs: int = 0
    elapsed: float = 0.0
    stopped_early: bool = False
    best: dict | None = None
    threads: ThreadChoice | None = None
    channels_last: bool = False  # conv weights and batches in the channels-last layout (RunOptions.channels_last)

    #: the loop fields a checkpoint stores as JSON
    SAVED = ("epoch", "step", "history", "best_loss", "bad_epochs", "elapsed", "stopped_early")

    def state(self) -> dict:
        """JSON-ready loop state (and the gradient scaler's, when in use)."""
        state = {k: getattr(self, k) for k in self.SAVED}
        state["optimizer"] = optimizer_kind(self.optimizer)
        if self.threads is not None and self.threads.source == "policy":  # the count in use now, for a resume
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
        saved = state["threads"] if isinstance(state.get("threads"), dict) else {}
        n = saved.get("now")
        if isinstance(n, int) and n >= 1 and self.threads is not None and self.threads.source == "policy":
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
