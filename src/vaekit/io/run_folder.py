"""Run folders: ``runs/<name>/`` holds ``config.json``, ``model.safetensors``,
``checkpoint/last.safetensors``, ``metrics.jsonl``, ``summary.json``, ``report.html`` and PNG figures.

Names, creation (one exclusive mkdir), the per-folder lock, and the cleanup of a run that never
finished an epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..data import Dataset, splits
from ..data.scaling import Standardizer
from ..runtime import distributed, files
from ..runtime.files import read_json_lines
from . import checks as runcheck
from .model_files import CONFIG, WEIGHTS, load, load_config, model_record, save_weights

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
        raise ValueError(
            f"--name {name!r} must name one folder inside --runs-dir (no '/', not '.' or '..', "
            "not absolute); pass a plain name such as --name my-run, and --runs-dir for where it goes"
        )
    return Path(runs_dir) / name


def create_run_dir(runs_dir, name: str | None, config: Config, overwrite: bool = False) -> Path:
    """Create the folder of a new run in one atomic step (an exclusive mkdir), so that of two runs
    started with the same name at once exactly one gets it (:class:`RunFolder` does this and holds
    the folder for the run; this function only makes it).

    With ``overwrite`` an existing folder is replaced only when it is a run (it holds
    ``config.json``) or empty, and no live process holds it (:func:`hold_run`).

    Raises:
        ValueError: a bad ``name`` (:func:`run_path`); ``overwrite`` of something that is not a run folder.
        FileExistsError: the folder exists and ``overwrite`` is not set, or a live process holds it.
    """
    run_dir = run_path(runs_dir, name, config)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with hold_run(run_dir):
        _make(run_dir, overwrite)
    return run_dir


def _make(run_dir: Path, overwrite: bool) -> None:
    """The exclusive mkdir of a new run (its lock held by the caller)."""
    if overwrite and (run_dir.exists() or run_dir.is_symlink()):
        _remove_run(run_dir)
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise FileExistsError(
            f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, "
            "--overwrite to replace it, or --name for a new one"
        ) from None


def _remove_run(run_dir: Path) -> None:
    """Delete ``run_dir`` for ``--overwrite``: only a real folder that is a run or empty."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        kind = "a link" if run_dir.is_symlink() else "a file"
        raise ValueError(
            f"--overwrite replaces only run folders, and {run_dir} is {kind}; "
            "choose another --name (or move it away yourself)"
        )
    if not (run_dir / CONFIG).is_file() and any(run_dir.iterdir()):
        raise ValueError(
            f"--overwrite replaces only run folders, and {run_dir} is not one (it has no {CONFIG}); "
            "choose another --name (or move it away yourself)"
        )
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
                f"wait for it to end or stop it (kill {pid}), or pass --name for a new run"
            ) from None
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
    the folder was removed. (:class:`RunFolder` calls it when a new run fails.)"""
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


def resumed_config(saved: Config, given: Config | None, epochs: int | None = None) -> Config:
    """The config of a resumed run: the ``saved`` one, trained to ``epochs`` (default: ``given``'s
    epochs when given, else the saved epochs).

    Raises:
        ValueError: ``given`` differs from the saved config in more than its epochs ("auto"
            settings are saved resolved, so "auto" matches any value).
    """
    if given is not None:
        old, new = saved.to_flat(), given.to_flat()
        changed = [k for k, v in new.items() if k != "epochs" and v != "auto" and old.get(k) != v]
        if changed:
            raise ValueError(
                f"a resumed run keeps its saved config; {', '.join(changed)} differ (only epochs may change, "
                "to extend the run)"
            )
        epochs = given.train.epochs if epochs is None else epochs
    return saved if epochs is None else saved.replace(epochs=epochs)


def load_run(run_dir, map_location="cpu") -> tuple[Any, Config, list[dict]]:
    """A finished run as its evaluations take it: ``(model, config, history)``: the trained model
    (:func:`~vaekit.io.model_files.load`, eval mode), the run's whole :class:`~vaekit.config.Config`
    and its per-epoch metrics (``metrics.jsonl``; empty when the folder has none).

    Raises:
        FileNotFoundError, ValueError: as :func:`~vaekit.io.model_files.load`.
    """
    history = Path(run_dir) / METRICS
    return (load(run_dir, map_location), load_config(run_dir), read_json_lines(history) if history.is_file() else [])


def load_scaler(run_dir) -> Standardizer | None:
    """The standardiser stored in ``run_dir/scaler.json``, or None if the run has none (checked:
    :func:`vaekit.io.checks.load_scaler`)."""
    return runcheck.load_scaler(run_dir)


def load_run_split(run_dir, config: Config, split: str) -> Dataset:
    """A split of a run's dataset as the model saw it in training: standardised with the run's scaler.
    Its data file is found and checked against the run's record first (:mod:`vaekit.io.checks`)."""
    config = runcheck.checked_data(run_dir, config)
    return splits.standardized(splits.load_dataset(config, split), load_scaler(run_dir))


