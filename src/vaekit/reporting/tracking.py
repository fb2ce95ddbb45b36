"""Experiment tracking: where a run's per-epoch metrics go besides ``metrics.jsonl``.

``LOGGERS`` maps ``vaekit train --logger NAME`` to a factory ``(run_dir, model, test_x, c) ->
logger`` with ``log(metrics)`` (called after every epoch) and ``close()``. metrics.jsonl is
always written by :func:`vaekit.pipeline.train_run`; "jsonl" adds nothing, "tensorboard" writes
TensorBoard events to ``RUN/tensorboard/``: every numeric metric, and for image data the
reconstructions of 16 fixed test inputs and 16 samples from fixed prior draws each epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import given


class NullLogger:
    """Writes nothing beyond metrics.jsonl."""

    def __init__(self, run_dir=None, model=None, test_x=None, c=None):
        pass

    @classmethod
    def check(cls) -> None:
        """Always available."""

    def log(self, metrics: dict) -> None:
        """Ignore ``metrics``."""

    def close(self) -> None:
        """Nothing to close."""


class TensorBoardLogger:
    """Scalars and image grids per epoch to ``run_dir/tensorboard`` (needs the ``tensorboard`` package).

    Raises:
        ImportError: tensorboard is not installed (the message says how to install it).
    """

    def __init__(self, run_dir, model, test_x: torch.Tensor, c: torch.Tensor | None = None):
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.model = model
        self.images = len(model.data_shape) == 3
        self.x = test_x[:16]
        self.c = None if c is None else c[:16]
        self.z_seed = 0

    @classmethod
    def check(cls) -> None:
        """Raise ImportError (saying how to install it) when tensorboard is missing."""
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ImportError("--logger tensorboard needs the tensorboard package: pip install tensorboard "
                              "(or pip install 'vaekit[tensorboard]')") from None

    def log(self, metrics: dict) -> None:
        """Write every numeric entry of ``metrics`` at step ``metrics["epoch"]``, and the image grids."""
        epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key,
                                       value, epoch)
        if self.images:
            self._log_images(epoch)
        self.writer.flush()

    @torch.no_grad()
    def _log_images(self, epoch: int) -> None:
        """Reconstructions of the fixed test inputs and samples of fixed prior draws (no global RNG
        is used, so a resumed run stays identical to an uninterrupted one)."""
        from .plots import image_grid

        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        x = self.x.to(device)
        recon = given(self.model, self.c).reconstruct(x)
        pairs = torch.stack([x, recon], 1).flatten(0, 1)  # input, reconstruction, input, ...
        samples = self.model.sample(16, generator=torch.Generator().manual_seed(self.z_seed))
        self.writer.add_image("reconstructions", image_grid(pairs, 8), epoch, dataformats="HWC")
        self.writer.add_image("samples", image_grid(samples, 8), epoch, dataformats="HWC")
        self.model.train(was_training)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


#: ``--logger`` name -> class(run_dir, model, test_x, c) with check(), log(metrics) and close().
LOGGERS = {
    "jsonl": NullLogger,
    "tensorboard": TensorBoardLogger,
}


def check_logger(name: str) -> None:
    """Fail early, before a run folder is written, when logger ``name`` cannot be used.

    Raises:
        ValueError: an unknown name. ImportError: tensorboard missing for "tensorboard".
    """
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; choose one of: {', '.join(LOGGERS)}")
    LOGGERS[name].check()


def build_logger(name: str, run_dir, model, test_x: torch.Tensor, c: torch.Tensor | None = None):
    """The logger ``name`` of :data:`LOGGERS` for a run (see :func:`check_logger` for the errors)."""
    check_logger(name)
    return LOGGERS[name](run_dir, model, test_x, c)
