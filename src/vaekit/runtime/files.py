"""Files written atomically and read with clear errors: JSON, JSON lines and safetensors (never pickle).

A reader (or a process killed mid-write) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one rename.

    A reader (or a process killed mid-write) sees the old file or the new one, never half of one.

    Raises:
        OSError: the write failed (e.g. ENOSPC, a full disk); the message names ``path``, and the
            old file, if any, is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # e.g. "[Errno 28] No space left on device"
            kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
            raise OSError(e.errno, f"could not write {path}: {e.strerror or e}{kept}") from e
        raise


class BackgroundWriter:
    """:func:`atomic_write` in a background thread, one write in flight at a time: a training run's
    per-epoch files (the checkpoint, metrics.jsonl) are written, fsync included, while the next
    epoch trains (issue 32).

    ``data`` may be a function that returns the bytes (or text): it then runs in the background
    thread too (e.g. serialising a snapshot of tensors). :meth:`write` first waits for the write
    before it (on any usual disk long done by the next epoch) and raises its error (a full disk);
    :meth:`flush` waits for the last one; :meth:`close` flushes and stops the thread.
    """

    def __init__(self, name: str = "vaekit-writer"):
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def write(self, path, data: bytes | str | Callable[[], bytes | str]) -> None:
        """Start an atomic write of ``data`` (or of what ``data()`` returns) to ``path``, after the
        previous write has finished (its error, if any, is raised here and nothing is started)."""
        self.flush()
        self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._pending = self._pool.submit(_write_now, path, data)

    def flush(self) -> None:
        """Wait until the last write is on disk; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """:meth:`flush`, then stop the thread (a later :meth:`write` starts a new one)."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


def _write_now(path, data) -> None:
    atomic_write(path, data() if callable(data) else data)


def save_npy(path, array) -> None:
    """Atomically write ``array`` as a ``.npy`` file (``numpy.save`` into memory, then :func:`atomic_write`)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    atomic_write(path, buffer.getvalue())


def save_txt(path, array, **kwargs) -> None:
    """Atomically write ``array`` as text (``numpy.savetxt``'s ``kwargs``), e.g. a CSV."""
    import io

    import numpy as np

    buffer = io.StringIO()
    np.savetxt(buffer, array, **kwargs)
    atomic_write(path, buffer.getvalue())


def write_json(path, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path) -> dict:
    """Read a JSON file; a missing or corrupt file raises FileNotFoundError / ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the file is corrupt") from None
    except RecursionError:
        raise ValueError(
            f"{path} nests its JSON objects or lists too deeply (thousands of levels): it is not a file "
            "vaekit wrote; restore it from a copy (or write the run again)"
        ) from None


def read_json_lines(path) -> list[dict]:
    """Read a JSON-lines file (one object per line, e.g. metrics.jsonl); blank lines are skipped.

    Raises:
        FileNotFoundError: no such file. ValueError: a line that is not JSON (truncated or
            corrupt), naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; the file is corrupt") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path} line {number} is not valid JSON ({e.msg}): the file is truncated or corrupt; "
                "re-run training with --resume to rewrite it"
            ) from None
    return rows


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (no code is executed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    raw = path.read_bytes()
    try:
        tensors = load_bytes(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid safetensors file (truncated, corrupt or foreign): {e}") from None
    return tensors, metadata
