"""``vaekit evaluate RUN`` (likelihoods, reconstruction, active units) and ``vaekit evaluate disentanglement RUN``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import tyro

from .. import io, runcheck
from ..data import splits
from ..evaluation import UNITS, evaluate_conditional
from .common import COUNT, NUM_SAMPLES, OUTPUT, SEED, Checked, say


@dataclasses.dataclass(frozen=True)
class EvaluateArgs(Checked):
    """Evaluate a run on its test split: ELBO, IWAE log-likelihood, reconstruction MSE, active units, KL per dimension."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    num_samples: Annotated[int, NUM_SAMPLES] = 1000
    """Importance samples K of the log-likelihood estimate."""
    batch_size: Annotated[int, COUNT] = 500
    """Test examples per chunk."""
    output: Annotated[Optional[str], OUTPUT] = None
    """JSON file to write (default RUN/evaluation.json)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    threads: Annotated[Optional[int], COUNT] = None
    """Torch intra-op CPU threads (default: OMP_NUM_THREADS when set, else chosen from the model's size)."""
    progress: bool = True
    """Show progress (decoded samples of the log-likelihood estimate)."""
    allow_changed_data: bool = False
    """Evaluate even when the run's data file changed since training (its size or SHA-256 differs from RUN/data.json); a warning says so."""


@dataclasses.dataclass(frozen=True)
class DisentanglementArgs(Checked):
    """Disentanglement metrics (BetaVAE, FactorVAE, MIG, DCI, SAP) of a run trained on dsprites or dsprites-synthetic, with figures."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    metrics: tuple[str, ...] = ("beta_vae", "factor_vae", "mig", "dci", "sap")
    """Metrics to compute."""
    seed: Annotated[int, SEED] = 0
    """Seed of the factor draws of every metric."""
    num_train: Annotated[Optional[int], COUNT] = None
    """Training points of every metric (default: the reference's 10,000)."""
    num_eval: Annotated[Optional[int], COUNT] = None
    """Held-out points of every metric (default: the reference's 5,000)."""
    dci_num_train: Annotated[Optional[int], COUNT] = None
    """Training points of DCI alone (its gradient-boosted trees are slow on a CPU)."""
    figures: bool = True
    """Write traversals.png, kl_per_dim.png and factor_response.png into the run folder."""
    output: Annotated[Optional[str], OUTPUT] = None
    """JSON file to write (default RUN/disentanglement.json)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def evaluate_run(args: EvaluateArgs) -> None:
    """``vaekit evaluate RUN``; under ``torchrun`` the log-likelihood is sharded over the processes."""
    from .. import runtime
    from ..runtime import distributed
    from ..runtime.progress import module_progress

    runcheck.check_not_training(args.run, io.lock_path(args.run))
    model, config = io.load(args.run), io.load_config(args.run)
    # a forward pass costs about a third of a training step: the policy's FLOPs of one block
    runtime.apply_threads(model, max(1, args.batch_size // 3), args.threads)
    with runcheck.allowing_changed_data(args.allow_changed_data):
        test_set = io.load_run_split(args.run, config, "test")
    test_images = splits.examples(test_set)
    test_x = splits.prepare(test_images, config)
    total = len(test_x) * args.num_samples // distributed.world_size()  # decoded samples of the log-likelihood
    with distributed.process_group(), module_progress(model.decoder, total, "evaluate", "decoded sample",
                                                      enabled=args.progress):
        result = evaluate_conditional(model, test_x, splits.condition_labels(config, test_set),
                                      num_samples=args.num_samples, batch_size=args.batch_size,
                                      x_unbinarized=test_images)
        main = distributed.is_main()
    if not main:
        return
    out = Path(args.output) if args.output else Path(args.run) / "evaluation.json"
    io.write_json(out, {"test": result, "units": {k: UNITS[k] for k in result}, "num_samples": args.num_samples,
                        "num_test_examples": len(test_x)})
    for key, value in result.items():
        if key != "kl_per_dim":
            say(f"{key:>16}: {value:.4f}  ({UNITS[key]})" if isinstance(value, float) else f"{key:>16}: {value}  ({UNITS[key]})")
    say(f"written: {out}")


def evaluate_disentanglement(args: DisentanglementArgs) -> None:
    """``vaekit evaluate disentanglement RUN``."""
    from ..benchmarks.disentanglement import evaluate_run

    overrides = {"dci": {"num_train": args.dci_num_train}} if args.dci_num_train else None
    report = evaluate_run(args.run, args.metrics, args.seed, args.num_train, args.num_eval, overrides,
                          figures=args.figures, output=args.output)
    for key, value in report["headline"].items():
        say(f"{key:>28}: {value:.4f}")
    if "kl" in report:
        kl = report["kl"]
        say(f"{'KL (nats/example)':>28}: {kl['kl']:.3f} = MI {kl['kl_mi']:.3f} + TC {kl['kl_tc']:.3f} "
               f"+ dimension-wise {kl['kl_dimwise']:.3f} (Monte Carlo sum {kl['kl_mc']:.3f})")
    say(f"written: {args.output or Path(args.run) / 'disentanglement.json'}")


