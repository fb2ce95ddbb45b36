"""What a training run does besides training, as hooks of :func:`vaekit.training.fit`
(:class:`vaekit.evaluation.kl.KLDiagnostics` is one more, from the evaluation layer).

A hook has any of three methods, called in the order the hooks are given: ``metrics(loop,
metrics)`` adds entries to an epoch's metrics before they are recorded; ``epoch_end(loop)`` runs
after the epoch is recorded (``loop.history[-1]``); ``close(loop)`` runs once at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..runtime import distributed
from ..runtime.progress import Reporter
from .checkpoint import save_checkpoint


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
    """Training progress on rank 0 (:class:`vaekit.runtime.progress.Reporter`): a tqdm bar on a
    terminal; otherwise (logs, CI, nohup) one plain line per epoch or per ``every`` seconds,
    whichever is rarer, and always the first and last epoch; nothing inside ``progress.silenced()``.

    Each line: epoch, train loss, train ELBO (and validation ELBO), seconds since the start.
    """

    def __init__(self, total: int, stream=None, every: float = 10.0):
        self.total, self.stream, self.every = total, stream, every
        self.reporter = None
        self.start = time.perf_counter()  # lines show the seconds since the run began

    def epoch_end(self, loop) -> None:
        """Advance the bar, or print a line when due."""
        if not distributed.is_main():
            return
        if self.reporter is None:
            self.reporter = Reporter(self.total, "train", "epoch", self.stream, self.every, initial=loop.epoch - 1,
                                     start=self.start)
        m = loop.history[-1]
        values = {"loss": m["train_loss"], "elbo": m["train_elbo"],
                  **({"val_elbo": m["val_elbo"]} if "val_elbo" in m else {})}
        self.reporter.update(1, force=loop.stopped_early, **values)

    def close(self, loop) -> None:
        """Close the bar."""
        if self.reporter is not None:
            self.reporter.close()
