"""``vaekit train``: train a model and write a run folder."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from .. import io
from ..config import Config
from ..options import RunOptions
from ..reporting import runs
from ..runtime import distributed, resolve_device
from .common import say


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """Train a model and write a run folder (config, weights, checkpoint, metrics, summary, figures)."""

    config: Annotated[Config, tyro.conf.arg(name="")] = Config()
    config_file: Optional[str] = None
    """JSON file of settings (a run's config.json works); flags on the command line override it."""
    name: Optional[str] = None
    """Run folder name (default <model>-<data>-<time>)."""
    runs_dir: str = "runs"
    """Folder that holds run folders."""
    resume: Optional[str] = None
    """Run folder of an interrupted run to continue (its config.json is used)."""
    overwrite: bool = False
    """Replace an existing run folder of the same name."""
    progress: bool = True
    """Show progress: a bar on a terminal, else one line per epoch or per 10 s to stderr (--no-progress = --quiet)."""
    quiet: bool = False
    """No progress output (the final lines are still printed)."""
    logger: Optional[Literal["jsonl", "tensorboard", "mlflow", "wandb"]] = None
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
    if args.resume:
        given = _given(args.config)
        epochs = given.pop("epochs", None)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"--resume continues {args.resume} with its saved config; drop {flags} "
                             "(only --epochs may change, to extend the run)")
    with contextlib.ExitStack() as held:
        def claim() -> str:
            """On rank 0: hold the run folder (io.hold_run) for the whole run, then create it."""
            path = Path(args.resume) if args.resume else io.run_path(args.runs_dir, args.name, args.config)
            if args.resume:
                io.load_config(path)  # a folder that is no run is refused before anything is made
            held.enter_context(io.hold_run(path))
            if not args.resume:
                io.create_run_dir(path.parent, path.name, args.config, args.overwrite)
            return str(path)

        run_dir = Path(distributed.broadcast_text(distributed.on_main(claim)))
        progress = args.progress and not args.quiet
        try:
            if args.resume:
                summary = runs.train_run(None, run_dir, resume=True, progress=progress, epochs=epochs,
                                         logger=args.logger, options=args.options)
            else:
                summary = runs.train_run(args.config, run_dir, progress=progress, logger=args.logger,
                                         options=args.options)
        except KeyboardInterrupt:
            if distributed.is_main() and not (run_dir / io.CHECKPOINT).exists():
                raise KeyboardInterrupt("no epoch finished, so no run folder is kept; start the run again") from None
            raise KeyboardInterrupt(f"continue it with: vaekit train --resume {run_dir}") from None
    if not distributed.is_main():
        return
    test = summary["test"]
    if "log_likelihood" in test:
        say(f"test ELBO {test['elbo']:.2f} nats/example; test log-likelihood (importance sampled, "
               f"K={summary['eval_num_samples']}) {test['log_likelihood']:.2f} nats/example "
               f"({summary['num_test_examples']} test examples)")
    else:
        say(f"test reconstruction log p(x|z) {test['reconstruction']:.2f} nats/example; "
               f"MSE {test['mse_per_pixel']:.4f} per pixel")
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


