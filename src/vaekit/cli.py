"""The ``vaekit`` command line: thin. Flags are generated from dataclasses by tyro; every handler
calls library functions and prints. Errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Callable, Literal, Optional

import numpy as np
import torch
import tyro

from . import cli_robustness, distributed, explore, explore_cli, io, plots, runs
from .benchmarks import anomaly as anomaly_benchmark
from .config import Config
from .evaluation import UNITS, evaluate_conditional
from .models import given
from .runtime import RunOptions, resolve_device


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
    logger: Literal["jsonl", "tensorboard"] = "jsonl"
    """Where metrics go besides metrics.jsonl (always written): tensorboard also writes RUN/tensorboard events."""
    options: Annotated[RunOptions, tyro.conf.arg(name="")] = RunOptions()


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
    label: Optional[int] = None
    """Class to sample (conditional models); without it a CVAE writes one row per class from the same draws."""


@dataclasses.dataclass(frozen=True)
class ScoreArgs:
    """Anomaly scores of every row of a file under a trained run or saved AnomalyDetector: a CSV of index, score, pvalue, outlier."""

    run: tyro.conf.Positional[str]
    """Run folder (vaekit train) or folder of a saved vaekit.AnomalyDetector."""
    input: str
    """Rows to score: .csv (header optional), .npy or .npz, with the features the model was trained on."""
    output: Optional[str] = None
    """CSV to write (default RUN/scores.csv): columns index, score (higher = more normal), pvalue (conformal), outlier (1/0)."""
    score: Optional[str] = None
    """reconstruction_probability, elbo, log_likelihood or reconstruction_error (default: the detector's, or reconstruction_probability for a run)."""
    fpr: Optional[float] = None
    """False-alarm rate: flag rows whose conformal p-value is <= this (default 0.05; a run is calibrated on its validation split)."""
    threshold: Optional[float] = None
    """Use this score threshold instead (rows scoring below it are outliers; no p-values)."""
    num_samples: Optional[int] = None
    """Monte Carlo samples L per row (default 10, An & Cho 2015)."""
    label_column: Optional[str] = None
    """CSV column (name or index) or NPZ key holding a label, left out of the features."""
    progress: bool = True
    """Show a progress bar."""


@dataclasses.dataclass(frozen=True)
class DisentanglementArgs:
    """Disentanglement metrics (BetaVAE, FactorVAE, MIG, DCI, SAP) of a run trained on dsprites or dsprites-synthetic, with figures."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    metrics: tuple[str, ...] = ("beta_vae", "factor_vae", "mig", "dci", "sap")
    """Metrics to compute."""
    seed: int = 0
    """Seed of the factor draws of every metric."""
    num_train: Optional[int] = None
    """Training points of every metric (default: the reference's 10,000)."""
    num_eval: Optional[int] = None
    """Held-out points of every metric (default: the reference's 5,000)."""
    dci_num_train: Optional[int] = None
    """Training points of DCI alone (its gradient-boosted trees are slow on a CPU)."""
    figures: bool = True
    """Write traversals.png, kl_per_dim.png and factor_response.png into the run folder."""
    output: Optional[str] = None
    """JSON file to write (default RUN/disentanglement.json)."""


@dataclasses.dataclass(frozen=True)
class BenchmarkDisentanglementArgs:
    """Train VAE, beta-VAE, beta-TCVAE and capacity-annealed beta-VAE on dSprites and report every disentanglement metric."""

    data: Literal["dsprites-synthetic", "dsprites"] = "dsprites-synthetic"
    """Dataset with ground-truth factors."""
    data_dir: str = "data"
    """Folder of the official dSprites file (for --data dsprites)."""
    full: bool = False
    """Paper scale (64x64, the full 737,280-image grid, reference metric sizes): for a GPU."""
    epochs: Optional[int] = None
    """Epochs per model (default 40 on CPU, 36 with --full)."""
    models: tuple[str, ...] = ("vae", "beta-vae", "beta-tcvae", "capacity-vae")
    """Models to train."""
    seed: int = 0
    """Seed of training and metrics."""
    output: str = "runs/benchmark-disentanglement"
    """Folder of the runs and of results.md / results.json."""


def _print(line: str) -> None:
    print(line, flush=True)


def _given(config: Config) -> dict:
    """Settings that differ from the defaults, i.e. that the user gave."""
    default = Config()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
            if getattr(config, f.name) != getattr(default, f.name)}


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
        run_dir = Path(args.resume)
        summary = runs.train_run(None, run_dir, resume=True, progress=args.progress, epochs=epochs,
                                 logger=args.logger, options=args.options)
    else:
        run_dir = Path(distributed.broadcast_text(distributed.on_main(
            lambda: str(runs.resolve_run_dir(args.runs_dir, args.name, args.config, args.overwrite)))))
        try:
            summary = runs.train_run(args.config, run_dir, progress=args.progress, logger=args.logger,
                                     options=args.options)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"continue it with: vaekit train --resume {run_dir}") from None
    if not distributed.is_main():
        return
    test = summary["test"]
    if "log_likelihood" in test:
        _print(f"test ELBO {test['elbo']:.2f} nats/example; test log-likelihood (importance sampled, "
               f"K={summary['eval_num_samples']}) {test['log_likelihood']:.2f} nats/example "
               f"({summary['num_test_examples']} test examples)")
    else:
        _print(f"test reconstruction log p(x|z) {test['reconstruction']:.2f} nats/example; "
               f"MSE {test['mse_per_pixel']:.4f} per pixel")
    for key in sorted(k for k in summary if k.startswith("note")):
        _print(f"note: {summary[key]}")
    _print(f"run folder: {run_dir}")


