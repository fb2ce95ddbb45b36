"""``vaekit benchmark disentanglement`` and ``vaekit benchmark zoo`` (``benchmark anomaly`` and ``benchmark robustness`` have
their arguments beside their protocols and in :mod:`vaekit.cli.robustness`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

from .common import COUNT, SEED, Checked, benchmark_command, say


@dataclasses.dataclass(frozen=True)
class BenchmarkDisentanglementArgs(Checked):
    """Train VAE, beta-VAE, beta-TCVAE, capacity-annealed beta-VAE, FactorVAE and DIP-VAE-I/II (conv net) on dSprites over 5 seeds, beside raw-pixel, PCA, ICA and untrained-encoder baselines; every disentanglement metric as mean, 95 % t interval and per-seed values."""

    data: Literal["dsprites-synthetic", "dsprites"] = "dsprites-synthetic"
    """Dataset with ground-truth factors."""
    data_dir: str = "data"
    """Folder of the official dSprites file (for --data dsprites)."""
    full: bool = False
    """Paper scale (64x64, the full 737,280-image grid, reference metric sizes): for a GPU."""
    epochs: Annotated[int | None, COUNT] = None
    """Epochs per model (default 24 on CPU, 36 with --full)."""
    models: tuple[str, ...] = ("vae", "beta-vae", "beta-tcvae", "capacity-vae", "factor-vae", "dip-vae-i", "dip-vae-ii")
    """Models to train."""
    baselines: tuple[str, ...] = ("raw-pixels", "pca", "ica", "untrained-vae")
    """Baseline rows scored on the same grid and metrics (random ones over --seeds; none: --baselines with no name)."""
    seeds: Annotated[tuple[int, ...], SEED] = (0, 1, 2, 3, 4)
    """Training seeds of every model (the metrics use seed 0 for all)."""
    jobs: Annotated[int, COUNT] = 2
    """Points trained at once (worker processes of one thread)."""
    output: str = "benchmarks/results/disentanglement"
    """Folder of results.md / results.json / per_seed.png; the run folders go to OUTPUT/runs."""
    collect_only: bool = False
    """Write results from the points finished so far, without training."""


def benchmark_disentanglement(args: BenchmarkDisentanglementArgs) -> None:
    """``vaekit benchmark disentanglement``."""
    from ..benchmarks.disentanglement import markdown, run_benchmark

    command = benchmark_command("vaekit benchmark disentanglement")
    results = run_benchmark(
        args.output,
        args.data,
        args.data_dir,
        args.full,
        args.seeds,
        args.epochs,
        args.models,
        args.jobs,
        args.collect_only,
        command=command,
        log=say,
        baselines=args.baselines,
    )
    say(markdown(results))
    say(f"written: {Path(args.output) / 'results.md'}, results.json and per_seed.png")


@dataclasses.dataclass(frozen=True)
class BenchmarkZooArgs(Checked):
    """Train every registered model on Fashion-MNIST (one MLP, equal epochs, 3 seeds) and pythae's implementation of each shared model on the same nets and data; IS log-likelihood, MSE, FID* per sampler, active units, time per epoch, with 95 % t intervals."""

    data_dir: str = "/usr/share/datasets"
    """Folder holding fashion-mnist/ (the IDX files)."""
    epochs: Annotated[int, COUNT] = 5
    """Epochs per model (both libraries)."""
    models: tuple[str, ...] = ()
    """Zoo arms to run (default: every registered model that trains without labels, plus beta-vae and iwae)."""
    seeds: Annotated[tuple[int, ...], SEED] = (0, 1, 2)
    """Training seeds, run seed-first (seed 0 of every model, then seed 1, ...)."""
    num_test: Annotated[int, COUNT] = 1000
    """Metrics on the first this many official test images."""
    num_samples: Annotated[int, COUNT] = 100
    """K of the importance-sampled log-likelihood."""
    train_size: Annotated[int, COUNT] = 10_000
    """Fixed training subset (the same for every seed)."""
    pythae: bool = True
    """Train pythae's implementation beside each shared model (needs pip install ".[bench]")."""
    output: str = "benchmarks/results/zoo"
    """Folder of results.md / results.json / samples.png; the run folders go to OUTPUT/runs."""
    collect_only: bool = False
    """Write results from the points finished so far, without training."""


def benchmark_zoo(args: BenchmarkZooArgs) -> None:
    """``vaekit benchmark zoo``."""
    from ..benchmarks.zoo import run_benchmark
    from ..benchmarks.zoo_report import markdown

    results = run_benchmark(
        args.output,
        models=args.models or None,
        seeds=args.seeds,
        epochs=args.epochs,
        num_test=args.num_test,
        num_samples=args.num_samples,
        pythae=args.pythae,
        collect_only=args.collect_only,
        command=benchmark_command("vaekit benchmark zoo"),
        log=say,
        data_dir=args.data_dir,
        train_size=args.train_size,
    )
    say(markdown(results))
    say(f"written: {Path(args.output) / 'results.md'}, results.json and samples.png")
