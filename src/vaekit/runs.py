"""Run folders: train a config end to end and keep everything it produced.

``runs/<name>/`` holds ``config.json``, ``model.safetensors``, ``checkpoint/last.safetensors``,
``metrics.jsonl``, ``summary.json`` and PNG figures. Every file is written atomically, so a run
killed at any moment resumes (``resume=True``) to the same end state.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from . import data, distributed, gallery, io, plots, report, tracking
from .config import Config
from .data.scaling import Standardizer, wants_standardization
from .evaluation import UNITS, evaluate_conditional
from .models import MODELS, build_model, given
from .runtime import RunOptions
from .train import binarize, fit

CHECKPOINT = Path("checkpoint") / "last.safetensors"
#: The feature standardiser of a tabular run (mean and scale as JSON), when it has one.
SCALER = "scaler.json"
#: Seed of the fixed binarization of validation and test data (the same in every run).
EVAL_BINARIZE_SEED = 1234


def default_name(config: Config) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{config.model}-{config.data}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_options(config: Config) -> dict:
    """Loader options of a config (data_dir, path, label_column)."""
    options = {"data_dir": config.data_dir, "path": config.path, "label_column": config.label_column}
    options.update({"image_size": config.image_size, "grid_step": config.grid_step if config.grid_step > 1 else None})
    return {k: v for k, v in options.items() if v is not None}


def load_dataset(config: Config, split: str) -> data.Dataset:
    """The config's dataset split, with the loader options the config holds."""
    return data.load(config.data, split=split, **data_options(config))


def fit_scaler(config: Config, train_set: data.Dataset) -> Standardizer | None:
    """The standardiser of a run, fitted on its whole training split, or None when
    ``config.standardize`` does not ask for one (see :func:`vaekit.data.scaling.wants_standardization`)."""
    if not wants_standardization(config.standardize, train_set.data_shape, config.likelihood):
        return None
    return Standardizer.fit(train_set.x)


def load_scaler(run_dir) -> Standardizer | None:
    """The standardiser stored in ``run_dir/scaler.json``, or None if the run has none."""
    path = Path(run_dir) / SCALER
    return Standardizer.from_dict(io.read_json(path)) if path.is_file() else None


def standardized(dataset: data.Dataset, scaler: Standardizer | None) -> data.Dataset:
    """``dataset`` with its features standardised by ``scaler`` (unchanged for None)."""
    if scaler is None:
        return dataset
    return dataclasses.replace(dataset, x=scaler.transform(dataset.x), unit_interval=False)


def load_run_split(run_dir, config: Config, split: str) -> data.Dataset:
    """A split of a run's dataset as the model saw it in training: standardised with the run's scaler."""
    return standardized(load_dataset(config, split), load_scaler(run_dir))


def prepare(x: torch.Tensor, config: Config, training: bool = False) -> torch.Tensor:
    """Data as the model sees it: evaluation data are binarized once with a fixed seed when
    ``binarize`` is static or dynamic; training data only when static (dynamic draws per batch)."""
    mode = config.resolved_binarize
    if mode == "none" or (training and mode == "dynamic"):
        return x
    return binarize(x, torch.Generator().manual_seed(EVAL_BINARIZE_SEED + (0 if training else 1)))


def examples(dataset, num_workers: int = 0) -> torch.Tensor:
    """All examples ``(N, *data_shape)`` of a dataset in memory; data read from disk on demand
    (e.g. ``image-folder``) are read with ``num_workers`` workers."""
    return dataset.x if isinstance(dataset, data.Dataset) else data.folder.materialize(dataset, num_workers)


