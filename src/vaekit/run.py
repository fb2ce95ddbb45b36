"""One run, start to end: train a config in a run folder, evaluate it on the test split, save it.

The script reads top to bottom: data, model, config.json, hooks, :func:`vaekit.training.fit`,
test summary, weights and summary.json. The folder is owned by a :class:`vaekit.io.RunFolder`
(lock, creation or resume, cleanup, every file written once). What a run reports beyond that (a
tracker, figures, ``report.html``) comes in from the caller as ``tracker`` and ``outputs``
(``vaekit train`` passes :func:`vaekit.reporting.outputs.write_outputs`), built from what is in
memory, so this layer imports no reporting.

Every file is written atomically, so a run killed at any moment resumes to the same end state. A
run that fails before its first checkpoint leaves no folder behind; one that fails later leaves a
folder that ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .config import Config
from .data.splits import run_data
from .distributions import build_likelihood
from .evaluation import UNITS, evaluate_conditional
from .evaluation.kl import KLDiagnostics
from .evaluation.likelihood import likelihood_progress
from .io import RunFolder, initialise
from .models import build_model
from .options import RunOptions
from .runtime import distributed
from .training import Checkpoint, EpochLog, Progress, TrainingDiverged, fit


@dataclasses.dataclass
class RunContext:
    """What a tracker is told about the run it tracks (:meth:`vaekit.reporting.tracking.Logger.start`).

    Attributes:
        run_dir: the run folder. model: the model being trained.
        config: the run's whole :class:`~vaekit.config.Config` (model, train and data sections).
        test_x: ``(N, *data_shape)`` test inputs (for image summaries). c: their condition (CVAE) or None.
        resume: whether the run continues an interrupted or finished one.
    """

    run_dir: Path
    model: torch.nn.Module
    config: Config
    test_x: torch.Tensor
    c: torch.Tensor | None = None
    resume: bool = False

    def params(self) -> dict[str, str]:
        """Every setting of the config under its flat name (its flag), as a tracker parameter string."""
        return {key: param_value(value) for key, value in self.config.to_flat().items()}


def param_value(value) -> str:
    """A config value as a tracker parameter string: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """What the ``outputs`` hooks of :func:`train` are given once the weights and summary are saved.

    Attributes:
        run_dir: the run folder. model: the trained model (on the CPU, eval mode).
        config: the run's whole :class:`~vaekit.config.Config` (as in ``config.json``).
        history: one metrics dict per epoch (as in ``metrics.jsonl``).
        test_x: ``(N, *data_shape)`` test inputs as the model sees them. c: their condition or None.
        labels: the test split's label columns (name -> ``(N,)``). summary: ``summary.json``'s dict.
    """

    run_dir: Path
    model: torch.nn.Module
    config: Config
    history: list
    test_x: torch.Tensor
    c: torch.Tensor | None
    labels: dict
    summary: dict


def status_of(error: BaseException) -> str:
    """The tracker status of a run that raised ``error``: KILLED for Ctrl-C, else FAILED."""
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


class _NoTracker:
    """The tracker of a run that has none (and of every rank but 0): every hook does nothing."""

    def start(self, run: RunContext) -> None:
        """Nothing to start."""

    def log_history(self, history: list) -> None:
        """Nothing to send (metrics.jsonl is written by the run itself)."""

    def finish(self, summary: dict) -> None:
        """Nothing to finish."""

    def close(self, status: str = "FINISHED") -> None:
        """Nothing to close."""

    def describe(self) -> dict:
        """No tracked run to point to: an empty dict."""
        return {}


