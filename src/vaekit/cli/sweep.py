"""``vaekit sweep``: a grid of settings × seeds (or an Optuna search) as run folders, with a report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import tyro

from .common import COUNT, SEED, Checked, benchmark_command


@dataclasses.dataclass(frozen=True)
class SweepArgs(Checked):
    """Train a grid of settings × seeds (every point a run folder), resumable, shared through an Optuna study; report mean, std and 95 % t interval per metric."""

    grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """SETTING=V1,V2,... (repeatable; a setting given twice gets both lists): the arms are the product, e.g. --grid model=vae,avae --grid noise_std=0,0.2. Seeds are --seeds, not a setting."""
    seeds: Annotated[tuple[int, ...], SEED] = ()
    """Seeds of every arm (default: the sweep file's, else 0)."""
    config_file: str | None = None
    """Sweep file (JSON: base, grid, arms, seeds, evaluate; see docs/sweep.md)."""
    set: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """SETTING=VALUE shared by every arm (repeatable), e.g. --set data=color-digits --set epochs=20."""
    evaluate: tuple[Literal["robustness"], ...] = ()
    """Evaluations of every point beside the test metrics (settings from the sweep file's "evaluate")."""
    out: str = "runs/sweep"
    """Folder of the sweep: runs/<arm>-seed<k>/, sweep.db, sweep-report.{json,html}, sweep-per-seed.png."""
    jobs: Annotated[int, COUNT] = 1
    """Points run at once, each in a worker process of one thread; at most the CPU cores this process may use (more is clamped to them)."""
    storage: str | None = None
    """Optuna RDB storage URL (default sqlite:///OUT/sweep.db); a database server URL shares the sweep between machines (its password is never printed)."""
    study_name: str | None = None
    """Study name in the storage (default: the name of --out)."""
    search: Literal["tpe", "random", "cmaes", "qmc", "gp"] | None = None
    """Search with this Optuna sampler over --search-space instead of the grid."""
    search_space: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """SETTING=float:LOW:HIGH[:log] | int:LOW:HIGH[:log] | choice:A,B (repeatable), for --search."""
    n_trials: Annotated[int, COUNT] = 20
    """Trials of a --search."""
    metric: str | None = None
    """Trial value, e.g. test.elbo or robustness.probe.digit.pgd.0.1 (required by --search)."""
    direction: Literal["maximize", "minimize"] = "maximize"
    """Direction of --metric for --search."""
    heartbeat: Annotated[int, COUNT] = 10
    """Seconds between heartbeats of a running point."""
    grace_period: Annotated[int, COUNT] = 60
    """A running point without a heartbeat for this many seconds is taken as killed and run again (resumed)."""
    report_only: bool = False
    """Only rewrite the report from the storage (no training)."""


#: Flags given once per value (``--grid a=1 --grid b=2``); other tuple flags take their values after one flag.
_APPEND = ("grid", "set", "search_space")


def sweep_command(args: SweepArgs) -> str:
    """The command line that runs (continues) this sweep: the flags that differ from their defaults
    (not ``--report-only``), ``--trust-code`` when given, the storage URL's password as ``***``."""
    import shlex

    from ..benchmarks.sweeps.storage import hide_password
    from ..custom_nets import code_trusted

    words = ["vaekit", "sweep"]
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if value == field.default or field.name == "report_only":
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.name == "storage":
            value = hide_password(value)
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif field.name in _APPEND:
            words += [w for item in value for w in (flag, str(item))]
        elif isinstance(value, tuple):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    if code_trusted():
        words.append("--trust-code")
    return shlex.join(words)


def _failure_line(report: dict, args: SweepArgs) -> str:
    """One line: how many points did not finish, the first errors, and how to retry them."""
    from ..benchmarks.sweeps.results import REPORT_HTML
    from ..benchmarks.sweeps.storage import scrub

    unfinished = report["unfinished"] or [f["point"] for f in report["failures"]]
    errors = {f["point"]: f["error"] for f in report["failures"]}
    total = len(unfinished) + sum(len(seeds) for seeds in report["arms"].values())
    shown = "; ".join(f"{k}: {errors.get(k, 'did not finish')}" for k in unfinished[:2])
    more = f"; {len(unfinished) - 2} more" if len(unfinished) > 2 else ""
    kept = "; the finished ones are kept" if total > len(unfinished) else ""
    return scrub(
        f"{len(unfinished)} of {total} sweep point(s) failed ({shown}{more}; all in "
        f"{Path(args.out) / REPORT_HTML}){kept}; fix the cause and run the same command again "
        "to retry the failed ones",
        args.storage,
    )


def sweep(args: SweepArgs) -> None:
    """``vaekit sweep``: exits non-zero when points failed (saying how many), after writing the report.

    Raises:
        ValueError: bad flags; RuntimeError: some points failed; KeyboardInterrupt: with the
        command that continues the sweep.
    """
    try:
        _sweep(args)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the finished points are kept; continue the sweep with: {sweep_command(args)}"
        ) from None


