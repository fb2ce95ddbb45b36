"""``vaekit sample RUN`` (generation) and ``vaekit score RUN --input FILE`` (anomaly scores)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro

from .. import io
from ..evaluation import explore
from ..io import checks as runcheck
from ..models import condition
from ..reporting import plots
from ..runtime.files import save_npy
from .common import FINITE, NONNEGATIVE, NUM_SAMPLES, OUTPUT, SEED, Checked, Range, say
from .explore import save_rows


@dataclasses.dataclass(frozen=True)
class SampleArgs(Checked):
    """Draw samples from a run's prior and decode them: a PNG grid or a .npy array of decoder means."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    n: Annotated[int, Range(1, 10000)] = 64
    """Number of samples."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy file (default RUN/samples-<n>.png)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    temperature: Annotated[float, Range(0, 1000, low_open=True)] = 1.0
    """Prior standard deviation multiplier."""
    seed: Annotated[int, SEED] = 0
    """Seed of the prior draws."""
    label: Annotated[int | None, NONNEGATIVE] = None
    """Class to sample (conditional models); without it a CVAE writes one row per class from the same draws."""
    sampler: str | None = None
    """Latent sampler: prior (the model's own), normal (N(0, I)), gmm, two-stage or maf (fitted on the run's training codes); default: the model's (gmm for an RAE, else prior)."""


