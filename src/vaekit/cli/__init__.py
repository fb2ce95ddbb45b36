"""The ``vaekit`` command line: thin. Flags are generated from dataclasses by tyro; every handler
calls library functions and prints. Errors become one line on stderr and a non-zero exit.

Each command family is one module of this package, imported only when its command runs, so
``vaekit --help`` loads no torch and no plotting library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import sys

from .common import (
    TRUST_CODE_HELP,
    flag_registry,
    one_line_warnings,
    split_trust_code,
    terminate_as_interrupt,
    trust_code,
)


@dataclasses.dataclass(frozen=True)
class Command:
    """A CLI command: the module that holds it (below ``vaekit``), its argument dataclass and
    handler names there, and the one line ``vaekit --help`` shows (the first line of the argument
    dataclass's docstring; a test keeps the two equal)."""

    module: str
    args: str
    run: str
    summary: str

    def load(self):
        """``(argument dataclass, handler)``, importing the command's module."""
        module = importlib.import_module(f"vaekit.{self.module}")
        return getattr(module, self.args), getattr(module, self.run)


#: "command" or "command subcommand" -> Command. The two-word form is tried first.
COMMANDS: dict[str, Command] = {
    "train": Command(
        "cli.train",
        "TrainArgs",
        "train",
        "Train a model and write a run folder (config, weights, checkpoint, metrics, summary, figures).",
    ),
    "evaluate": Command(
        "cli.evaluate",
        "EvaluateArgs",
        "evaluate_run",
        "Evaluate a run on its test split: ELBO, IWAE log-likelihood, reconstruction MSE, active units, KL per dimension.",
    ),
    "sample": Command(
        "cli.use",
        "SampleArgs",
        "sample",
        "Draw samples from a run's prior and decode them: a PNG grid or a .npy array of decoder means.",
    ),
    "reconstruct": Command(
        "cli.explore",
        "ReconstructArgs",
        "reconstruct",
        "Reconstruct inputs of a run's dataset: inputs over decoder means g(mu(x)), as a PNG or .npy.",
    ),
    "manifold": Command(
        "cli.explore",
        "ManifoldArgs",
        "manifold",
        "Decode a latent grid: Gaussian quantiles for a 2-D latent, else the 2 principal directions of the encoded split.",
    ),
    "interpolate": Command(
        "cli.explore",
        "InterpolateArgs",
        "interpolate",
        "Interpolate between the codes of two inputs (dataset indices or image files), linear and/or spherical, decoded as strips.",
    ),
    "traverse": Command(
        "cli.explore",
        "TraverseArgs",
        "traverse",
        "Latent traversals around the code of one input: one dimension per row, sorted by KL over the split.",
    ),
    "iterate": Command(
        "cli.explore",
        "IterateArgs",
        "iterate",
        "Iterated encode-decode strips x, g(mu(x)), g(mu(g(mu(x)))), ... for inputs of a split.",
    ),
    "embed": Command(
        "cli.explore",
        "EmbedArgs",
        "embed",
        "Encoder means of a split to .npy and .csv (with labels), and a 2-D scatter coloured by label (PCA or t-SNE).",
    ),
    "report": Command(
        "cli.explore",
        "ReportArgs",
        "report_runs",
        "(Re)build a run's self-contained report.html, or with several runs a comparison page.",
    ),
    "score": Command(
        "cli.use",
        "ScoreArgs",
        "score",
        "Anomaly scores of every row of a file under a trained run or saved AnomalyDetector: a CSV of index, score, pvalue, outlier.",
    ),
    "evaluate disentanglement": Command(
        "cli.evaluate",
        "DisentanglementArgs",
        "evaluate_disentanglement",
        "Disentanglement metrics (BetaVAE, FactorVAE, MIG, DCI, SAP) of a run trained on dsprites or dsprites-synthetic, with figures.",
    ),
    "evaluate robustness": Command(
        "cli.evaluate",
        "EvaluateRobustnessArgs",
        "evaluate_robustness",
        "Linear-probe accuracy of a run's representation, clean and under PGD; consistency; MSE; classifier FID.",
    ),
    "benchmark anomaly": Command(
        "benchmarks.anomaly",
        "Args",
        "run_cli",
        "Benchmark VAE anomaly scores, normalizing flows (MAF, NSF) and scikit-learn detectors on digits, breast cancer and Fashion-MNIST.",
    ),
    "ood": Command(
        "cli.ood",
        "OODArgs",
        "ood",
        "Out-of-distribution scores of every row of a file under a trained VAE run: a CSV of index, score, ood.",
    ),
    "benchmark ood": Command(
        "benchmarks.ood",
        "Args",
        "run_cli",
        "Benchmark OOD scores (likelihood, likelihood ratio, typicality, WAIC, likelihood regret, BVAE ESS) on Fashion-MNIST and MNIST (and digits-28).",
    ),
    "benchmark disentanglement": Command(
        "cli.benchmark",
        "BenchmarkDisentanglementArgs",
        "benchmark_disentanglement",
        "Train VAE, beta-VAE, beta-TCVAE, capacity-annealed beta-VAE, FactorVAE and DIP-VAE on dSprites and report every disentanglement metric.",
    ),
    "benchmark zoo": Command(
        "cli.benchmark",
        "BenchmarkZooArgs",
        "benchmark_zoo",
        "Train every registered model on Fashion-MNIST (one MLP, equal epochs, 3 seeds) and pythae's implementation of each shared model on the same nets and data; IS log-likelihood, MSE, FID* per sampler, active units, time per epoch, with 95 % t intervals.",
    ),
    "benchmark robustness": Command(
        "cli.robustness",
        "BenchmarkRobustnessArgs",
        "benchmark_robustness",
        "The AVAE paper's robustness table: VAE, SE, AVAE, SE+AVAE, AVAE-SS with one architecture and budget.",
    ),
    "benchmark robustness-seeds": Command(
        "cli.sweep",
        "BenchmarkRobustnessSeedsArgs",
        "benchmark_robustness_seeds",
        "The AVAE question over seeds: VAE, VAE + noise, AVAE (mean / sampled x̃), SE ε 0.1; probe on μ, z or g(μ); 95 % t intervals.",
    ),
    "sweep": Command(
        "cli.sweep",
        "SweepArgs",
        "sweep",
        "Train a grid of settings × seeds (every point a run folder), resumable, shared through an Optuna study; report mean, std and 95 % t interval per metric.",
    ),
}


def _usage() -> str:
    names = sorted(COMMANDS)
    return (
        "usage: vaekit {"
        + ",".join(dict.fromkeys(n.split()[0] for n in names))
        + "} ...\n"
        + "\n".join(f"  vaekit {n:<26} {COMMANDS[n].summary}" for n in names)
        + "\n"
        + TRUST_CODE_HELP
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vaekit``: dispatch to a command; user errors print one line and exit 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    key = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    if key not in COMMANDS:
        print(
            f"vaekit: error: unknown command {argv[0]!r}; choose one of: "
            f"{', '.join(dict.fromkeys(n.split()[0] for n in sorted(COMMANDS)))}",
            file=sys.stderr,
        )
        return 2
    rest, trusted = split_trust_code(argv[len(key.split()) :])
    signals: list[int] = []  # SIGTERM received (then handled as Ctrl-C)
    try:
        import tyro

        args_type, handler = COMMANDS[key].load()
        default = getattr(sys.modules[args_type.__module__], "defaults_from_config_file", lambda _: None)(rest)
        from ..config import deferred_validation, validate

        boxed = io.StringIO()
        try:
            with deferred_validation(), contextlib.redirect_stderr(boxed):  # validate after parsing
                args = tyro.cli(
                    args_type,
                    args=rest,
                    prog=f"vaekit {key}",
                    default=default,
                    registry=flag_registry(),
                    description=f"{args_type.__doc__}\n\n{TRUST_CODE_HELP}",
                )
        except SystemExit as e:  # tyro's usage errors (exit 2): its box becomes one line; --help (exit 0)
            if e.code:
                from .common import usage_error_line

                print(f"vaekit: error: {usage_error_line(boxed.getvalue(), f'vaekit {key}')}", file=sys.stderr)
            return e.code if isinstance(e.code, int) else 1
        validate(args)
        from ..runtime.progress import silenced

        with (
            terminate_as_interrupt(signals),
            trust_code(trusted),
            silenced(getattr(args, "quiet", False)),
            one_line_warnings(),
        ):
            handler(args)  # silenced: every long command's --quiet
    except SystemExit as e:  # a handler's own exit
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if signals else "interrupted"
        print(
            f"vaekit: {how}; {e or 'a training run can be continued with vaekit train --resume RUN'}", file=sys.stderr
        )
        return 128 + signals[0] if signals else 130
    except Exception as e:  # one line, no traceback; VAEKIT_DEBUG=1 shows it
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        known = isinstance(e, (ValueError, TypeError, OSError, RuntimeError, json.JSONDecodeError, ImportError))
        prefix = "error" if known else f"internal error ({type(e).__name__})"
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"vaekit: {prefix}: {message}", file=sys.stderr)
        return 1
    return 0
