"""Run folders: train a config end to end and keep everything it produced.

``runs/<name>/`` holds ``config.json``, ``model.safetensors``, ``checkpoint/last.safetensors``,
``metrics.jsonl``, ``summary.json`` and PNG figures. Every file is written atomically, so a run
killed at any moment resumes (``resume=True``) to the same end state.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from . import data, io, plots
from .config import Config
from .evaluation import UNITS, evaluate
from .models import build_model
from .train import binarize, fit

CHECKPOINT = Path("checkpoint") / "last.safetensors"
#: Seed of the fixed binarization of validation and test data (the same in every run).
EVAL_BINARIZE_SEED = 1234


def default_name(config: Config) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{config.model}-{config.data}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_options(config: Config) -> dict:
    """Loader options of a config (data_dir, path, label_column)."""
    options = {"data_dir": config.data_dir, "path": config.path, "label_column": config.label_column}
    return {k: v for k, v in options.items() if v is not None}


def load_dataset(config: Config, split: str) -> data.Dataset:
    """The config's dataset split, with the loader options the config holds."""
    return data.load(config.data, split=split, **data_options(config))


def prepare(x: torch.Tensor, config: Config, training: bool = False) -> torch.Tensor:
    """Data as the model sees it: evaluation data are binarized once with a fixed seed when
    ``binarize`` is static or dynamic; training data only when static (dynamic draws per batch)."""
    mode = config.resolved_binarize
    if mode == "none" or (training and mode == "dynamic"):
        return x
    return binarize(x, torch.Generator().manual_seed(EVAL_BINARIZE_SEED + (0 if training else 1)))


def split_validation(x: torch.Tensor, config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the training split into (train, validation) with ``val_fraction``, seeded by ``seed``."""
    n_val = int(round(config.val_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed))
    return x[order[n_val:]], x[order[:n_val]]


def resolve_run_dir(runs_dir, name: str | None, config: Config, resume: bool, overwrite: bool) -> Path:
    """The run folder; refuses an existing one unless resuming or overwriting.

    Raises:
        FileExistsError: the folder exists and neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: ``resume`` of a folder that does not exist.
    """
    run_dir = Path(runs_dir) / (name or default_name(config))
    if resume:
        if not (run_dir / io.CONFIG).is_file():
            raise FileNotFoundError(f"cannot resume {run_dir}: it has no {io.CONFIG}; start a new run instead")
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, "
                "--overwrite to replace it, or --name for a new one"
            )
        shutil.rmtree(run_dir)
    return run_dir


def train_run(config: Config, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train ``config`` in ``run_dir`` (see :func:`resolve_run_dir`), evaluate on the test split,
    write the figures, and return the summary (also in ``summary.json``).

    When resuming, the config is read from ``run_dir/config.json`` and ``config`` is ignored.

    Raises:
        ValueError / FileNotFoundError: bad data, config or files (clear messages).
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    if resume:
        record = io.load_record(run_dir)
        config = Config.from_dict(record["config"])
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    model = build_model(config, train_set.data_shape, train_set.unit_interval)
    model.likelihood.check_support(train_set.x)
    if config.init and not resume:
        initialise(model, config.init)
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        io.write_json(run_dir / io.CONFIG, io.model_record(model))
    train_x, val_x = split_validation(prepare(train_set.x, config, training=True), config)
    val_x = prepare(val_x, config)  # dynamic: one fixed draw; static: already binary, unchanged
    test_x = prepare(test_set.x, config)

    def log(_metrics, history):
        io.atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    history = fit(model, train_x, model.config, val=val_x, checkpoint=run_dir / CHECKPOINT, resume=resume,
                  on_epoch_end=log, progress=progress)
    log(None, history)
    io.save(model, run_dir)
    summary = summarise(model, test_x, history)
    io.write_json(run_dir / "summary.json", summary)
    write_figures(model, history, test_x, run_dir)
    return summary


def initialise(model, init) -> None:
    """Load the weights of the run folder ``init`` into ``model`` (``--init RUN``, e.g. AVAE-SS).

    Raises:
        FileNotFoundError: ``init`` has no model.safetensors.
        ValueError: its weights do not fit this model's architecture (the message names them).
    """
    io.load_weights(model, Path(init) / io.WEIGHTS)


def summarise(model, test_x: torch.Tensor, history: list[dict]) -> dict:
    """Test metrics with their units, and how the run went."""
    config = model.config
    metrics = evaluate(model, test_x, num_samples=config.eval_num_samples)
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
    if config.likelihood == "bernoulli" and config.resolved_binarize == "none":
        summary["note"] = ("Bernoulli likelihood on non-binary data: the ELBO and log-likelihood are negative "
                           "cross-entropies, not log-likelihoods; use --binarize static|dynamic for likelihoods")
    return summary


def write_figures(model, history: list[dict], test_x: torch.Tensor, run_dir) -> list[Path]:
    """Loss curves, and for image data a reconstruction grid, prior samples and (latent_dim = 2)
    the latent manifold grid. Returns the paths written."""
    run_dir = Path(run_dir)
    paths = [plots.loss_curves(history, run_dir / "loss_curves.png")]
    if len(model.data_shape) != 3:
        return paths
    x = test_x[:32]
    paths.append(plots.reconstruction_grid(x, model.reconstruct(x), run_dir / "reconstructions.png"))
    paths.append(plots.save_image_grid(model.sample(64, generator=torch.Generator().manual_seed(0)),
                                       run_dir / "samples.png", title="decoder means of prior samples"))
    if model.latent_dim == 2:
        paths.append(plots.latent_manifold(model, run_dir / "latent_manifold.png"))
    return paths