@dataclasses.dataclass(frozen=True)
class ScoreArgs(Checked):
    """Anomaly scores of every row of a file under a trained run or saved AnomalyDetector: a CSV of index, score, pvalue, outlier."""

    run: tyro.conf.Positional[str]
    """Run folder (vaekit train) or folder of a saved vaekit.AnomalyDetector."""
    input: str
    """Rows to score: .csv (header optional), .npy or .npz, with the features the model was trained on."""
    output: Annotated[str | None, OUTPUT] = None
    """CSV to write (default RUN/scores.csv): columns index, score (higher = more normal), pvalue (conformal), outlier (1/0)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    score: str | None = None
    """reconstruction_probability, elbo, log_likelihood or reconstruction_error (default: the detector's, or reconstruction_probability for a run)."""
    fpr: Annotated[float | None, Range(0, 1, low_open=True, high_open=True)] = None
    """False-alarm rate: flag rows whose conformal p-value is <= this (default 0.05; a run is calibrated on its validation split)."""
    threshold: Annotated[float | None, FINITE] = None
    """Use this score threshold instead (rows scoring below it are outliers; no p-values)."""
    num_samples: Annotated[int | None, NUM_SAMPLES] = None
    """Monte Carlo samples L per row (default 10, An & Cho 2015)."""
    label_column: str | None = None
    """CSV column (name or index) or NPZ key holding a label, left out of the features."""
    progress: bool = True
    """Show a progress bar."""


def sample(args: SampleArgs) -> None:
    """``vaekit sample RUN``."""
    if args.n < 1 or not args.temperature > 0:
        raise ValueError(f"--n must be >= 1 and --temperature > 0, got {args.n} and {args.temperature}")
    model = io.load(args.run)
    generator = torch.Generator().manual_seed(args.seed)
    if args.label is not None and not model.conditional:
        raise ValueError(f"--label needs a conditional model (cvae); this run's model is {model.config.name!r}")
    if model.conditional and args.label is None:
        grid = explore.class_grid(model, max(1, -(-args.n // model.num_classes)), args.temperature, generator)
        out = Path(args.output) if args.output else Path(args.run) / f"class-samples-{args.n}.png"
        save_rows(
            grid,
            out,
            row_labels=[f"class {k}" for k in range(model.num_classes)],
            title="one row per class, the same z in each column",
        )
        return
    name = str(args.sampler or getattr(model, "default_sampler", "prior"))
    if name == "prior":
        x = condition(model, args.label).sample(args.n, args.temperature, generator=generator)
    else:
        x = _fitted_sample(args, model, name, generator)
    scaler = io.load_scaler(args.run)
    x = scaler.inverse_transform(x) if scaler is not None else x  # tabular runs: back to feature units
    suffix = "" if args.label is None else f"-label{args.label}"
    out = Path(args.output) if args.output else Path(args.run) / f"samples-{args.n}{suffix}.png"
    if out.suffix == ".npy":
        save_npy(out, x.cpu().numpy())
    elif out.suffix == ".png":
        if len(model.data_shape) != 3:
            raise ValueError(
                f"a PNG grid needs image data; this model's examples have shape {model.data_shape}: use --output FILE.npy"
            )
        plots.save_image_grid(x, out, ncols=int(np.ceil(np.sqrt(args.n))))
    else:
        raise ValueError(f"--output must end in .png or .npy, got {out.name}")
    say(f"written: {out} ({args.n} samples)")


def _fitted_sample(args: SampleArgs, model, name: str, generator: torch.Generator) -> torch.Tensor:
    """Decoder means of ``args.n`` draws of the sampler ``name`` fitted on the run's training codes."""
    from ..data import splits
    from ..evaluation.samplers import SAMPLERS, fit_sampler, generate

    if name not in SAMPLERS:
        raise ValueError(f"unknown --sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    if args.temperature != 1.0 and name != "normal":
        raise ValueError(f"--temperature applies to the prior and normal samplers, not to {name!r}")
    options = {"temperature": args.temperature} if name == "normal" else {}
    x_train = None
    if SAMPLERS[name].needs_data:
        config = io.load_config(args.run)
        x_train = splits.prepare(io.load_run_split(args.run, config, "train").x, config)
    sampler = fit_sampler(name, model, x_train, **options)
    return generate(model, sampler, args.n, generator)


def score(args: ScoreArgs) -> None:
    """``vaekit score RUN --input FILE``; under ``torchrun`` the rows are split among the processes
    (:func:`vaekit.runtime.distributed.map_blocks`) and rank 0 writes the file."""
    from ..runtime import distributed

    with distributed.process_group():
        _score(args)


def _score(args: ScoreArgs) -> None:
    from ..data.array import read
    from ..detectors.anomaly import load_detector
    from ..evaluation.anomaly import BLOCK, SCORES
    from ..evaluation.conformal import conformal_pvalues, decision
    from ..runtime import distributed

    x, _ = read(args.input, args.label_column, columns=runcheck.training_columns(args.run))
    detector = load_detector(args.run, args.score, args.fpr, args.num_samples, args.progress, args.threshold)
    if int(np.prod(x.shape[1:])) != detector.n_features_in_:
        raise ValueError(
            f"{args.input} has {int(np.prod(x.shape[1:]))} features per row but the model was trained on "
            f"{detector.n_features_in_}" + ("" if args.label_column else "; pass --label-column if a column is a label")
        )
    scores = distributed.map_blocks(detector.score_samples, x, BLOCK)  # rows are scored independently
    if not distributed.is_main():
        return
    outlier = decision(scores, detector.offset_) < 0  # a non-finite score is an outlier
    # the p-values of the scores just computed (detector.pvalues(x) would score every row again)
    pvalues = (
        conformal_pvalues(detector.calibration_scores_, scores)
        if len(detector.calibration_scores_)
        else np.full(len(scores), np.nan)
    )
    out = Path(args.output) if args.output else Path(args.run) / "scores.csv"
    lines = ["index,score,pvalue,outlier"] + [
        f"{i},{s!r},{p!r},{int(o)}" for i, (s, p, o) in enumerate(zip(scores.tolist(), pvalues.tolist(), outlier))
    ]
    io.atomic_write(out, "\n".join(lines) + "\n")
    source = (
        "--threshold"
        if args.threshold is not None
        else f"conformal p-value <= fpr {detector.fpr:g}, {len(detector.calibration_scores_)} calibration rows"
    )
    say(
        f"scored {len(scores)} rows with {detector.score_type} ({SCORES[detector.score_type].unit}, higher = more normal); "
        f"{int(outlier.sum())} outliers (score < {detector.offset_:.4g}, {source})"
    )
    say(f"written: {out}")
