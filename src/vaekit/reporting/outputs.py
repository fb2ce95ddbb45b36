"""What ``vaekit train`` writes beside the weights and summary: the figures, the environment
record and ``report.html``, all built from the finished run in memory (:class:`vaekit.run.FinishedRun`),
as an output hook of :func:`vaekit.run.train`."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import io
from ..models import condition
from ..run import FinishedRun


def write_outputs(run: FinishedRun) -> None:
    """Figures, ``environment.json`` and ``report.html`` of a finished run (an output hook of
    :func:`vaekit.run.train`): from the model, history, config and summary in memory; nothing
    the run wrote is read back (the report embeds the PNG files it shows)."""
    from . import gallery, report

    write_figures(run.model, run.history, run.test_x, run.run_dir, run.c)
    gallery.write_figures(run.model, run.test_x, run.run_dir, run.c, run.labels)
    environment = report.environment(run.model, run.summary["training_time_s"], run.summary.get("threads"))
    io.write_json(run.run_dir / report.ENVIRONMENT, environment)
    report.write_run_report(run, environment)


def write_figures(
    model, history: list[dict], test_x: torch.Tensor, run_dir, labels: torch.Tensor | None = None
) -> list[Path]:
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
    paths.append(
        plots.save_image_grid(
            model.sample(64, generator=torch.Generator().manual_seed(0)),
            run_dir / "samples.png",
            title="decoder means of prior samples",
        )
    )
    if model.latent_dim == 2 and not model.conditional:
        paths.append(plots.latent_manifold(model, run_dir / "latent_manifold.png"))
    return paths
