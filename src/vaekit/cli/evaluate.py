"""``vaekit evaluate RUN`` (likelihoods, reconstruction, active units), ``vaekit evaluate disentanglement RUN``
and ``vaekit evaluate robustness RUN``: each calls :mod:`vaekit.evaluation` (no benchmark protocol)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated, Literal

import tyro

from .. import io
from ..data import splits
from ..evaluation import UNITS, evaluate_conditional
from ..io import checks as runcheck
from .common import COUNT, NONNEGATIVE, NUM_SAMPLES, OUTPUT, SEED, UNIT, Checked, say


@dataclasses.dataclass(frozen=True)
class EvaluateArgs(Checked):
    """Evaluate a run on its test split: ELBO, IWAE log-likelihood, reconstruction MSE, active units, KL per dimension."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    num_samples: Annotated[int, NUM_SAMPLES] = 1000
    """Importance samples K of the log-likelihood estimate."""
    batch_size: Annotated[int, COUNT] = 500
    """Test examples per chunk."""
    output: Annotated[str | None, OUTPUT] = None
    """JSON file to write (default RUN/evaluation.json)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    threads: Annotated[int | None, COUNT] = None
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
    num_train: Annotated[int | None, COUNT] = None
    """Training points of every metric (default: the reference's 10,000)."""
    num_eval: Annotated[int | None, COUNT] = None
    """Held-out points of every metric (default: the reference's 5,000)."""
    dci_num_train: Annotated[int | None, COUNT] = None
    """Training points of DCI alone (its gradient-boosted trees are slow on a CPU)."""
    figures: bool = True
    """Write traversals.png, kl_per_dim.png and factor_response.png into the run folder."""
    output: Annotated[str | None, OUTPUT] = None
    """JSON file to write (default RUN/disentanglement.json)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


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
    max_test: Annotated[int | None, COUNT] = None
    """Evaluate on a seeded random subset of this many test images."""
    seed: Annotated[int, SEED] = 0
    """Seed of the random starts, subsets and samples."""
    fid_epochs: Annotated[int, NONNEGATIVE] = 5
    """Training epochs of the FID feature net (0 = no FID)."""
    output: Annotated[str | None, OUTPUT] = None
    """JSON file to write (default RUN/robustness.json)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    quiet: bool = False
    """No progress output (a bar on a terminal, else a line per step or per 10 s on stderr)."""


def evaluate_run(args: EvaluateArgs) -> None:
    """``vaekit evaluate RUN``; under ``torchrun`` the log-likelihood is sharded over the processes."""
    from .. import runtime
    from ..evaluation.likelihood import likelihood_progress
    from ..runtime import distributed

    runcheck.check_not_training(args.run, io.lock_path(args.run))
    model, config = io.load(args.run), io.load_config(args.run)
    # a forward pass costs about a third of a training step: the policy's FLOPs of one block
    threads = runtime.apply_threads(model, max(1, args.batch_size // 3), args.threads)
    with runcheck.allowing_changed_data(args.allow_changed_data):
        test_set = io.load_run_split(args.run, config, "test")
    test_images = splits.examples(test_set)
    test_x = splits.prepare(test_images, config)
    with (
        distributed.process_group(),
        likelihood_progress(model, len(test_x), args.num_samples, "evaluate", enabled=args.progress),
        runtime.guarded(model.decoder, threads) as reductions,  # fewer threads if a later job slows it
    ):
        result = evaluate_conditional(
            model,
            test_x,
            splits.condition_labels(config, test_set),
            num_samples=args.num_samples,
            batch_size=args.batch_size,
            x_unbinarized=test_images,
        )
        main = distributed.is_main()
    if not main:
        return
    out = Path(args.output) if args.output else Path(args.run) / "evaluation.json"
    io.write_json(
        out,
        {
            "test": result,
            "units": {k: UNITS[k] for k in result},
            "num_samples": args.num_samples,
            "num_test_examples": len(test_x),
            "threads": dataclasses.replace(threads, reductions=tuple(reductions)).to_dict(),
        },
    )
    for key, value in result.items():
        if key != "kl_per_dim":
            say(
                f"{key:>16}: {value:.4f}  ({UNITS[key]})"
                if isinstance(value, float)
                else f"{key:>16}: {value}  ({UNITS[key]})"
            )
    say(f"written: {out}")


def evaluate_disentanglement(args: DisentanglementArgs) -> None:
    """``vaekit evaluate disentanglement RUN``."""
    from ..evaluation.runs import disentanglement_of_run
    from ..reporting.gallery import disentanglement_figures

    overrides = {"dci": {"num_train": args.dci_num_train}} if args.dci_num_train else None
    model, config, _ = io.load_run(args.run)
    figures = functools.partial(disentanglement_figures, folder=args.run) if args.figures else None
    report = {
        "run": args.run,
        **disentanglement_of_run(
            model, config, args.metrics, args.seed, args.num_train, args.num_eval, overrides, figures=figures
        ),
    }
    io.write_json(Path(args.output) if args.output else Path(args.run) / "disentanglement.json", report)
    for key, value in report["headline"].items():
        say(f"{key:>28}: {value:.4f}")
    if "kl" in report:
        kl = report["kl"]
        say(
            f"{'KL (nats/example)':>28}: {kl['kl']:.3f} = MI {kl['kl_mi']:.3f} + TC {kl['kl_tc']:.3f} "
            f"+ dimension-wise {kl['kl_dimwise']:.3f} (Monte Carlo sum {kl['kl_mc']:.3f})"
        )
    say(f"written: {args.output or Path(args.run) / 'disentanglement.json'}")


def evaluate_robustness(args: EvaluateRobustnessArgs) -> None:
    """``vaekit evaluate robustness RUN``; under ``torchrun`` the PGD attacks are sharded over the processes."""
    from ..evaluation.runs import robustness_of_run
    from ..runtime import distributed

    with distributed.process_group():
        result = robustness_of_run(
            *io.load_run(args.run),
            args.epsilons,
            args.num_steps,
            args.norm,
            args.labels or None,
            consistency_steps=args.consistency_steps,
            standardize=args.standardize,
            max_test=args.max_test,
            seed=args.seed,
            with_fid=args.fid_epochs > 0,
            fid_epochs=max(1, args.fid_epochs),
            attacks=args.attacks,
            with_smoothness=args.smoothness,
        )
        main = distributed.is_main()
    if not main:
        return
    out = Path(args.output) if args.output else Path(args.run) / "robustness.json"
    io.write_json(out, result)
    names = {
        "pgd": f"{args.norm} PGD-{args.num_steps}",
        "fgsm": f"{args.norm} FGSM",
        "latent": f"{args.norm} latent PGD-{args.num_steps}",
    }
    smooth = result.get("smoothness")
    for label, entry in result["probe"].items():
        print(f"{label:>10}: clean {100 * entry['clean']:.1f}%", flush=True)
        for attack in args.attacks:
            sweep = ", ".join(f"ε={e}: {100 * a:.1f}%" for e, a in entry[attack].items())
            print(f"{'':>10}  {names[attack]}: {sweep}", flush=True)
        if smooth:
            figures = ", ".join(f"ε={e}: {r:.3f}" for e, r in smooth["smoothness"][label].items())
            print(
                f"{'':>10}  smoothness (median latent move / median between-class distance "
                f"{smooth['median_between_class_distance'][label]:.3f}): {figures}",
                flush=True,
            )
        if "consistency" in result:
            print(
                f"{'':>10}  after {args.consistency_steps} iterations of x <- g(mu(x)): "
                f"{100 * result['consistency'][label][-1]:.1f}% keep the true label",
                flush=True,
            )
    print(
        f"test MSE of g(mu(x)): {result['mse_per_pixel']:.5f} per pixel, {result['mse_per_example']:.3f} per example "
        f"(x before binarization, pixels in [0, 1])"
        + (f"; classifier-feature FID {result['fid']:.2f} (not Inception FID)" if "fid" in result else ""),
        flush=True,
    )
    print(f"written: {out}", flush=True)
