"""``vaekit ood RUN --input FILE``: out-of-distribution scores of every row of a file under a trained run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from .. import io
from ..io import checks as runcheck
from .common import COUNT, NUM_SAMPLES, OUTPUT, POSTERIOR_SAMPLES, STEPS, Checked, Range, say


@dataclasses.dataclass(frozen=True)
class OODArgs(Checked):
    """Out-of-distribution scores of every row of a file under a trained VAE run: a CSV of index, score, ood."""

    run: tyro.conf.Positional[str]
    """Run folder (vaekit train) of a VAE trained on the in-distribution data."""
    input: str
    """Rows to score: .csv (header optional), .npy or .npz, values in [0, 1] for a Bernoulli run; images may keep their (N, C, H, W) shape."""
    score: str = "likelihood_ratio"
    """log_likelihood, likelihood_ratio, typicality, likelihood_regret, waic, effective_sample_size, posterior_log_likelihood or ensemble_disagreement."""
    posterior: str = "sghmc"
    """Posterior of the waic / effective_sample_size / posterior_log_likelihood / ensemble_disagreement scores: sghmc, swag or ensemble."""
    background: str = "vae"
    """Background of likelihood_ratio, fitted on perturbed training data: vae (the run's VAE retrained) or pixel (independent per-pixel Bernoulli/normal)."""
    regret: str = "encoder"
    """likelihood_regret method: encoder (Xiao et al. Alg. 1, fine-tune a copy of the encoder per row) or posterior (optimise each row's q(z|x), clamped at 0)."""
    regret_steps: Annotated[int, STEPS] = 100
    """Adam steps of likelihood_regret per row (Xiao et al.: 100)."""
    regret_lr: float | None = None
    """Adam learning rate of likelihood_regret (default: 1e-4 for encoder, as Xiao et al.; 0.05 for posterior)."""
    typicality_batch_size: Annotated[int, COUNT] = 1
    """M of the typicality test: consecutive groups of M rows are tested together, each row gets its group's score; the threshold is the bootstrap's."""
    num_posterior_samples: Annotated[int, POSTERIOR_SAMPLES] = 5
    """M decoder samples (or ensemble members), stored as RUN/ood/posterior-<kind>-M<M>/sample-XXX.safetensors."""
    num_samples: Annotated[int, NUM_SAMPLES] = 100
    """K importance samples per log-likelihood."""
    contamination: Annotated[float, Range(0, 0.5, low_open=True)] = 0.05
    """Fraction of the run's held-out training images flagged OOD (sets the threshold)."""
    output: Annotated[str | None, OUTPUT] = None
    """CSV to write (default RUN/ood-scores.csv): columns index, score (higher = more in-distribution), ood (1/0)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    label_column: str | None = None
    """CSV column (name or index) or NPZ key holding a label, left out of the features."""
    progress: bool = True
    """Show progress bars while fitting the parts the score needs."""


#: Rows per block of a sharded ``vaekit ood`` (times --typicality-batch-size, which groups rows).
OOD_BLOCK = 64


def ood(args: OODArgs) -> None:
    """``vaekit ood RUN --input FILE``: fit (or reuse, from RUN/ood/) what the score needs, score, write a CSV.
    Under ``torchrun`` rank 0 fits and caches the parts, the others read them, and the rows are split
    among the processes in seeded blocks (:func:`vaekit.runtime.distributed.map_blocks`)."""
    from ..runtime import distributed

    with distributed.process_group():
        _ood(args)


def _ood(args: OODArgs) -> None:
    from ..data.array import read
    from ..detectors.ood import OODDetector
    from ..evaluation.conformal import decision
    from ..evaluation.ood import OOD_SCORES, check_ood_score
    from ..runtime import distributed

    check_ood_score(args.score)
    x, _ = read(args.input, args.label_column, columns=runcheck.training_columns(args.run))

    def detector_of_run():
        return OODDetector.from_run(
            args.run,
            score_type=args.score,
            posterior=args.posterior,
            num_posterior_samples=args.num_posterior_samples,
            num_samples=args.num_samples,
            contamination=args.contamination,
            background=args.background,
            regret=args.regret,
            regret_steps=args.regret_steps,
            regret_lr=args.regret_lr,
            typicality_batch_size=args.typicality_batch_size,
            verbose=args.progress,
        )

    def alone():
        with distributed.local():
            return detector_of_run()

    detector = distributed.on_main(alone)  # rank 0 fits and caches the parts in RUN/ood/ alone ...
    if not distributed.is_main():
        detector = alone()  # ... the other ranks read them
    # seeded blocks: the scores do not depend on the number of processes
    scores = distributed.map_blocks(
        detector.score_samples, np.asarray(x), OOD_BLOCK * args.typicality_batch_size, seed=detector.config_.train.seed
    )
    if not distributed.is_main():
        return
    flagged = decision(scores, detector.offset_) < 0  # a non-finite score is out of distribution
    out = Path(args.output) if args.output else Path(args.run) / "ood-scores.csv"
    lines = ["index,score,ood"] + [f"{i},{s!r},{int(o)}" for i, (s, o) in enumerate(zip(scores.tolist(), flagged))]
    io.atomic_write(out, "\n".join(lines) + "\n")
    say(
        f"scored {len(scores)} rows with {args.score} ({OOD_SCORES[args.score].unit}, higher = more in-distribution); "
        f"{int(flagged.sum())} flagged out-of-distribution (score < {detector.offset_:.4g}, the "
        f"{args.contamination:g} quantile of held-out training scores)"
    )
    say(f"written: {out}")
