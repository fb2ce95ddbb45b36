"""The ``vaekit`` command line: thin. Flags are generated from dataclasses by tyro; every handler
calls library functions and prints. Errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import torch
import tyro

from . import cli_robustness, io, plots, runs
from .config import Config
from .evaluation import UNITS, evaluate


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
    """Show a progress bar."""


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a run on its test split: ELBO, IWAE log-likelihood, reconstruction MSE, active units, KL per dimension."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    num_samples: int = 1000
    """Importance samples K of the log-likelihood estimate."""
    batch_size: int = 500
    """Test examples per chunk."""
    output: Optional[str] = None
    """JSON file to write (default RUN/evaluation.json)."""


@dataclasses.dataclass(frozen=True)
class SampleArgs:
    """Draw samples from a run's prior and decode them: a PNG grid or a .npy array of decoder means."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    n: int = 64
    """Number of samples."""
    output: Optional[str] = None
    """.png or .npy file (default RUN/samples-<n>.png)."""
    temperature: float = 1.0
    """Prior standard deviation multiplier."""
    seed: int = 0
    """Seed of the prior draws."""


def _print(line: str) -> None:
    print(line, flush=True)


def train(args: TrainArgs) -> None:
    """``vaekit train``."""
    run_dir = Path(args.resume) if args.resume else runs.resolve_run_dir(
        args.runs_dir, args.name, args.config, resume=False, overwrite=args.overwrite)
    summary = runs.train_run(args.config, run_dir, resume=bool(args.resume), progress=args.progress)
    test = summary["test"]
    if "log_likelihood" in test:
        _print(f"test ELBO {test['elbo']:.2f} nats/example; test log-likelihood (importance sampled, "
               f"K={summary['eval_num_samples']}) {test['log_likelihood']:.2f} nats/example "
               f"({summary['num_test_examples']} test examples)")
    else:
        _print(f"test reconstruction log p(x|z) {test['reconstruction']:.2f} nats/example; "
               f"MSE {test['mse_per_pixel']:.4f} per pixel")
    if "note" in summary:
        _print(f"note: {summary['note']}")
    _print(f"run folder: {run_dir}")


def evaluate_run(args: EvaluateArgs) -> None:
    """``vaekit evaluate RUN``."""
    model = io.load(args.run)
    test_x = runs.prepare(runs.load_dataset(model.config, "test").x, model.config)
    result = evaluate(model, test_x, num_samples=args.num_samples, batch_size=args.batch_size)
    out = Path(args.output) if args.output else Path(args.run) / "evaluation.json"
    io.write_json(out, {"test": result, "units": {k: UNITS[k] for k in result}, "num_samples": args.num_samples,
                        "num_test_examples": len(test_x)})
    for key, value in result.items():
        if key != "kl_per_dim":
            _print(f"{key:>16}: {value:.4f}  ({UNITS[key]})" if isinstance(value, float) else f"{key:>16}: {value}  ({UNITS[key]})")
    _print(f"written: {out}")


def sample(args: SampleArgs) -> None:
    """``vaekit sample RUN``."""
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    model = io.load(args.run)
    x = model.sample(args.n, args.temperature, generator=torch.Generator().manual_seed(args.seed))
    out = Path(args.output) if args.output else Path(args.run) / f"samples-{args.n}.png"
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, x.cpu().numpy())
    elif out.suffix == ".png":
        if len(model.data_shape) != 3:
            raise ValueError(f"a PNG grid needs image data; this model's examples have shape {model.data_shape}: use --output FILE.npy")
        plots.save_image_grid(x, out, ncols=int(np.ceil(np.sqrt(args.n))))
    else:
        raise ValueError(f"--output must end in .png or .npy, got {out.name}")
    _print(f"written: {out} ({args.n} samples)")


@dataclasses.dataclass(frozen=True)
class Command:
    """A CLI command: its argument dataclass and its handler."""

    args: type
    run: Callable


#: "command" or "command subcommand" -> Command. The two-word form is tried first.
COMMANDS: dict[str, Command] = {
    "train": Command(TrainArgs, train),
    "evaluate": Command(EvaluateArgs, evaluate_run),
    "sample": Command(SampleArgs, sample),
    "evaluate robustness": Command(cli_robustness.EvaluateRobustnessArgs, cli_robustness.evaluate_robustness),
    "benchmark robustness": Command(cli_robustness.BenchmarkRobustnessArgs, cli_robustness.benchmark_robustness),
}


def _with_config_file(argv: list[str]) -> TrainArgs | None:
    """Defaults for ``train`` read from ``--config-file FILE`` when given."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config-file"):
            path = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else None)
            if path is None:
                return None
            return TrainArgs(config=Config.from_json(path))
    return None


def _usage() -> str:
    names = sorted(COMMANDS)
    return "usage: vaekit {" + ",".join(dict.fromkeys(n.split()[0] for n in names)) + "} ...\n" + "\n".join(
        f"  vaekit {n:<26} {(COMMANDS[n].args.__doc__ or '').strip().splitlines()[0]}" for n in names)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vaekit``: dispatch to a command; user errors print one line and exit 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    key = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    if key not in COMMANDS:
        print(f"vaekit: error: unknown command {argv[0]!r}; choose one of: "
              f"{', '.join(dict.fromkeys(n.split()[0] for n in sorted(COMMANDS)))}", file=sys.stderr)
        return 2
    rest = argv[len(key.split()):]
    command = COMMANDS[key]
    try:
        default = _with_config_file(rest) if command.args is TrainArgs else None
        args = tyro.cli(command.args, args=rest, prog=f"vaekit {key}", default=default,
                        description=command.args.__doc__)
        command.run(args)
    except KeyboardInterrupt:
        print("vaekit: interrupted; a training run can be continued with --resume RUN", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback; VAEKIT_DEBUG=1 shows it
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        known = isinstance(e, (ValueError, TypeError, OSError, RuntimeError, json.JSONDecodeError))
        prefix = "error" if known else f"internal error ({type(e).__name__})"
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"vaekit: {prefix}: {message}", file=sys.stderr)
        return 1
    return 0