def split_validation(x: torch.Tensor, config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the training split into (train, validation) with ``val_fraction``, seeded by ``seed``."""
    n_val = int(round(config.val_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed))
    return x[order[n_val:]], x[order[:n_val]]


def resolve_run_dir(runs_dir, name: str | None, config: Config, overwrite: bool = False) -> Path:
    """The folder of a new run; refuses an existing one unless ``overwrite`` (then it is emptied).

    Raises:
        FileExistsError: the folder exists, is not empty, and ``overwrite`` is not set.
    """
    run_dir = Path(runs_dir) / (name or default_name(config))
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, "
                "--overwrite to replace it, or --name for a new one"
            )
        shutil.rmtree(run_dir)
    return run_dir


def train_run(config: Config | None, run_dir, resume: bool = False, progress: bool = True,
              epochs: int | None = None, logger: str | tracking.Logger = "jsonl", options: RunOptions | None = None,
              trust_code: bool | None = None) -> dict:
    """Train ``config`` in ``run_dir`` (see :func:`resolve_run_dir`), evaluate on the test split,
    write the figures and ``report.html``, and return the summary (also in ``summary.json``).

    Metrics always go to ``metrics.jsonl``; ``logger`` (a name of :data:`vaekit.tracking.LOGGERS`:
    "tensorboard", "mlflow", "wandb", or a :class:`vaekit.tracking.Logger`) also sends them, the
    config and the run folder's files to a tracker; on resume it continues the same tracked run.
    ``trust_code`` allows the custom encoder/decoder a config names (:mod:`vaekit.custom_nets`).

    When resuming, the config is read from ``run_dir/config.json`` (``config`` is ignored);
    ``epochs`` may then extend the run beyond its saved number of epochs.
    ``options`` (device, precision, ...; default: :class:`~vaekit.runtime.RunOptions`) are
    recorded in the summary. Under torchrun every rank trains; rank 0 alone writes the folder,
    evaluates and returns the summary, the other ranks return an empty dict.

    Raises:
        ValueError / FileNotFoundError: bad data, config or files (clear messages).
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    tracker = tracking.build_logger(logger)  # an unusable tracker fails here, before anything is written
    if resume:
        record = io.load_record(run_dir)
        config = Config.from_dict(record["config"])
        if epochs is not None:
            config = config.replace(epochs=epochs)
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    scaler = fit_scaler(config, train_set)
    train_set, test_set = standardized(train_set, scaler), standardized(test_set, scaler)
    config = resolve_condition(config, train_set)
    train_c, test_c = condition_labels(config, train_set), condition_labels(config, test_set)
    extra = {} if train_c is None else {"num_classes": int(train_c.max()) + 1}
    model = build_model(config, train_set.data_shape, train_set.unit_interval, trust_code=trust_code, **extra)
    if config.init and not resume:
        initialise(model, config.init)
    options = options or RunOptions()
    if isinstance(train_set, data.Dataset):
        model.likelihood.check_support(train_set.x)
        train_x, val_x = split_validation(prepare(train_set.x, config, training=True), config)
        val_x = prepare(val_x, config)  # dynamic: one fixed draw; static: already binary, unchanged
        test_x = prepare(test_set.x, config)
    else:
        train_x, val_x, test_x = streamed_splits(train_set, config, options.num_workers)
    train_c, val_c = (None, None) if train_c is None else split_validation(train_c, config)
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        io.write_json(run_dir / io.CONFIG, io.model_record(model))
        if scaler is not None:
            io.write_json(run_dir / SCALER, scaler.to_dict())
        tracker.start(tracking.RunContext(run_dir, model, test_x, test_c, resume=resume))
    else:
        tracker = tracking.NullLogger()

    def log(metrics, history):
        io.atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        tracker.log_history(history)

    try:
        history = fit(model, train_x, model.config, val=val_x, checkpoint=run_dir / CHECKPOINT, resume=resume,
                      on_epoch_end=log, progress=progress, labels=train_c, val_labels=val_c, options=options)
        summary = finish_run(model, history, run_dir, test_x, test_set, test_c, options, log, tracker)
        tracker.finish(summary)
    except BaseException as error:
        tracker.close(tracking.status_of(error))
        raise
    tracker.close()
    return summary


def finish_run(model, history: list[dict], run_dir: Path, test_x, test_set, test_c, options: RunOptions,
               log, tracker) -> dict:
    """After training (rank 0; other ranks return {}): metrics.jsonl, weights, test summary,
    figures and ``report.html`` of the run folder; returns the summary."""
    if not distributed.is_main():
        return {}
    log(None, history)
    io.save(model, run_dir)
    device = next(model.parameters()).device
    summary = summarise(model, test_x.to(device), history, test_c)
    summary.update({"run_options": options.to_dict(), "device": str(device), "world_size": distributed.world_size()})
    if tracker.describe():
        summary["tracking"] = tracker.describe()
    io.write_json(run_dir / "summary.json", summary)
    model.cpu()
    write_figures(model, history, test_x, run_dir, test_c)
    gallery.write_figures(model, test_x, run_dir, test_c, test_set.labels)
    io.write_json(run_dir / report.ENVIRONMENT, report.environment(model, summary["training_time_s"]))
    report.write_report(run_dir)
    return summary


def initialise(model, init) -> None:
    """Load the weights of the run folder ``init`` into ``model`` (``--init RUN``, e.g. AVAE-SS).

    Raises:
        FileNotFoundError: ``init`` has no model.safetensors.
        ValueError: its weights do not fit this model's architecture (the message names them).
    """
    io.load_weights(model, Path(init) / io.WEIGHTS)


def streamed_splits(train_set, config: Config, num_workers: int = 0):
    """(train, validation, test) of data read from disk on demand (e.g. ``--data image-folder``).

    The training part stays on disk and is streamed by :func:`vaekit.train.fit` through a
    DataLoader with ``num_workers`` workers; the validation part (``val_fraction``, seeded by
    ``seed``) and the test split are read into memory for evaluation.

    Raises:
        ValueError: ``binarize static``, which needs the whole training set in memory.
    """
    if config.resolved_binarize == "static":
        raise ValueError("--binarize static needs the data in memory; use dynamic or none for data read from disk")
    n_val = int(round(config.val_fraction * len(train_set)))
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
    val_x = data.folder.materialize(torch.utils.data.Subset(train_set, order[:n_val].tolist()), num_workers)
    train = torch.utils.data.Subset(train_set, order[n_val:].tolist())
    return train, prepare(val_x, config), prepare(examples(load_dataset(config, "test"), num_workers), config)


def resolve_condition(config: Config, dataset: data.Dataset) -> Config:
    """``config`` with ``condition_on`` set to the dataset's first label for a conditional model.

    Raises:
        ValueError: a conditional model on a dataset without labels, or an unknown label name.
    """
    if not MODELS[config.model].conditional:
        return config
    if not dataset.labels:
        raise ValueError(f"--model {config.model} needs labelled data; dataset {dataset.name!r} has no labels "
                         "(for --data array pass --label-column)")
    name = config.condition_on or next(iter(dataset.labels))
    if name not in dataset.labels:
        raise ValueError(f"--condition-on {name!r}: dataset {dataset.name!r} has the labels {', '.join(dataset.labels)}")
    return config.replace(condition_on=name)


def condition_labels(config: Config, dataset: data.Dataset) -> torch.Tensor | None:
    """The class indices ``(N,)`` a conditional model is given for ``dataset``; None for other models."""
    if not MODELS[config.model].conditional:
        return None
    return dataset.labels[resolve_condition(config, dataset).condition_on]


def summarise(model, test_x: torch.Tensor, history: list[dict], labels: torch.Tensor | None = None) -> dict:
    """Test metrics with their units, and how the run went (``labels``: the condition of a CVAE)."""
    config = model.config
    metrics = evaluate_conditional(model, test_x, labels, num_samples=config.eval_num_samples)
    summary = {
        "test": metrics,
        "units": {k: UNITS[k] for k in metrics},
        "num_test_examples": len(test_x),
        "eval_num_samples": config.eval_num_samples,
        "epochs_trained": len(history),
        "stopped_early": len(history) < config.epochs,
        "training_time_s": sum(h["time"] for h in history),
        "binarize": config.resolved_binarize,
    }
    if model.conditional:
        summary["conditioned_on"] = config.condition_on
        summary["note_conditional"] = "elbo and log_likelihood bound / estimate log p(x|c), c = each example's label"
    if model.stochastic and summary["test"].get("active_units") == 0:
        summary["note_collapse"] = (
            "no latent dimension is active (posterior collapse): the decoder ignores z. With a Gaussian "
            "likelihood on [0, 1] pixels try a smaller --likelihood-scale (e.g. 0.1) or --likelihood-scale learned")
    if config.likelihood == "bernoulli" and config.resolved_binarize == "none":
        summary["note"] = ("Bernoulli likelihood on non-binary data: the ELBO and log-likelihood are negative "
                           "cross-entropies, not log-likelihoods; use --binarize static|dynamic for likelihoods")
    return summary


def write_figures(model, history: list[dict], test_x: torch.Tensor, run_dir,
                  labels: torch.Tensor | None = None) -> list[Path]:
    """Loss curves, and for image data a reconstruction grid, prior samples and (latent_dim = 2)
    the latent manifold grid (``labels``: the condition of a CVAE). Returns the paths written."""
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
