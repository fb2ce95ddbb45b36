"""What a training run does besides training, as hooks of :func:`vaekit.training.fit`
(:class:`vaekit.evaluation.kl.KLDiagnostics` is one more, from the evaluation layer).

A hook has any of three methods, called in the order the hooks are given: ``metrics(loop,
metrics)`` adds entries to an epoch's metrics before they are recorded; ``epoch_end(loop)`` runs
after the epoch is recorded (``loop.history[-1]``); ``close(loop)`` runs once at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

from ..io import save_checkpoint
from . import distributed


class Checkpoint:
    """Write model, optimizer, loop state and RNG states to ``path`` after every epoch,
    atomically (rank 0 writes; every rank takes part in gathering the RNG states)."""

    def __init__(self, path):
        self.path = Path(path)

    def epoch_end(self, loop) -> None:
        """Replace the checkpoint with this epoch's state."""
        rng = loop.rng_state()  # a collective under DDP: every rank calls it
        if distributed.is_main():
            save_checkpoint(self.path, loop.model, loop.optimizer, loop.state(), rng)

    def close(self, loop) -> None:
        """The checkpoint rank 0 wrote exists for every rank from here on."""
        distributed.barrier()


class EpochLog:
    """Call ``callback(history)`` after every epoch on rank 0 (e.g. write metrics.jsonl, a tracker)."""

    def __init__(self, callback: Callable[[list], None]):
        self.callback = callback

    def epoch_end(self, loop) -> None:
        """Pass the whole history (this epoch last)."""
        if distributed.is_main():
            self.callback(loop.history)


class Progress:
    """Training progress on rank 0: a tqdm bar on a terminal; otherwise (logs, CI, nohup) one
    plain line per epoch or per ``every`` seconds, whichever is rarer, and always the last epoch.

    Each line: epoch, train loss, train ELBO (and validation ELBO), seconds since the start.
    """

    def __init__(self, total: int, stream=None, every: float = 10.0):
        self.total, self.every = total, every
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.bar = None
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()

    def epoch_end(self, loop) -> None:
        """Advance the bar, or print a line when due."""
        if not distributed.is_main():
            return
        m = loop.history[-1]
        values = {"loss": f"{m['train_loss']:.2f}", "elbo": f"{m['train_elbo']:.2f}",
                  **({"val_elbo": f"{m['val_elbo']:.2f}"} if "val_elbo" in m else {})}
        if self.terminal:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, initial=loop.epoch - 1, desc="train", unit="epoch",
                                dynamic_ncols=True, file=self.stream)
            self.bar.update(1)
            self.bar.set_postfix(**values)
            return
        now = time.perf_counter()
        if now - self.last >= self.every or loop.epoch == self.total or loop.stopped_early or self.last == self.start:
            self.last = now
            text = " ".join(f"{k} {v}" for k, v in values.items())
            print(f"train: epoch {loop.epoch}/{self.total} {text} ({now - self.start:.1f} s)",
                  file=self.stream, flush=True)

    def close(self, loop) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
