"""What a training run does besides training, as hooks of :func:`vaekit.training.fit`
(:class:`vaekit.evaluation.kl.KLDiagnostics` is one more, from the evaluation layer).

A hook has any of four methods, called in the order the hooks are given: ``metrics(loop,
metrics)`` adds entries to an epoch's metrics before they are recorded; ``epoch_end(loop)`` runs
after the epoch is recorded (``loop.history[-1]``); ``flush(loop)`` finishes work left running
(a checkpoint being written), at the end and also when training raises; ``close(loop)`` runs
once at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..runtime import distributed, files
from ..runtime.progress import Reporter
from .checkpoint import checkpoint_snapshot


class Checkpoint:
    """Write model, optimizer, loop state and RNG states to ``path`` after every epoch,
    atomically (rank 0 writes; every rank takes part in gathering the RNG states).

    The state is snapshotted at the end of the epoch (copies of the tensors,
    :func:`~vaekit.training.checkpoint.checkpoint_snapshot`); serialising and writing it (and the
    fsync that makes it durable) run in a background thread while the next epoch trains
    (:class:`~vaekit.runtime.files.BackgroundWriter`), and are waited for before the next
    checkpoint, at the end of training and when training raises (``flush``), so the file on disk
    is always a whole checkpoint of a finished epoch. An error of the write (e.g. a full disk) is
    raised at the next epoch's end or by ``flush``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._writer = files.BackgroundWriter("vaekit-checkpoint")

    def epoch_end(self, loop) -> None:
        """Replace the checkpoint with this epoch's state (written in the background)."""
        rng = loop.rng_state()  # a collective under DDP: every rank calls it
        if distributed.is_main():
            snapshot = checkpoint_snapshot(loop.model, loop.optimizer, loop.state(), rng)
            self._writer.write(self.path, snapshot)  # after the previous one is on disk

    def flush(self, loop=None) -> None:
        """Wait until the last checkpoint is on disk; raise the error of its write, if any."""
        self._writer.flush()

    def close(self, loop) -> None:
        """The checkpoint rank 0 wrote exists for every rank from here on."""
        self._writer.close()
        distributed.barrier()


class EpochLog:
    """Call ``callback(history)`` after every epoch on rank 0 (e.g. write metrics.jsonl, a tracker);
    ``flush()``, when given, at the end and when training raises (e.g. wait for writes the callback
    left running in the background)."""

    def __init__(self, callback: Callable[[list], None], flush: Callable[[], None] | None = None):
        self.callback, self._flush = callback, flush

    def epoch_end(self, loop) -> None:
        """Pass the whole history (this epoch last)."""
        if distributed.is_main():
            self.callback(loop.history)

    def flush(self, loop=None) -> None:
        """Finish what the callback left running (the ``flush`` given)."""
        if self._flush is not None and distributed.is_main():
            self._flush()


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
            self.reporter = Reporter(
                self.total, "train", "epoch", self.stream, self.every, initial=loop.epoch - 1, start=self.start
            )
        m = loop.history[-1]
        values = {
            "loss": m["train_loss"],
            "elbo": m["train_elbo"],
            **({"val_elbo": m["val_elbo"]} if "val_elbo" in m else {}),
        }
        self.reporter.update(1, force=loop.stopped_early, **values)

    def close(self, loop) -> None:
        """Close the bar."""
        if self.reporter is not None:
            self.reporter.close()