def train(
    config: Config | None,
    folder: RunFolder | str | Path,
    *,
    progress: bool = True,
    options: RunOptions | None = None,
    trust_code: bool | None = None,
    tracker=None,
    outputs: Sequence[Callable[[FinishedRun], None]] = (),
) -> dict:
    """Train ``config`` in the run folder ``folder``, evaluate on the test split, save the weights
    and return the summary (also in ``summary.json``).

    ``folder``: a :class:`~vaekit.io.RunFolder` (the CLI's, built with the run's config: entered
    here unless the caller entered it; ``config=None`` then takes the folder's), or a path: a new
    run folder there, or with ``config=None`` the resume of the run in it. On resume the run's own config is used (``RunFolder(path, resume=True, epochs=N)``
    extends it; a ``config`` given for a resumed folder may differ from the saved one only in its
    epochs). Metrics always go to ``metrics.jsonl``. ``tracker`` (a
    :class:`vaekit.reporting.tracking.Logger`, or None for none) also receives them; ``outputs``
    are called on rank 0 with the :class:`FinishedRun` once the folder holds the weights and
    ``summary.json`` (``vaekit train`` passes :func:`vaekit.reporting.outputs.write_outputs`:
    figures, ``report.html``). ``trust_code`` allows the custom encoder/decoder a config names
    (:mod:`vaekit.custom_nets`). ``progress``: a bar on a terminal, otherwise plain lines
    (:class:`vaekit.training.Progress`). ``options`` (device, precision, threads...; default
    :class:`~vaekit.options.RunOptions`) are recorded in the summary. Under torchrun every rank
    trains; rank 0 alone writes the folder, evaluates and returns the summary, the other ranks
    return an empty dict.

    Raises:
        ValueError / FileNotFoundError: bad data, config or files (clear messages).
        TrainingDiverged: a loss, weight or test metric became NaN/Inf; the message says whether
            a checkpoint to resume from is kept (a run that diverged in its first epoch leaves
            no folder).
        FileExistsError: the folder exists (a new run), or another live process trains in it
            (:func:`vaekit.io.hold_run`); nothing is touched.
        OSError: a full disk (ENOSPC/EDQUOT): the message says whether the checkpoint is kept and
            names the ``--resume`` command.
    """
    if not isinstance(folder, RunFolder):
        folder = RunFolder(folder, resume=config is None, config=config)
    with contextlib.nullcontext(folder) if folder.is_open else folder:
        try:
            return _run(
                folder.use(config),
                folder,
                progress,
                tracker or _NoTracker(),
                options or RunOptions(),
                trust_code,
                tuple(outputs),
            )
        except TrainingDiverged as e:
            state = (
                (
                    f"the checkpoint of the last good epoch is kept: continue with --resume {folder.path} "
                    "after lowering --lr or setting --grad-clip"
                )
                if folder.has_checkpoint()
                else ("no epoch completed, so no run folder is kept; lower --lr or set --grad-clip")
            )
            raise TrainingDiverged(f"{e}; {state}") from None
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            state = (
                (
                    f"the checkpoint of the last finished epoch is kept: free some space, then continue with: "
                    f"vaekit train --resume {folder.path}"
                )
                if folder.has_checkpoint()
                else "no epoch finished, so no run folder is kept; free some space and start the run again"
            )
            raise OSError(e.errno, f"{e.strerror or e}; {state}") from e


class _Finished:
    """A hook that keeps the training state the loop ends with (its thread choice, for the summary)."""

    state = None

    def close(self, state) -> None:
        """Keep ``state``."""
        self.state = state


