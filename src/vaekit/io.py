"""Saving and loading: safetensors weights + JSON config, written atomically, never pickle.

A saved model is a folder with ``model.safetensors`` and ``config.json``; a run folder is one.
A training checkpoint is one safetensors file holding model, optimizer and RNG tensors, with the
loop's JSON state in the file's metadata, so it is replaced in one atomic rename.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
from pathlib import Path

import torch
from safetensors.torch import save as save_bytes

from .config import FORMAT_VERSION, Config, ModelConfig
from .data import Dataset, splits
from .data.scaling import Standardizer
from .custom_nets import CodeNotTrusted
from .models import build_model
from .runtime import files
from .runtime.files import atomic_write, read_json, read_json_lines, read_safetensors, write_json

__all__ = ["CHECKPOINT", "CONFIG", "FORMAT_VERSION", "SCALER", "WEIGHTS", "atomic_write", "clean_stale_files",
           "create_run_dir", "default_name", "discard_unstarted", "hold_run", "lock_path", "METRICS", "run_path", "SUMMARY",
           "initialise", "load", "load_config", "load_record", "load_run_split",
           "load_scaler", "load_weights", "model_config", "model_record", "read_json", "read_json_lines",
           "read_safetensors", "save", "save_weights", "write_json"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def model_record(model, config: Config | None = None) -> dict:
    """The JSON record that rebuilds ``model``: its config, data shape and format version.

    ``config``: the whole run configuration (a run folder's); by default only the model section.

    Raises:
        ValueError: a model built from custom modules (it has no config to rebuild it from).
    """
    if model.config is None:
        raise ValueError("this model was built from custom modules; save its weights with "
                         "vaekit.io.save_weights and rebuild the modules yourself")
    sections = config.to_dict() if config is not None else {"model": dataclasses.asdict(model.config)}
    return {"format_version": FORMAT_VERSION, "config": sections,
            "data_shape": list(model.data_shape), "extra": model.extra_config()}


def save_weights(model, path) -> None:
    """Atomically write ``model.state_dict()`` to the safetensors file ``path``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files.atomic_write(path, save_bytes(state))


def load_weights(model, path) -> None:
    """Load a safetensors file into ``model`` (strict: every parameter, right shapes).

    Raises:
        FileNotFoundError, ValueError: missing, corrupt or mismatching file.
    """
    tensors, _ = read_safetensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shapes {wrong[:3]}; was it saved from a different config?"
        )
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ValueError(f"{path} holds NaN/Inf values in {len(broken)} tensor(s) ({', '.join(broken[:3])}); "
                         "the file is corrupt or the model diverged")
    model.load_state_dict(tensors)


def save(model, path, config: Config | None = None) -> Path:
    """Save a model built from a config to the folder ``path`` (model.safetensors + config.json).

    ``config``: the run configuration to keep beside the weights (default: the model section only).

    Returns:
        The folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; vaekit.io.save writes a folder (model.safetensors + config.json): "
                         "pass a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    record = model_record(model, config)
    save_weights(model, folder / WEIGHTS)
    write_json(folder / CONFIG, record)
    return folder


def load_record(path) -> dict:
    """The config.json record of a saved model or run folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a run folder or a folder written by vaekit.io.save")
    record = read_json(folder / CONFIG)
    if "config" not in record or "data_shape" not in record:
        raise ValueError(f"{folder / CONFIG} is not a vaekit config (no 'config' or 'data_shape' key)")
    return record


def model_config(record: dict) -> ModelConfig:
    """The :class:`~vaekit.config.ModelConfig` of a config.json record (nested, or flat from vaekit <= 0.1)."""
    values = record["config"]
    if isinstance(values, dict) and isinstance(values.get("model"), dict):
        return ModelConfig.from_dict(values["model"])
    return Config.from_dict(values).model


