"""A whole run as the CLI makes it: :func:`vaekit.run.train` with a tracker chosen by name and the
figures, the environment record and ``report.html`` as its output hooks."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import io
from ..models import condition
from ..run import FinishedRun, train


def train_run(config, run_dir, resume: bool = False, progress: bool = True, epochs: int | None = None, logger=None,
              options=None, trust_code: bool | None = None) -> dict:
    """Train ``config`` in ``run_dir`` (:func:`vaekit.run.train`), then write the figures and
    ``report.html``; return the summary (also in ``summary.json``).

    ``logger`` (a name of :data:`vaekit.reporting.tracking.LOGGERS`: "tensorboard", "mlflow",
    "wandb", or a :class:`vaekit.reporting.tracking.Logger`) also sends the metrics, the config and
    the run folder's files to a tracker; on resume it continues the same tracked run (None, the
    default: "jsonl" for a new run, the run's own tracker on resume, from ``RUN/tracking.json``).
    The other arguments are :func:`vaekit.run.train`'s.

    Raises:
        ValueError / FileNotFoundError / ImportError: bad data, config or files, or a tracker that
            cannot be used (before anything is written).
        vaekit.training.TrainingDiverged: see :func:`vaekit.run.train`.
    """
    from . import tracking

    if logger is None:
        logger = tracking.stored_logger(run_dir) if resume else "jsonl"
    try:
        tracker = tracking.build_logger(logger)  # an unusable tracker fails here, before training starts
    except BaseException:
        if not resume:
            io.discard_unstarted(run_dir)  # the folder the caller made for this run: nothing was written
        raise
    return train(config, run_dir, resume=resume, progress=progress, epochs=epochs, options=options,
                 trust_code=trust_code, tracker=tracker, outputs=[write_outputs])


def write_outputs(run: FinishedRun) -> None:
    """Figures, the environment record and report.html of a finished run (an output hook of
    :func:`vaekit.run.train`)."""
    from . import gallery, report

    write_figures(run.model, run.history, run.test_x, run.run_dir, run.c)
    gallery.write_figures(run.model, run.test_x, run.run_dir, run.c, run.labels)
    io.write_json(run.run_dir / report.ENVIRONMENT, report.environment(run.model, run.summary["training_time_s"],
                                                                       run.summary.get("threads")))
    report.write_report(run.run_dir)


def write_figures(model, history: list[dict], test_x: torch.Tensor, run_dir,
                  labels: torch.Tensor | None = None) -> list[Path]:
    """Loss curves, and for image data a reconstruction grid, prior samples and (latent_dim = 2)
    the latent manifold grid (``labels``: the condition of a CVAE). Returns the paths written."""
    from . import plots

    run_dir = Path(run_dir)
    paths = [plots.loss_curves(history, run_dir / "loss_curves.png")]
    if len(model.data_shape) != 3:
        return paths
    x = test_x[:32]
    view = condition(model, None if labels is None else labels[:32])
    paths.append(plots.reconstruction_grid(x, view.reconstruct(x), run_dir / "reconstructions.png"))
    paths.append(plots.save_image_grid(model.sample(64, generator=torch.Generator().manual_seed(0)),
                                       run_dir / "samples.png", title="decoder means of prior samples"))
    if model.latent_dim == 2 and not model.conditional:
        paths.append(plots.latent_manifold(model, run_dir / "latent_manifold.png"))
    return paths
