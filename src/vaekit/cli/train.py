"""``vaekit train``: train a model and write a run folder."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import tyro

from .. import io
from ..config import Config
from ..options import RunOptions
from ..runtime import distributed, resolve_device
from .common import say


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """Train a model and write a run folder (config, weights, checkpoint, metrics, summary, figures)."""

    config: Annotated[Config, tyro.conf.arg(name="")] = Config()
    config_file: str | None = None
    """JSON file of settings (a run's config.json works); flags on the command line override it."""
    name: str | None = None
    """Run folder name (default <model>-<data>-<time>)."""
    runs_dir: str = "runs"
    """Folder that holds run folders."""
    resume: str | None = None
    """Run folder of an interrupted run to continue (its config.json is used)."""
    overwrite: bool = False
    """Replace an existing run folder of the same name."""
    progress: bool = True
    """Show progress: a bar on a terminal, else one line per epoch or per 10 s to stderr (--no-progress = --quiet)."""
    quiet: bool = False
    """No progress output (the final lines are still printed)."""
    logger: Literal["jsonl", "tensorboard", "mlflow", "wandb"] | None = None
    """Where metrics go besides metrics.jsonl (always written): RUN/tensorboard events, an MLflow run (MLFLOW_TRACKING_URI, else RUNS_DIR/mlflow.db) or a W&B run; default jsonl, and with --resume the run's own tracker (the same tracked run continues)."""
    options: Annotated[RunOptions, tyro.conf.arg(name="")] = RunOptions()


def _given(config: Config) -> dict:
    """Settings that differ from the defaults, i.e. that the user gave."""
    default = Config().to_flat()
    return {k: v for k, v in config.to_flat().items() if v != default[k]}


def train(args: TrainArgs) -> None:
    """``vaekit train``; under ``torchrun`` data-parallel over the launched processes."""
    with distributed.process_group(resolve_device(args.options.device)):
        _train(args)


def _train(args: TrainArgs) -> None:
    """Check the flags, choose the tracker, then one :class:`~vaekit.io.RunFolder` and one
    :func:`vaekit.run.train` with the figures and report as its output."""
    from .. import run
    from ..reporting import tracking
    from ..reporting.outputs import write_outputs

    epochs = None
    if args.resume:
        given = _given(args.config)
        epochs = given.pop("epochs", None)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(
                f"--resume continues {args.resume} with its saved config; drop {flags} "
                "(only --epochs may change, to extend the run)"
            )
        folder = io.RunFolder(args.resume, resume=True, epochs=epochs)
    else:
        folder = io.RunFolder.in_runs_dir(args.runs_dir, args.name, args.config, args.overwrite)
    # the tracker (the run's own on --resume) is built before the folder: an unusable one fails with nothing written
    logger = args.logger or (tracking.stored_logger(args.resume) if args.resume else "jsonl")
    tracker = tracking.build_logger(logger)
    progress = args.progress and not args.quiet
    try:
        with folder:
            summary = run.train(
                None,  # the folder's: the new run's config, or the resumed run's own
                folder,
                progress=progress,
                options=args.options,
                tracker=tracker,
                outputs=[write_outputs],
            )
    except KeyboardInterrupt:
        if distributed.is_main() and not folder.has_checkpoint():
            raise KeyboardInterrupt("no epoch finished, so no run folder is kept; start the run again") from None
        raise KeyboardInterrupt(f"continue it with: vaekit train --resume {folder.path}") from None
    run_dir = folder.path
    if not distributed.is_main():
        return
    test = summary["test"]
    if "log_likelihood" in test:
        say(
            f"test ELBO {test['elbo']:.2f} nats/example; test log-likelihood (importance sampled, "
            f"K={summary['eval_num_samples']}) {test['log_likelihood']:.2f} nats/example "
            f"({summary['num_test_examples']} test examples)"
        )
    else:
        say(
            f"test reconstruction log p(x|z) {test['reconstruction']:.2f} nats/example; "
            f"MSE {test['mse_per_pixel']:.4f} per pixel"
        )
    for key in sorted(k for k in summary if k.startswith("note")):
        say(f"note: {summary[key]}")
    if "tracking" in summary:
        say("tracked: " + ", ".join(f"{k} {v}" for k, v in summary["tracking"].items()))
    say(f"run folder: {run_dir}")


def defaults_from_config_file(argv: list[str]) -> TrainArgs | None:
    """Defaults for ``train`` read from ``--config-file FILE`` when given (flags still override them)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config-file"):
            path = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else None)
            if path is None:
                return None
            return TrainArgs(config=Config.from_json(path))
    return None
