"""``vaekit benchmark disentanglement`` (``benchmark anomaly`` and ``benchmark robustness`` have
their arguments beside their protocols and in :mod:`vaekit.cli.robustness`)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

from .common import COUNT, SEED, Checked, say


@dataclasses.dataclass(frozen=True)
class BenchmarkDisentanglementArgs(Checked):
    """Train VAE, beta-VAE, beta-TCVAE and capacity-annealed beta-VAE on dSprites and report every disentanglement metric."""

    data: Literal["dsprites-synthetic", "dsprites"] = "dsprites-synthetic"
    """Dataset with ground-truth factors."""
    data_dir: str = "data"
    """Folder of the official dSprites file (for --data dsprites)."""
    full: bool = False
    """Paper scale (64x64, the full 737,280-image grid, reference metric sizes): for a GPU."""
    epochs: Annotated[Optional[int], COUNT] = None
    """Epochs per model (default 40 on CPU, 36 with --full)."""
    models: tuple[str, ...] = ("vae", "beta-vae", "beta-tcvae", "capacity-vae")
    """Models to train."""
    seed: Annotated[int, SEED] = 0
    """Seed of training and metrics."""
    output: str = "runs/benchmark-disentanglement"
    """Folder of the runs and of results.md / results.json."""
    quiet: bool = False
    """No progress output (a bar on a terminal, else a line per step or per 10 s on stderr)."""


def benchmark_disentanglement(args: BenchmarkDisentanglementArgs) -> None:
    """``vaekit benchmark disentanglement``."""
    from ..benchmarks.disentanglement import markdown, run_benchmark

    command = "vaekit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else "vaekit benchmark disentanglement"
    results = run_benchmark(args.output, args.data, args.data_dir, args.full, args.seed, args.epochs, args.models,
                            command=command, progress=False)
    say(markdown(results))
    say(f"written: {Path(args.output) / 'results.md'} and results.json")


