"""Run folders and the data a run sees: where a run lives, its dataset splits as the model saw
them in training (scaled, binarized), and the condition of a conditional model.

``runs/<name>/`` holds ``config.json``, ``model.safetensors``, ``checkpoint/last.safetensors``,
``metrics.jsonl``, ``summary.json``, ``report.html`` and PNG figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from pathlib import Path

import torch

from .. import data, io
from ..config import Config
from ..data.preprocess import prepare as _prepare
from ..data.preprocess import split_validation as _split
from ..data.scaling import Standardizer, wants_standardization

CHECKPOINT = Path("checkpoint") / "last.safetensors"
#: The feature standardiser of a tabular run (mean and scale as JSON), when it has one.
SCALER = "scaler.json"
#: The per-epoch metrics and the final summary of a run.
METRICS, SUMMARY = "metrics.jsonl", "summary.json"


def default_name(config: Config) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{config.model.name}-{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_options(config: Config) -> dict:
    """Loader options of a config (data_dir, path, label_column, image_size, grid_step)."""
    d = config.data
    options = {"data_dir": d.data_dir, "path": d.path, "label_column": d.label_column,
               "image_size": d.image_size, "grid_step": d.grid_step if d.grid_step > 1 else None}
    return {k: v for k, v in options.items() if v is not None}


#: Seed of the fixed permutation that ``data.train_size`` takes its subset from (not the run's
#: seed: every seed of a sweep trains on the same examples).
SUBSET_SEED = 0


def load_dataset(config: Config, split: str) -> data.Dataset:
    """The config's dataset split, with the loader options the config holds; the training split
    is cut to ``data.train_size`` examples (the first of a fixed permutation) when that is set.

    Raises:
        ValueError: ``train_size`` is larger than the training split.
    """
    dataset = data.load(config.data.name, split=split, **data_options(config))
    size = config.data.train_size
    if split != "train" or size is None:
        return dataset
    if size > len(dataset):
        raise ValueError(f"--train-size {size} is larger than the {len(dataset)} training examples of "
                         f"{config.data.name!r}; pass a smaller --train-size or leave it unset to use them all")
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]
    keep = keep.sort().values
    if isinstance(dataset, data.Dataset):
        return dataset.subset(keep)
    return torch.utils.data.Subset(dataset, keep.tolist())


def fit_scaler(config: Config, train_set: data.Dataset) -> Standardizer | None:
    """The standardiser of a run, fitted on its whole training split, or None when
    ``data.standardize`` does not ask for one (see :func:`vaekit.data.scaling.wants_standardization`)."""
    if not wants_standardization(config.data.standardize, train_set.data_shape, config.model.likelihood):
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
    """Data as the model of ``config`` sees it (:func:`vaekit.data.preprocess.prepare` with the
    config's resolved binarize mode)."""
    return _prepare(x, config.binarize, training)


def split_validation(x: torch.Tensor, config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the training split into (train, validation) with ``val_fraction``, seeded by ``seed``."""
    return _split(x, config.data.val_fraction, config.train.seed)


def examples(dataset, num_workers: int = 0) -> torch.Tensor:
    """All examples ``(N, *data_shape)`` of a dataset in memory; data read from disk on demand
    (e.g. ``image-folder``) are read with ``num_workers`` workers."""
    return dataset.x if isinstance(dataset, data.Dataset) else data.folder.materialize(dataset, num_workers)


def run_path(runs_dir, name: str | None, config: Config) -> Path:
    """``runs_dir/name`` (default name :func:`default_name`), after checking that ``name`` names one
    folder inside ``runs_dir``.

    Raises:
        ValueError: an empty name, ``.``, ``..``, an absolute name or one with a path separator
            (``--name . --overwrite`` would replace the runs folder itself).
    """
    name = default_name(config) if name is None else name
    separators = {"/", os.sep, os.altsep or "/", "\0"}
    if name in ("", ".", "..") or any(s in name for s in separators) or Path(name).is_absolute():
        raise ValueError(f"--name {name!r} must name one folder inside --runs-dir (no '/', not '.' or '..', "
                         "not absolute); pass a plain name such as --name my-run, and --runs-dir for where it goes")
    return Path(runs_dir) / name


def create_run_dir(runs_dir, name: str | None, config: Config, overwrite: bool = False) -> Path:
    """Create the folder of a new run in one atomic step (an exclusive mkdir), so that of two runs
    started with the same name at once exactly one gets it.

    With ``overwrite`` an existing folder is replaced only when it is a run (it holds
    ``config.json``) or empty, and no live process holds it (:func:`hold_run`).

    Raises:
        ValueError: a bad ``name`` (:func:`run_path`); ``overwrite`` of something that is not a run folder.
        FileExistsError: the folder exists and ``overwrite`` is not set, or a live process holds it.
    """
    run_dir = run_path(runs_dir, name, config)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with hold_run(run_dir):
        if overwrite and (run_dir.exists() or run_dir.is_symlink()):
            _remove_run(run_dir)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise FileExistsError(
                f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, "
                "--overwrite to replace it, or --name for a new one") from None
    return run_dir


def _remove_run(run_dir: Path) -> None:
    """Delete ``run_dir`` for ``--overwrite``: only a real folder that is a run or empty."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        kind = "a link" if run_dir.is_symlink() else "a file"
        raise ValueError(f"--overwrite replaces only run folders, and {run_dir} is {kind}; "
                         "choose another --name (or move it away yourself)")
    if not (run_dir / io.CONFIG).is_file() and any(run_dir.iterdir()):
        raise ValueError(f"--overwrite replaces only run folders, and {run_dir} is not one (it has no {io.CONFIG}); "
                         "choose another --name (or move it away yourself)")
    shutil.rmtree(run_dir)


#: Lock files this process holds: path -> [file descriptor, depth] (:func:`hold_run` is re-entrant).
_HELD: dict[str, list] = {}


def lock_path(run_dir) -> Path:
    """The lock file of a run folder: ``.<name>.lock`` beside it (it outlives an ``--overwrite``;
    links and ``..`` resolved, so every spelling of one folder has one lock)."""
    run_dir = Path(os.path.realpath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def hold_run(run_dir):
    """Hold ``run_dir`` for this process: an exclusive ``flock`` on :func:`lock_path`, holding the
    process id, released (and the file removed) on exit. The kernel drops the lock of a process
    that dies, so a lock file left by a killed run is ignored. Re-entrant within one process.
    Where ``fcntl`` is missing (Windows) nothing is locked.

    Raises:
        FileExistsError: another live process holds the folder (the message names its pid).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = str(lock_path(run_dir))
    if path in _HELD:
        _HELD[path][1] += 1
        try:
            yield
        finally:
            _HELD[path][1] -= 1
        return
    fd = _acquire(path, run_dir, fcntl)
    _HELD[path] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[path]
        with contextlib.suppress(OSError):
            os.unlink(path)  # before unlocking: a waiting process then finds no file or a new one
        os.close(fd)


def _acquire(path: str, run_dir, fcntl) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # the runs folder of a new run
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live process
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FileExistsError(
                f"run folder {run_dir} is in use by process {pid} (a vaekit train still running, lock {path}); "
                f"wait for it to end or stop it (kill {pid}), or pass --name for a new run") from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:  # not a file its last holder removed meanwhile
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def clean_stale_files(run_dir) -> list[Path]:
    """Remove the temporary files an interrupted atomic write left in ``run_dir`` (``.*.tmp``);
    returns the paths removed."""
    stale = [p for p in Path(run_dir).rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


def streamed_splits(train_set, config: Config, num_workers: int = 0):
    """(train, validation, test) of data read from disk on demand (e.g. ``--data image-folder``).

    The training part stays on disk and is streamed by :func:`vaekit.training.fit` through a
    DataLoader with ``num_workers`` workers; the validation part (``val_fraction``, seeded by
    ``seed``) and the test split are read into memory for evaluation.

    Raises:
        ValueError: ``binarize static``, which needs the whole training set in memory.
    """
    if config.binarize == "static":
        raise ValueError("--binarize static needs the data in memory; use dynamic or none for data read from disk")
    n_val = int(round(config.data.val_fraction * len(train_set)))
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.train.seed))
    val_x = data.folder.materialize(torch.utils.data.Subset(train_set, order[:n_val].tolist()), num_workers)
    train = torch.utils.data.Subset(train_set, order[n_val:].tolist())
    return train, prepare(val_x, config), prepare(examples(load_dataset(config, "test"), num_workers), config)


def resolve_condition(config: Config, dataset: data.Dataset) -> Config:
    """``config`` with ``condition_on`` set to the dataset's first label for a conditional model.

    Raises:
        ValueError: a conditional model on a dataset without labels, or an unknown label name.
    """
    if not config.model.spec.conditional:
        return config
    if not dataset.labels:
        raise ValueError(f"--model {config.model.name} needs labelled data; dataset {dataset.name!r} has no labels "
                         "(for --data array pass --label-column)")
    name = config.data.condition_on or next(iter(dataset.labels))
    if name not in dataset.labels:
        raise ValueError(f"--condition-on {name!r}: dataset {dataset.name!r} has the labels {', '.join(dataset.labels)}")
    return config.replace(condition_on=name)


def class_count(labels: torch.Tensor, name: str | None = None) -> int:
    """K, the number of classes of a conditional model trained on ``labels`` ``(N,)``: class
    indices 0..K-1, so K = max + 1.

    K may not exceed the number of examples given: more classes than examples means most
    classes have none, i.e. the labels are ids or codes (e.g. 0 and 1e9), not class indices, and
    the one-hot condition would be K wide.

    Raises:
        ValueError: negative labels, fewer than 2 classes, or K > N (the message says how to recode).
    """
    what = f"label {name!r}" if name else "the labels"
    if not len(labels):
        raise ValueError(f"a conditional model needs labelled examples; {what} is empty")
    low, high = int(labels.min()), int(labels.max())
    recode = ("recode them as class indices 0..K-1 (e.g. numpy.unique(y, return_inverse=True)[1]) or store them "
              "as text, which vaekit recodes to 0..K-1")
    if low < 0:
        raise ValueError(f"{what} of a conditional model must be class indices >= 0, got {low}; {recode}")
    if high + 1 > len(labels):
        raise ValueError(f"{what} of a conditional model run from {low} to {high} ({len(torch.unique(labels))} distinct "
                         f"values in {len(labels)} examples): {high + 1} classes, more than there are examples; {recode}")
    if high < 1:
        raise ValueError(f"{what} holds one class ({high}); a conditional model needs at least 2 classes")
    return high + 1


def condition_labels(config: Config, dataset: data.Dataset) -> torch.Tensor | None:
    """The class indices ``(N,)`` a conditional model is given for ``dataset``; None for other models."""
    if not config.model.spec.conditional:
        return None
    return dataset.labels[resolve_condition(config, dataset).data.condition_on]


def initialise(model, init) -> None:
    """Load the weights of the run folder ``init`` into ``model`` (``--init RUN``, e.g. AVAE-SS).

    Raises:
        FileNotFoundError: ``init`` has no model.safetensors.
        ValueError: its weights do not fit this model's architecture (the message names them).
    """
    io.load_weights(model, Path(init) / io.WEIGHTS)