class RunFolder:
    """The one owner of a run folder for the length of a run: a context manager.

    Entering it holds the folder's lock (:func:`hold_run`, once, for the whole run) and either
    creates the folder (one exclusive mkdir, :func:`create_run_dir`'s rules; ``overwrite``
    replaces an earlier run) or, with ``resume``, checks that it is a run, removes the temporary
    files an interrupted write left (:func:`clean_stale_files`) and reads its config
    (:attr:`config`; ``epochs`` extends it). The run's files are written through it, each once per
    run: :meth:`write_config` (``config.json``, ``scaler.json``), :meth:`write_metrics`
    (``metrics.jsonl``, after every epoch), :meth:`write_summary` (``model.safetensors`` and
    ``summary.json``). Leaving it releases the lock; a new run that raised before its first
    checkpoint is removed (no epoch finished: nothing to resume), a later failure keeps the folder
    for ``--resume``.

    Under torchrun rank 0 alone locks, creates and writes; every rank gets rank 0's :attr:`path`
    (a default name holds the time) and :attr:`config`, and an error of rank 0 stops them all.

    Args:
        path: the run folder (:meth:`in_runs_dir` builds it from ``--runs-dir`` and ``--name``).
        resume: continue the run in ``path`` (its config.json is used).
        overwrite: replace an existing run folder (not with ``resume``).
        epochs: with ``resume``, the number of epochs to train to (default: the saved config's, or
            ``config``'s when given).
        config: the run's :class:`~vaekit.config.Config`: a new run's, or for ``resume`` the config the
            caller expects (it may differ from the saved one only in its epochs, which extend the run;
            "auto" settings are saved resolved, so "auto" matches any value). :attr:`config` is the
            config the run trains with.

    Raises (on entering):
        FileExistsError: the folder exists (a new run without ``overwrite``), or a live process holds it.
        FileNotFoundError / ValueError: with ``resume``, a folder that is not a run; ``overwrite``
            of something that is not a run folder.
    """

    def __init__(
        self,
        path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        epochs: int | None = None,
        config: Config | None = None,
    ):
        if resume and overwrite:
            raise ValueError("a run folder is either resumed or overwritten, not both")
        if epochs is not None and not resume:
            raise ValueError("epochs= extends a resumed run; a new run takes its epochs from its config")
        self.path, self.resume, self.overwrite, self.epochs = Path(path), resume, overwrite, epochs
        #: the config the caller gave (a resumed run checks it against the saved one on entering)
        self.given = config
        self.config: Config | None = None if resume else config
        self.created = False
        self._held: contextlib.ExitStack | None = None
        self._open = False
        self._writer = files.BackgroundWriter("vaekit-metrics")

    @classmethod
    def in_runs_dir(cls, runs_dir, name: str | None, config: Config, overwrite: bool = False) -> RunFolder:
        """The folder of a new run of ``config`` in ``runs_dir/name`` (default name :func:`default_name`).

        Raises:
            ValueError: a bad ``name`` (:func:`run_path`).
        """
        return cls(run_path(runs_dir, name, config), overwrite=overwrite, config=config)

    @property
    def is_open(self) -> bool:
        """Whether the folder is entered (held, and created or checked)."""
        return self._open

    @property
    def checkpoint(self) -> Path:
        """The training checkpoint of the run (``checkpoint/last.safetensors``)."""
        return self.path / CHECKPOINT

    def has_checkpoint(self) -> bool:
        """Whether an epoch finished (its checkpoint is there to resume from)."""
        return self.checkpoint.exists()

    def __enter__(self) -> RunFolder:
        if self._open:
            raise RuntimeError(f"run folder {self.path} is already entered (one owner, entered once)")
        self.path = Path(distributed.broadcast_text(distributed.on_main(self._claim)))
        if self.resume:
            saved = self.config or load_config(self.path)  # rank 0 read it while claiming the folder
            self.config = resumed_config(saved, self.given, self.epochs)
        self._open = True
        return self

    def use(self, config: Config | None) -> Config:
        """The config this (entered) folder's run trains with, given the caller's ``config``: a new
        run takes ``config``; a resumed run keeps its saved config, checked against ``config``
        (see :func:`resumed_config`).

        Raises:
            ValueError: a new run without a config; a resumed run whose ``config`` differs from the
                saved one in more than its epochs.
        """
        if self.resume:
            self.config = resumed_config(self.config or load_config(self.path), config, self.epochs)
        elif config is not None:
            self.config = config
        if self.config is None:
            raise ValueError(
                f"a new run folder {self.path} needs a config (None resumes a run: "
                f"pass RunFolder({str(self.path)!r}, resume=True))"
            )
        return self.config

    def _claim(self) -> str:
        """Rank 0: hold the folder, then create it or check it (see the class docstring)."""
        held = contextlib.ExitStack()
        try:
            if self.resume:
                self.config = load_config(self.path)  # a folder that is no run is refused before anything is touched
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(hold_run(self.path))
            if self.resume:
                clean_stale_files(self.path)
            else:
                _make(self.path, self.overwrite)
                self.created = True
        except BaseException:
            held.close()
            raise
        self._held = held
        return str(self.path)

    def __exit__(self, kind, error, traceback) -> None:
        self._open = False
        try:
            if kind is None:
                self._writer.close()  # metrics.jsonl on disk (a write error is raised here)
            else:
                with contextlib.suppress(OSError):  # the error in flight is the one to report
                    self._writer.close()
            if kind is not None and self.created:
                discard_unstarted(self.path)
        finally:
            if self._held is not None:
                self._held.close()
                self._held = None

    def write_config(self, model, config: Config, scaler: Standardizer | None = None) -> None:
        """``config.json``: the record that rebuilds ``model`` with the run's whole ``config``
        (:func:`~vaekit.io.model_files.model_record`), ``scaler.json`` when the run standardises its
        features, and ``data.json``: the data file's fingerprint and columns (:func:`vaekit.io.checks.record_data`)."""
        files.write_json(self.path / CONFIG, model_record(model, config))
        if scaler is not None:
            files.write_json(self.path / SCALER, scaler.to_dict())
        runcheck.record_data(self.path, config, scaler is not None)

    def write_metrics(self, history: list[dict]) -> None:
        """``metrics.jsonl``: one JSON line per epoch, the whole history replaced atomically; the
        write (with its fsync) runs in the background (:class:`~vaekit.runtime.files.BackgroundWriter`):
        :meth:`flush` waits for it, and leaving the folder does."""
        # rendered here: JSON encoding holds the GIL, which a background thread would take from training
        self._writer.write(self.path / METRICS, "".join(json.dumps(row) + "\n" for row in history))

    def flush(self) -> None:
        """Wait until the metrics written so far are on disk; raise the error of a write, if any."""
        self._writer.flush()

    def write_summary(self, model, summary: dict) -> None:
        """The trained weights (``model.safetensors``) and ``summary.json`` that describes them."""
        save_weights(model, self.path / WEIGHTS)
        files.write_json(self.path / SUMMARY, summary)
