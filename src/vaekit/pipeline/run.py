"""The run pipeline: train a config end to end in a run folder and keep everything it produced.

Every file is written atomically, so a run killed at any moment resumes (``resume=True``) to the
same end state. A run that fails before its first checkpoint leaves no folder behind; one that
fails later leaves a folder that ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import shutil
from pathlib import Path

import torch

from .. import data, io
from ..config import Config
from ..evaluation import UNITS, evaluate_conditional
from ..evaluation.kl import KLDiagnostics
from ..models import build_model, given
from ..training import Checkpoint, EpochLog, Progress, RunOptions, TrainingDiverged, distributed, fit, runtime
from .folders import (CHECKPOINT, METRICS, SCALER, SUMMARY, class_count, clean_stale_files, condition_labels, examples, fit_scaler, hold_run,
                      initialise, load_dataset, prepare, resolve_condition, split_validation, standardized, streamed_splits)


def train_run(config: Config | None, run_dir, resume: bool = False, progress: bool = True,
              epochs: int | None = None, logger=None, options: RunOptions | None = None,
              trust_code: bool | None = None) -> dict:
    """Train ``config`` in ``run_dir`` (made by :func:`vaekit.pipeline.folders.create_run_dir` or
    new), evaluate on the test split, write the figures and ``report.html``, and return the
    summary (also in ``summary.json``).

    Metrics always go to ``metrics.jsonl``; ``logger`` (a name of
    :data:`vaekit.reporting.tracking.LOGGERS`: "tensorboard", "mlflow", "wandb", or a
    :class:`vaekit.reporting.tracking.Logger`) also sends them, the config and the run folder's
    files to a tracker; on resume it continues the same tracked run (None, the default: "jsonl" for
    a new run, the run's own tracker on resume, from ``RUN/tracking.json``). ``trust_code`` allows the
    custom encoder/decoder a config names (:mod:`vaekit.custom_nets`). ``progress``: a bar on a
    terminal, otherwise plain lines (:class:`vaekit.training.Progress`).

    When resuming, the config is read from ``run_dir/config.json`` (``config`` is ignored),
    stale temporary files are removed, and ``epochs`` may extend the run beyond its saved number
    of epochs. ``options`` (device, precision, threads...; default
    :class:`~vaekit.training.RunOptions`) are recorded in the summary. Under torchrun every rank
    trains; rank 0 alone writes the folder, evaluates and returns the summary, the other ranks
    return an empty dict.

    Raises:
        ValueError / FileNotFoundError: bad data, config or files (clear messages).
        TrainingDiverged: a loss, weight or test metric became NaN/Inf; the message says whether
            a checkpoint to resume from is kept (a run that diverged in its first epoch leaves
            no folder).
        FileExistsError: another live process trains in ``run_dir``
            (:func:`vaekit.pipeline.folders.hold_run`); nothing is touched.
    """
    from ..reporting import tracking

    run_dir = Path(run_dir)
    if resume:
        config = io.load_config(run_dir)
        if epochs is not None:
            config = config.replace(epochs=epochs)
    with hold_run(run_dir) if distributed.is_main() else contextlib.nullcontext():  # one process per folder
        if resume and distributed.is_main():
            clean_stale_files(run_dir)
        created = distributed.is_main() and not resume and not (run_dir / CHECKPOINT).exists()
        if logger is None:
            logger = tracking.stored_logger(run_dir) if resume else "jsonl"
        try:
            tracker = tracking.build_logger(logger)  # an unusable tracker fails here, before anything is written
            return _train_run(config, run_dir, resume, progress, tracker, options or RunOptions(), tracking, trust_code)
        except BaseException as e:
            kept = (run_dir / CHECKPOINT).exists()
            if created and not kept and run_dir.exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave no folder behind
            if isinstance(e, TrainingDiverged):
                state = (f"the checkpoint of the last good epoch is kept: continue with --resume {run_dir} "
                         "after lowering --lr or setting --grad-clip") if kept else \
                    ("no epoch completed, so no run folder is kept; lower --lr or set --grad-clip")
                raise TrainingDiverged(f"{e}; {state}") from None
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                state = (f"the checkpoint of the last finished epoch is kept: free some space, then continue with: "
                         f"vaekit train --resume {run_dir}") if kept else \
                    "no epoch finished, so no run folder is kept; free some space and start the run again"
                raise OSError(e.errno, f"{e.strerror or e}; {state}") from e
            raise


def _train_run(config: Config, run_dir: Path, resume: bool, progress: bool, tracker, options: RunOptions,
               tracking, trust_code: bool | None) -> dict:
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    scaler = fit_scaler(config, train_set)
    train_set, test_set = standardized(train_set, scaler), standardized(test_set, scaler)
    config = resolve_condition(config, train_set)
    train_c, test_c = condition_labels(config, train_set), condition_labels(config, test_set)
    extra = {} if train_c is None else {
        "num_classes": class_count(torch.cat([train_c, test_c]), config.data.condition_on)}
    model = build_model(config.model, train_set.data_shape, train_set.unit_interval, seed=config.train.seed,
                        trust_code=trust_code, **extra)
    config = dataclasses.replace(config, model=model.config)  # "auto" settings resolved for this data
    if config.train.init and not resume:
        initialise(model, config.train.init)
    if isinstance(train_set, data.Dataset):
        model.likelihood.check_support(train_set.x)
        train_x, val_x = split_validation(prepare(train_set.x, config, training=True), config)
        val_x = prepare(val_x, config)  # dynamic: one fixed draw; static: already binary, unchanged
        test_x = prepare(test_set.x, config)
        test_images = test_set.x
    else:
        train_x, val_x, test_x = streamed_splits(train_set, config, options.num_workers)
        test_images = test_x if config.binarize == "none" else examples(test_set, options.num_workers)
    train_c, val_c = (None, None) if train_c is None else split_validation(train_c, config)
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        io.write_json(run_dir / io.CONFIG, io.model_record(model, config))
        if scaler is not None:
            io.write_json(run_dir / SCALER, scaler.to_dict())
        tracker.start(tracking.RunContext(run_dir, model, config, test_x, test_c, resume=resume))
    else:
        tracker = tracking.NullLogger()

    def log(history):
        io.atomic_write(run_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
        tracker.log_history(history)

    threads = runtime.apply_threads(model, config.train.batch_size, options.threads,
                                    runtime.resolve_device(options.device))  # fit applies the same choice
    hooks = [*_diagnostics(model, config, train_x, val_x, train_c, val_c), Checkpoint(run_dir / CHECKPOINT),
             EpochLog(log), *([Progress(config.train.epochs)] if progress else [])]
    try:
        history = fit(model, train_x, config, val=val_x, hooks=hooks, resume_from=run_dir / CHECKPOINT if resume else None,
                      labels=train_c, val_labels=val_c, options=options)
        summary = _finish(model, config, history, run_dir, test_x, test_images, test_set, test_c, options, log, tracker,
                          threads, num_train=len(train_x), num_val=0 if val_x is None else len(val_x))
        tracker.finish(summary)
    except BaseException as error:
        tracker.close(tracking.status_of(error))
        raise
    tracker.close()
    return summary


def _finish(model, config: Config, history: list[dict], run_dir: Path, test_x, test_images, test_set, test_c,
            options: RunOptions, log, tracker, threads: runtime.ThreadChoice, num_train: int, num_val: int) -> dict:
    """After training: the test summary (every rank evaluates: the importance-sampled
    log-likelihood is sharded over the ranks; the MSE is measured on ``test_images``, the test
    data before binarization), then on rank 0 (other ranks return {}): metrics.jsonl (and any
    epoch the tracker missed), weights, figures and report.html."""
    device = next(model.parameters()).device
    summary = summarise(model, config, test_x.to(device), history, test_c, test_images.to(device))
    if not distributed.is_main():
        return {}
    log(history)
    summary.update({"num_train_examples": num_train, "num_val_examples": num_val, "run_options": options.to_dict(), "device": str(device), "world_size": distributed.world_size(),
                    "threads": threads.to_dict()})
    if tracker.describe():
        summary["tracking"] = tracker.describe()
    io.save(model, run_dir, config)
    io.write_json(run_dir / SUMMARY, summary)
    model.cpu()
    _write_outputs(model, history, test_x, run_dir, test_c, test_set.labels, summary)
    return summary


def _diagnostics(model, config: Config, train_x, val_x, train_c, val_c) -> list:
    """The KL-diagnostic hook of a run, when it applies (a VAE, in-memory data, points > 0)."""
    probe, probe_c, prefix = (val_x, val_c, "val") if val_x is not None and len(val_x) else (train_x, train_c, "train")
    points = config.train.kl_diagnostic_points
    if points and model.stochastic and torch.is_tensor(probe) and (probe_c is not None or not model.conditional):
        return [KLDiagnostics(probe, points, seed=config.train.seed, labels=probe_c, prefix=prefix)]
    return []


def _write_outputs(model, history, test_x, run_dir: Path, test_c, test_labels, summary) -> None:
    """Figures, the environment record and report.html of a finished run."""
    from ..reporting import gallery, report

    write_figures(model, history, test_x, run_dir, test_c)
    gallery.write_figures(model, test_x, run_dir, test_c, test_labels)
    io.write_json(run_dir / report.ENVIRONMENT, report.environment(model, summary["training_time_s"],
                                                                   summary.get("threads")))
    report.write_report(run_dir)


def summarise(model, config: Config, test_x: torch.Tensor, history: list[dict],
              labels: torch.Tensor | None = None, test_images: torch.Tensor | None = None) -> dict:
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
        summary["note_collapse"] = (
            "no latent dimension is active (posterior collapse): the decoder ignores z. With a Gaussian "
            "likelihood on [0, 1] pixels try a smaller --likelihood-scale (e.g. 0.1) or --likelihood-scale learned")
    if config.model.likelihood == "bernoulli" and config.binarize == "none":
        summary["note"] = ("Bernoulli likelihood on non-binary data: the ELBO and log-likelihood are negative "
                           "cross-entropies, not log-likelihoods; use --binarize static|dynamic for likelihoods")
    return summary


def write_figures(model, history: list[dict], test_x: torch.Tensor, run_dir,
                  labels: torch.Tensor | None = None) -> list[Path]:
    """Loss curves, and for image data a reconstruction grid, prior samples and (latent_dim = 2)
    the latent manifold grid (``labels``: the condition of a CVAE). Returns the paths written."""
    from ..reporting import plots

    run_dir = Path(run_dir)
    paths = [plots.loss_curves(history, run_dir / "loss_curves.png")]
    if len(model.data_shape) != 3:
        return paths
    x = test_x[:32]
    view = given(model, None if labels is None else labels[:32])
    paths.append(plots.reconstruction_grid(x, view.reconstruct(x), run_dir / "reconstructions.png"))
    paths.append(plots.save_image_grid(model.sample(64, generator=torch.Generator().manual_seed(0)),
                                       run_dir / "samples.png", title="decoder means of prior samples"))
    if model.latent_dim == 2 and not model.conditional:
        paths.append(plots.latent_manifold(model, run_dir / "latent_manifold.png"))
    return paths
