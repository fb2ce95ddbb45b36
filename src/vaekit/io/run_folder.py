"""Run folders: ``runs/<name>/`` holds ``config.json``, ``model.safetensors``,
``checkpoint/last.safetensors``, ``metrics.jsonl``, ``summary.json``, ``report.html`` and PNG figures.

Names, creation (one exclusive mkdir), the per-folder lock, and the cleanup of a run that never
finished an epoch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

from ..config import Config
from ..data import Dataset, splits
from ..data.scaling import Standardizer
from ..runtime.files import read_json
from .model_files import CONFIG

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


def load_scaler(run_dir) -> Standardizer | None:
    """The standardiser stored in ``run_dir/scaler.json``, or None if the run has none."""
    path = Path(run_dir) / SCALER
    return Standardizer.from_dict(read_json(path)) if path.is_file() else None


def load_run_split(run_dir, config: Config, split: str) -> Dataset:
    """A split of a run's dataset as the model saw it in training: standardised with the run's scaler."""
    return splits.standardized(splits.load_dataset(config, split), load_scaler(run_dir))