def load_config(path) -> Config:
    """The run :class:`~vaekit.config.Config` of a run folder (or a folder written by :func:`save`,
    whose train and data settings are the defaults). Old flat config.json files load too.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_record`, or settings that are no longer valid.
    """
    record = load_record(path)
    try:
        config = Config.from_dict(record["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{Path(path) / CONFIG}: {e}") from None
    saved = record["config"].get("train", record["config"])
    if isinstance(saved, dict) and "fused_optimizer" not in saved:
        config = config.replace(fused_optimizer=False)  # a run from before the setting: the foreach Adam step
    return config


def load(path, map_location: str | torch.device = "cpu", trust_code: bool | None = None):
    """Rebuild a saved model from its folder: JSON config -> model -> safetensors weights.

    No code is executed from the files, except that a config naming a custom encoder/decoder by
    import path (:mod:`vaekit.custom_nets`) imports it, which needs ``trust_code=True`` (None: the
    enclosing ``vaekit.custom_nets.trusting()`` block decides; CLI: ``--trust-code``). Returns the
    model in eval mode; ``model.config`` is its :class:`~vaekit.config.ModelConfig` (the run's
    whole config: :func:`load_config`).

    Raises:
        vaekit.custom_nets.CodeNotTrusted: the config names code and trust was not given.
        FileNotFoundError: the folder, its config.json or model.safetensors is missing.
        ValueError: a corrupt or foreign file, or weights that do not fit the config.
    """
    folder = Path(path)
    record = load_record(folder)
    try:
        config = model_config(record)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder / CONFIG}: {e}") from None
    try:
        model = build_model(config, tuple(record["data_shape"]), trust_code=trust_code, **record.get("extra", {}))
    except CodeNotTrusted as e:
        raise CodeNotTrusted(f"{folder / CONFIG}: {e}") from None
    load_weights(model, folder / WEIGHTS)
    return model.to(map_location).eval()


# --- run folders ---------------------------------------------------------------------------------
# ``runs/<name>/`` holds ``config.json``, ``model.safetensors``, ``checkpoint/last.safetensors``,
# ``metrics.jsonl``, ``summary.json``, ``report.html`` and PNG figures.

CHECKPOINT = Path("checkpoint") / "last.safetensors"
#: The feature standardiser of a tabular run (mean and scale as JSON), when it has one.
SCALER = "scaler.json"
#: The per-epoch metrics and the final summary of a run.
METRICS, SUMMARY = "metrics.jsonl", "summary.json"


def default_name(config: Config) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{config.model.name}-{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


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
    if not (run_dir / CONFIG).is_file() and any(run_dir.iterdir()):
        raise ValueError(f"--overwrite replaces only run folders, and {run_dir} is not one (it has no {CONFIG}); "
                         "choose another --name (or move it away yourself)")
    shutil.rmtree(run_dir)


#: Lock files this thread holds: ``_HELD.locks``, path -> [file descriptor, depth] (:func:`hold_run`
#: is re-entrant within a thread; another thread of the process meets the lock like another process).
_HELD = threading.local()


def lock_path(run_dir) -> Path:
    """The lock file of a run folder: ``.<name>.lock`` beside it (it outlives an ``--overwrite``;
    links and ``..`` resolved, so every spelling of one folder has one lock)."""
    run_dir = Path(os.path.realpath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def hold_run(run_dir):
    """Hold ``run_dir`` for this process: an exclusive ``flock`` on :func:`lock_path`, holding the
    process id, released (and the file removed) on exit. The kernel drops the lock of a process
    that dies, so a lock file left by a killed run is ignored. Re-entrant within one thread.
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
    held = _HELD.__dict__.setdefault("locks", {})
    if path in held:
        held[path][1] += 1
        try:
            yield
        finally:
            held[path][1] -= 1
        return
    fd = _acquire(path, run_dir, fcntl)
    held[path] = [fd, 1]
    try:
        yield
    finally:
        del held[path]
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


def discard_unstarted(run_dir) -> bool:
    """Remove the folder of a new run that failed before its first checkpoint (there is nothing to
    resume, so no folder is left behind); a folder holding a checkpoint is kept. Returns whether
    the folder was removed."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not (run_dir / CHECKPOINT).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        return True
    return False


def clean_stale_files(run_dir) -> list[Path]:
    """Remove the temporary files an interrupted atomic write left in ``run_dir`` (``.*.tmp``);
    returns the paths removed."""
    stale = [p for p in Path(run_dir).rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


def initialise(model, init) -> None:
    """Load the weights of the run folder ``init`` into ``model`` (``--init RUN``, e.g. AVAE-SS).

    Raises:
        FileNotFoundError: ``init`` has no model.safetensors.
        ValueError: its weights do not fit this model's architecture (the message names them).
    """
    load_weights(model, Path(init) / WEIGHTS)


def load_scaler(run_dir) -> Standardizer | None:
    """The standardiser stored in ``run_dir/scaler.json``, or None if the run has none."""
    path = Path(run_dir) / SCALER
    return Standardizer.from_dict(read_json(path)) if path.is_file() else None


def load_run_split(run_dir, config: Config, split: str) -> Dataset:
    """A split of a run's dataset as the model saw it in training: standardised with the run's scaler."""
    return splits.standardized(splits.load_dataset(config, split), load_scaler(run_dir))