def _run(
    config: Config,
    folder: RunFolder,
    progress: bool,
    tracker,
    options: RunOptions,
    trust_code: bool | None,
    outputs: tuple,
) -> dict:
    """The run, top to bottom: data, model, config.json, hooks, :func:`~vaekit.training.fit`,
    test summary, weights and summary.json, the caller's outputs."""
    likelihood = config.model.likelihood
    prepared = run_data(
        config,
        options.num_workers,
        check=lambda x: build_likelihood(likelihood, x.shape[1:]).check_support(x),  # before binarizing
    )
    config = prepared.config
    extra = {} if prepared.num_classes is None else {"num_classes": prepared.num_classes}
    model = build_model(
        config.model,
        prepared.data_shape,
        prepared.unit_interval,
        seed=config.train.seed,
        trust_code=trust_code,
        **extra,
    )
    config = dataclasses.replace(config, model=model.config)  # "auto" settings resolved for this data
    if config.train.init and not folder.resume:
        initialise(model, config.train.init)
    train_x, val_x, test_x = prepared.train_x, prepared.val_x, prepared.test_x
    train_c, val_c, test_c = prepared.train_c, prepared.val_c, prepared.test_c
    main = distributed.is_main()
    if main:
        folder.write_config(model, config, prepared.scaler)
        tracker.start(RunContext(folder.path, model, config, test_x, test_c, resume=folder.resume))
    else:
        tracker = _NoTracker()

    def log(history):
        folder.write_metrics(history)
        tracker.log_history(history)

    finished = _Finished()
    hooks = [
        *KLDiagnostics.for_run(
            model, config.train.kl_diagnostic_points, config.train.seed, train_x, val_x, train_c, val_c
        ),
        Checkpoint(folder.checkpoint),
        EpochLog(log, flush=folder.flush),
        *([Progress(config.train.epochs)] if progress else []),
        finished,
    ]
    try:
        history = fit(
            model,
            train_x,
            config,
            val=val_x,
            hooks=hooks,
            resume_from=folder.checkpoint if folder.resume else None,
            labels=train_c,
            val_labels=val_c,
            options=options,
        )
        device = next(model.parameters()).device
        # every rank evaluates: the importance-sampled log-likelihood is sharded over the ranks;
        # the MSE is measured on the test data before binarization
        with likelihood_progress(model, len(test_x), config.train.eval_num_samples, "test log-likelihood", progress):
            summary = summarize(model, config, test_x.to(device), history, test_c, prepared.test_images.to(device))
        if main:
            tracker.log_history(history)  # any epoch the tracker has not received (a resumed finished run)
            summary.update(
                {
                    "num_train_examples": len(train_x),
                    "num_val_examples": 0 if val_x is None else len(val_x),
                    "run_options": options.to_dict(),
                    "device": str(device),
                    "world_size": distributed.world_size(),
                    "threads": finished.state.threads.to_dict(),
                    "channels_last": finished.state.channels_last,
                }
            )
            if tracker.describe():
                summary["tracking"] = tracker.describe()
            folder.write_summary(model, summary)
            model.cpu()
            run = FinishedRun(folder.path, model, config, history, test_x, test_c, prepared.test_labels, summary)
            for output in outputs:
                output(run)
        tracker.finish(summary if main else {})
    except BaseException as error:
        tracker.close(status_of(error))
        raise
    tracker.close()
    return summary if main else {}


def summarize(
    model,
    config: Config,
    test_x: torch.Tensor,
    history: list[dict],
    labels: torch.Tensor | None = None,
    test_images: torch.Tensor | None = None,
) -> dict:
    """Test metrics with their units, and how the run went (``labels``: the condition of a CVAE;
    ``test_images``: ``test_x`` before binarization, on which the MSE is measured, default ``test_x``).

    Raises:
        TrainingDiverged: a reported metric is NaN/Inf (the model diverged).
    """
    t = config.train
    metrics = evaluate_conditional(model, test_x, labels, num_samples=t.eval_num_samples, x_unbinarized=test_images)
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrainingDiverged(f"the test {', '.join(bad)} is not finite ({metrics[bad[0]]}): the model diverged")
    summary = {
        "test": metrics,
        "units": {k: UNITS[k] for k in metrics},
        "num_test_examples": len(test_x),
        "eval_num_samples": t.eval_num_samples,
        "epochs_trained": len(history),
        "stopped_early": len(history) < t.epochs,
        "training_time_s": sum(h["time"] for h in history),
        "binarize": config.binarize,
    }
    if model.conditional:
        summary["conditioned_on"] = config.data.condition_on
        summary["note_conditional"] = "elbo and log_likelihood bound / estimate log p(x|c), c = each example's label"
    if model.stochastic and summary["test"].get("active_units") == 0:
        advice = (
            "With a Gaussian likelihood on [0, 1] pixels try a smaller --likelihood-scale (e.g. 0.1) or "
            "--likelihood-scale learned"
            if config.model.likelihood == "gaussian"
            else "Train longer, or lower --beta / add --warmup-epochs so the KL does not win early"
        )
        summary["note_collapse"] = (
            f"no latent dimension is active (posterior collapse): the decoder ignores z. {advice}"
        )
    if config.model.likelihood == "bernoulli" and config.binarize == "none":
        summary["note"] = (
            "Bernoulli likelihood on non-binary data: the ELBO and log-likelihood are negative "
            "cross-entropies, not log-likelihoods; use --binarize static|dynamic for likelihoods"
        )
    return summary
