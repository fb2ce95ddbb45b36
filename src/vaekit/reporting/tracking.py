"""Experiment tracking: where a run's metrics, parameters and files go besides the run folder.

:func:`vaekit.run.train` always writes ``metrics.jsonl``; a :class:`Logger` sends the same
numbers to a tracker. ``vaekit train --logger NAME`` picks one of :data:`LOGGERS`:

- ``jsonl``: nothing more (:class:`NullLogger`);
- ``tensorboard``: TensorBoard events in ``RUN/tensorboard/`` (:class:`TensorBoardLogger`);
- ``mlflow``: an MLflow run (:class:`vaekit.reporting.mlflow_logger.MLflowLogger`);
- ``wandb``: a Weights & Biases run (:class:`vaekit.reporting.wandb_logger.WandbLogger`).

From the API, pass an instance to :func:`vaekit.run.train`: ``vaekit.train(config, "runs/a",
tracker=MLflowLogger(experiment="x"))`` (:func:`build_logger` makes one from a name).
A tracker's own package is imported only when that tracker is chosen.

The life of a logger in a run: :meth:`Logger.check` (before anything is written), then
:meth:`Logger.start` with a :class:`RunContext`, :meth:`Logger.log` once per epoch, then after
the run folder is complete :meth:`Logger.finish` with the summary, and :meth:`Logger.close`
("FINISHED", or "FAILED" / "KILLED" when the run raised). What a tracker needs to continue the
same run on ``--resume`` (a run id, the last epoch it received) is kept in ``RUN/tracking.json``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from .. import io
from ..models import condition
from ..run import RunContext, param_value  # noqa: F401  (the tracker API, re-exported for the loggers)

#: File of the run folder that remembers each tracker's run id and last logged epoch.
STATE = "tracking.json"
#: Subfolder of the run folder that holds the TensorBoard event files.
EVENTS = "tensorboard"


def numeric_items(metrics: dict, prefix: str = ""):
    """``(name, float)`` pairs of a metrics dict: numbers as they are, lists of numbers as
    ``name/0``, ``name/1``, ...; ``epoch`` and non-numeric entries are left out."""
    for key, value in metrics.items():
        if key == "epoch":
            continue
        if isinstance(value, (int, float)):
            yield prefix + key, float(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            yield from ((f"{prefix}{key}/{i}", float(v)) for i, v in enumerate(value))


def vaekit_version() -> str:
    """The vaekit version, recorded as a tag of tracked runs."""
    from .._version import __version__

    return __version__


class Logger:
    """Base class of the experiment trackers; every hook does nothing by default.

    Subclasses override :meth:`check`, :meth:`start`, :meth:`log`, :meth:`finish`,
    :meth:`close`, and :meth:`describe`. ``logged_epoch`` is the last epoch sent (restored from
    ``RUN/tracking.json`` on resume), so :meth:`log_history` sends every epoch exactly once.
    """

    #: Name of the ``--logger`` choice, and key of this tracker in ``RUN/tracking.json``.
    name = "jsonl"

    def __init__(self):
        self.run: RunContext | None = None
        self.logged_epoch = 0

    @classmethod
    def check(cls) -> None:
        """Raise ImportError (saying how to install it) when the tracker's package is missing."""

    def start(self, run: RunContext) -> None:
        """Begin tracking ``run`` (on resume: continue the run of ``RUN/tracking.json``)."""
        self.run = run
        self.logged_epoch = int(self.load_state().get("last_epoch", 0)) if run.resume else 0

    def log(self, metrics: dict) -> None:
        """Send one epoch's ``metrics`` (the dict of ``metrics.jsonl``; ``metrics["epoch"]`` is the step)."""

    def log_history(self, history: list[dict]) -> None:
        """Send the epochs of ``history`` not sent yet, and remember the last one in ``RUN/tracking.json``."""
        new = [h for h in history if int(h["epoch"]) > self.logged_epoch]
        for metrics in new:
            self.log(metrics)
            self.logged_epoch = int(metrics["epoch"])
        if new:
            self.save_state(last_epoch=self.logged_epoch)

    def finish(self, summary: dict) -> None:
        """Called once the run folder is complete (summary.json, figures, report.html, weights)."""

    def close(self, status: str = "FINISHED") -> None:
        """End the tracker's run with ``status`` (FINISHED, FAILED or KILLED)."""

    def describe(self) -> dict:
        """Where the tracked run can be found (recorded in summary.json), e.g. a run id and URI."""
        return {}

    def load_state(self) -> dict:
        """This tracker's entry of ``RUN/tracking.json`` (empty when there is none)."""
        path = Path(self.run.run_dir) / STATE
        return io.read_json(path).get(self.name, {}) if path.is_file() else {}

    def save_state(self, **values) -> None:
        """Merge ``values`` into this tracker's entry of ``RUN/tracking.json`` (written atomically)."""
        if self.name == NullLogger.name:
            return
        path = Path(self.run.run_dir) / STATE
        state = io.read_json(path) if path.is_file() else {}
        state[self.name] = {**state.get(self.name, {}), **values}
        io.write_json(path, state)


