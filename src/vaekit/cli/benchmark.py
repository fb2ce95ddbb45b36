"""``vaekit benchmark disentanglement`` (``benchmark anomaly`` and ``benchmark robustness`` have
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