def evaluate_run(args: EvaluateArgs) -> None:
    """``vaekit evaluate RUN``."""
    model = io.load(args.run)
    test_set = runs.load_run_split(args.run, model.config, "test")
    test_x = runs.prepare(runs.examples(test_set), model.config)
    result = evaluate_conditional(model, test_x, runs.condition_labels(model.config, test_set),
                                  num_samples=args.num_samples, batch_size=args.batch_size)
    out = Path(args.output) if args.output else Path(args.run) / "evaluation.json"
    io.write_json(out, {"test": result, "units": {k: UNITS[k] for k in result}, "num_samples": args.num_samples,
                        "num_test_examples": len(test_x)})
    for key, value in result.items():
        if key != "kl_per_dim":
            _print(f"{key:>16}: {value:.4f}  ({UNITS[key]})" if isinstance(value, float) else f"{key:>16}: {value}  ({UNITS[key]})")
    _print(f"written: {out}")


def sample(args: SampleArgs) -> None:
    """``vaekit sample RUN``."""
    if args.n < 1 or not args.temperature > 0:
        raise ValueError(f"--n must be >= 1 and --temperature > 0, got {args.n} and {args.temperature}")
    model = io.load(args.run)
    generator = torch.Generator().manual_seed(args.seed)
    if args.label is not None and not model.conditional:
        raise ValueError(f"--label needs a conditional model (cvae); this run's model is {model.config.model!r}")
    if model.conditional and args.label is None:
        grid = explore.class_grid(model, max(1, -(-args.n // model.num_classes)), args.temperature, generator)
        out = Path(args.output) if args.output else Path(args.run) / f"class-samples-{args.n}.png"
        explore_cli.save_rows(grid, out, row_labels=[f"class {k}" for k in range(model.num_classes)],
                               title="one row per class, the same z in each column")
        return
    x = given(model, args.label).sample(args.n, args.temperature, generator=generator)
    scaler = runs.load_scaler(args.run)
    x = scaler.inverse_transform(x) if scaler is not None else x  # tabular runs: back to feature units
    suffix = "" if args.label is None else f"-label{args.label}"
    out = Path(args.output) if args.output else Path(args.run) / f"samples-{args.n}{suffix}.png"
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


def score(args: ScoreArgs) -> None:
    """``vaekit score RUN --input FILE``."""
    from .anomaly import load_detector
    from .data.array import read
    from .evaluation.anomaly import SCORES

    x, _ = read(args.input, args.label_column)
    detector = load_detector(args.run, args.score, args.fpr, args.num_samples, args.progress, args.threshold)
    if int(np.prod(x.shape[1:])) != detector.n_features_in_:
        raise ValueError(f"{args.input} has {int(np.prod(x.shape[1:]))} features per row but the model was trained on "
                         f"{detector.n_features_in_}" + ("" if args.label_column else "; pass --label-column if a column is a label"))
    scores = detector.score_samples(x)
    outlier = scores < detector.offset_
    pvalues = detector.pvalues(x) if len(detector.calibration_scores_) else np.full(len(scores), np.nan)
    out = Path(args.output) if args.output else Path(args.run) / "scores.csv"
    lines = ["index,score,pvalue,outlier"] + [f"{i},{s!r},{p!r},{int(o)}" for i, (s, p, o) in
                                              enumerate(zip(scores.tolist(), pvalues.tolist(), outlier))]
    io.atomic_write(out, "\n".join(lines) + "\n")
    source = ("--threshold" if args.threshold is not None else
              f"conformal p-value <= fpr {detector.fpr:g}, {len(detector.calibration_scores_)} calibration rows")
    _print(f"scored {len(scores)} rows with {detector.score_type} ({SCORES[detector.score_type].unit}, higher = more normal); "
           f"{int(outlier.sum())} outliers (score < {detector.offset_:.4g}, {source})")
    _print(f"written: {out}")


def evaluate_disentanglement(args: DisentanglementArgs) -> None:
    """``vaekit evaluate disentanglement RUN``."""
    from .benchmarks.disentanglement import evaluate_run

    overrides = {"dci": {"num_train": args.dci_num_train}} if args.dci_num_train else None
    report = evaluate_run(args.run, args.metrics, args.seed, args.num_train, args.num_eval, overrides,
                          figures=args.figures, output=args.output)
    for key, value in report["headline"].items():
        _print(f"{key:>28}: {value:.4f}")
    if "kl" in report:
        kl = report["kl"]
        _print(f"{'KL (nats/example)':>28}: {kl['kl']:.3f} = MI {kl['kl_mi']:.3f} + TC {kl['kl_tc']:.3f} "
               f"+ dimension-wise {kl['kl_dimwise']:.3f} (Monte Carlo sum {kl['kl_mc']:.3f})")
    _print(f"written: {args.output or Path(args.run) / 'disentanglement.json'}")


def benchmark_disentanglement(args: BenchmarkDisentanglementArgs) -> None:
    """``vaekit benchmark disentanglement``."""
    from .benchmarks.disentanglement import markdown, run_benchmark

    command = "vaekit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else "vaekit benchmark disentanglement"
    results = run_benchmark(args.output, args.data, args.data_dir, args.full, args.seed, args.epochs, args.models,
                            command=command, progress=False)
    _print(markdown(results))
    _print(f"written: {Path(args.output) / 'results.md'} and results.json")


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
    "reconstruct": Command(explore_cli.ReconstructArgs, explore_cli.reconstruct),
    "manifold": Command(explore_cli.ManifoldArgs, explore_cli.manifold),
    "interpolate": Command(explore_cli.InterpolateArgs, explore_cli.interpolate),
    "traverse": Command(explore_cli.TraverseArgs, explore_cli.traverse),
    "iterate": Command(explore_cli.IterateArgs, explore_cli.iterate),
    "embed": Command(explore_cli.EmbedArgs, explore_cli.embed),
    "report": Command(explore_cli.ReportArgs, explore_cli.report_runs),
    "score": Command(ScoreArgs, score),
    "benchmark anomaly": Command(anomaly_benchmark.Args, anomaly_benchmark.run_cli),
    "evaluate disentanglement": Command(DisentanglementArgs, evaluate_disentanglement),
    "benchmark disentanglement": Command(BenchmarkDisentanglementArgs, benchmark_disentanglement),
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
    except SystemExit as e:  # tyro's own usage errors (exit 2) and --help (exit 0)
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt as e:
        print(f"vaekit: interrupted; {e or 'a training run can be continued with --resume RUN'}", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback; VAEKIT_DEBUG=1 shows it
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        known = isinstance(e, (ValueError, TypeError, OSError, RuntimeError, json.JSONDecodeError, ImportError))
        prefix = "error" if known else f"internal error ({type(e).__name__})"
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"vaekit: {prefix}: {message}", file=sys.stderr)
        return 1
    return 0