class NullLogger(Logger):
    """Writes nothing beyond metrics.jsonl."""


class TensorBoardLogger(Logger):
    """Scalars and image grids per epoch to ``RUN/tensorboard`` (needs the ``tensorboard`` package):
    every numeric metric, and for image data the reconstructions of 16 fixed test inputs and the
    decoder means of 16 fixed prior draws.

    Raises:
        ImportError: tensorboard is not installed (the message says how to install it).
    """

    name = "tensorboard"

    @classmethod
    def check(cls) -> None:
        """Raise ImportError (saying how to install it) when tensorboard is missing."""
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ImportError(
                "--logger tensorboard needs the tensorboard package: pip install tensorboard "
                "(or pip install 'vaekit[tensorboard]')"
            ) from None

    def start(self, run: RunContext) -> None:
        """Open the event writer of ``RUN/tensorboard``."""
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        super().start(run)
        self.writer = SummaryWriter(log_dir=str(Path(run.run_dir) / EVENTS))
        self.images = len(run.model.data_shape) == 3
        self.x = run.test_x[:16]
        self.c = None if run.c is None else run.c[:16]

    def log(self, metrics: dict) -> None:
        """Write every numeric entry of ``metrics`` at step ``metrics["epoch"]``, and the image grids."""
        epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(
                    key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key, value, epoch
                )
        if self.images:
            self._log_images(epoch)
        self.writer.flush()

    @torch.no_grad()
    def _log_images(self, epoch: int) -> None:
        """Reconstructions of the fixed test inputs and samples of fixed prior draws (no global RNG
        is used, so a resumed run stays identical to an uninterrupted one)."""
        from .plots import image_grid

        model = self.run.model
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        x = self.x.to(device)
        recon = condition(model, self.c).reconstruct(x)
        pairs = torch.stack([x, recon], 1).flatten(0, 1)  # input, reconstruction, input, ...
        samples = model.sample(16, generator=torch.Generator().manual_seed(0))
        self.writer.add_image("reconstructions", image_grid(pairs, 8), epoch, dataformats="HWC")
        self.writer.add_image("samples", image_grid(samples, 8), epoch, dataformats="HWC")
        model.train(was_training)

    def close(self, status: str = "FINISHED") -> None:
        """Flush and close the event file."""
        if self.run is not None:
            self.writer.close()


#: ``--logger`` name -> :class:`Logger` class, or ``"module:Class"`` of one (imported only when chosen).
LOGGERS: dict[str, type[Logger] | str] = {
    "jsonl": NullLogger,
    "tensorboard": TensorBoardLogger,
    "mlflow": "vaekit.reporting.mlflow_logger:MLflowLogger",
    "wandb": "vaekit.reporting.wandb_logger:WandbLogger",
}


def logger_class(name: str) -> type[Logger]:
    """The :class:`Logger` subclass of ``--logger name``.

    Raises:
        ValueError: an unknown name (the valid ones are listed).
    """
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; choose one of: {', '.join(LOGGERS)}")
    if not isinstance(LOGGERS[name], str):
        return LOGGERS[name]
    module, _, attr = LOGGERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def check_logger(logger: str | Logger) -> None:
    """Fail early, before a run folder is written, when ``logger`` cannot be used.

    Raises:
        ValueError: an unknown name. TypeError: not a name or a Logger.
        ImportError: the tracker's package is missing (the message names the pip command).
    """
    if isinstance(logger, Logger):
        type(logger).check()
    elif isinstance(logger, str):
        logger_class(logger).check()
    else:
        raise TypeError(
            f"logger must be a name ({', '.join(LOGGERS)}) or a vaekit.reporting.tracking.Logger, "
            f"got {type(logger).__name__}"
        )


def stored_logger(run_dir) -> str:
    """The ``--logger`` a run folder was tracked with (the tracker named in ``RUN/tracking.json``;
    "jsonl" when there is none), so that ``--resume`` continues the same tracked run unasked."""
    path = Path(run_dir) / STATE
    names = [name for name in (io.read_json(path) if path.is_file() else {}) if name in LOGGERS]
    return names[0] if names else NullLogger.name


def build_logger(logger: str | Logger) -> Logger:
    """A logger instance: ``logger`` itself, or a new one of the class ``--logger logger`` names
    (see :func:`check_logger` for the errors)."""
    check_logger(logger)
    return logger if isinstance(logger, Logger) else logger_class(logger)()