def _sweep(args: SweepArgs) -> None:
    from ..benchmarks.sweeps.engine import grid_spec, run_sweep
    from ..benchmarks.sweeps.results import REPORT_HTML, write_report

    if args.jobs < 1 or args.heartbeat < 1 or args.grace_period <= args.heartbeat:
        raise ValueError(
            f"--jobs and --heartbeat must be >= 1 and --grace-period > --heartbeat, got "
            f"{args.jobs}, {args.heartbeat} and {args.grace_period}"
        )
    if args.search and not args.metric:
        raise ValueError("--search needs --metric (e.g. --metric test.elbo) to rank trials")
    evaluate = {name: {} for name in args.evaluate}
    spec = grid_spec(args.grid, args.seeds, args.set, args.config_file, evaluate)
    if args.report_only:
        report = write_report(args.out, args.storage, args.study_name, metric=args.metric)
    else:
        report = run_sweep(
            spec,
            args.out,
            jobs=args.jobs,
            storage=args.storage,
            study_name=args.study_name,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace_period,
            metric=args.metric,
            search=args.search,
            space_items=args.search_space,
            n_trials=args.n_trials,
            direction=args.direction,
        )
    for arm, stats in report["aggregate"].items():
        shown = [k for k in (args.metric, "test.elbo", "test.active_units") if k and k in stats]
        cells = "; ".join(
            f"{k} {s['mean']:.4g} [{s['ci95_low']:.4g}, {s['ci95_high']:.4g}]"
            for k, s in ((k, stats[k]) for k in shown)
        )
        print(f"{arm}: n={max((s['n'] for s in stats.values()), default=0)}; {cells}", flush=True)
    print(f"written: {Path(args.out) / REPORT_HTML} (95 % intervals: Student t over seeds)", flush=True)
    if report["failures"] or report["unfinished"]:
        if args.report_only:  # a read of the storage: says so, does not fail
            print(_failure_line(report, args), flush=True)
        else:
            raise RuntimeError(_failure_line(report, args))


@dataclasses.dataclass(frozen=True)
class BenchmarkRobustnessSeedsArgs(Checked):
    """The AVAE question over seeds: VAE, AVAE, SE at the official likelihood scale beside a VAE at std 0.05; three attacks, smoothness; 95 % t intervals."""

    data: Literal["color-digits", "color-mnist", "color-fashion-mnist"] = "color-digits"
    """Dataset: color-digits (8×8), color-mnist (28×28, the AVAE paper's ColorMNIST from the 5,000 real MNIST images of mnist-5k: 4,000 train, offline) or color-fashion-mnist (28×28, a fixed 20,000-image training subset; pass --data-dir /usr/share/datasets for Debian's dataset-fashion-mnist)."""
    data_dir: str = "data"
    """Folder holding dataset files."""
    seeds: Annotated[tuple[int, ...], SEED] = (0, 1, 2)
    """Seeds of every arm."""
    jobs: Annotated[int, COUNT] = 2
    """Points trained at once (worker processes of one thread)."""
    epochs: Annotated[int | None, COUNT] = None
    """Training epochs of every arm (default: the dataset's setting)."""
    max_test: Annotated[int, COUNT] = 1000
    """Test images of the probe evaluation (a seeded subset, the same for every run)."""
    train_size: Annotated[int | None, COUNT] = None
    """Training images (a fixed subset; default: the dataset's setting, 20,000 for color-fashion-mnist)."""
    arms: tuple[str, ...] = ()
    """Arms to run (default: VAE std 0.05, and VAE, AVAE, SE ε 0.1 at the official scale); also the ablation arms by name."""
    out: str | None = None
    """Output folder (default benchmarks/results/robustness-seeds/<data>)."""
    collect_only: bool = False
    """Write results from the points finished so far, without training."""
    verdict: bool = False
    """Run the AVAE verdict study instead (--data color-mnist only): one setting at a time towards the official code, 3 seeds each (default out benchmarks/results/robustness-seeds/color-mnist-verdict)."""


def benchmark_robustness_seeds(args: BenchmarkRobustnessSeedsArgs) -> None:
    """``vaekit benchmark robustness-seeds``."""
    from ..benchmarks.robustness_seeds import run_benchmark

    command = benchmark_command("")
    if args.verdict:
        if args.data != "color-mnist" or args.arms or args.epochs or args.train_size:
            raise ValueError(
                "--verdict runs fixed arms on --data color-mnist: drop --arms, --epochs and --train-size "
                "and use --data color-mnist"
            )
        from ..benchmarks.robustness_verdict import run_verdict

        out = args.out or "benchmarks/results/robustness-seeds/color-mnist-verdict"
        report = run_verdict(out, args.seeds, args.jobs, args.collect_only, command=command)
        print(report["markdown"], flush=True)
        print(f"written: {Path(out) / 'results.md'}", flush=True)
        return
    report = run_benchmark(
        args.data,
        args.out,
        args.seeds,
        args.jobs,
        args.epochs,
        args.max_test,
        args.data_dir,
        args.collect_only,
        command=command,
        arm_names=args.arms or None,
        train_size=args.train_size,
    )
    print(report["markdown"], flush=True)
    print(f"written: {Path(args.out or f'benchmarks/results/robustness-seeds/{args.data}') / 'results.md'}", flush=True)
