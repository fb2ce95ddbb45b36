"""Progress of long work, shown the same way by every command: a tqdm bar when the stream is a
terminal; otherwise (a log file, CI, nohup) one plain line per step or per ``every`` seconds,
whichever is rarer, and always the first and the last step. ``--quiet`` turns it off
(:func:`silenced`). Lines look like ``train: epoch 3/30 loss 27.52 elbo -27.52 (1.3 s)``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import Any

_silenced = False


@contextmanager
def silenced(quiet: bool = True):
    """No progress output inside the block when ``quiet`` (the commands' ``--quiet``)."""
    global _silenced
    before, _silenced = _silenced, _silenced or quiet
    try:
        yield
    finally:
        _silenced = before


class Reporter:
    """Progress of ``total`` steps called ``unit`` under the name ``desc``; ``update(**values)``
    after each step shows the values (strings or numbers) beside the count.

    Args:
        stream: where to write (default sys.stderr, looked up when the reporter is made).
        every: seconds between plain lines at least (a line per step when steps are slower).
        initial: steps already done (a resumed run).
        enabled: False = silent (as inside :func:`silenced`, and on every rank but 0 under torchrun).
        start: ``time.perf_counter()`` the shown seconds count from (default: now).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "step",
        stream=None,
        every: float = 10.0,
        initial: int = 0,
        enabled: bool = True,
        start: float | None = None,
    ):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.stream = stream or sys.stderr
        self.done = initial
        self.enabled = enabled and not _silenced and int(os.environ.get("RANK", 0)) == 0
        self.start = self.last = time.perf_counter() if start is None else start
        self.printed = False
        self.bar: Any = None  # a tqdm bar, made on the first update on a terminal
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int = 1, force: bool = False, **values) -> None:
        """Count ``n`` more steps; advance the bar or print a line when due (``force``: now)."""
        self.done += n
        if not self.enabled:
            return
        shown = {k: (f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in values.items()}
        if self.terminal:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=self.total,
                    initial=self.done - n,
                    desc=self.desc,
                    unit=self.unit,
                    dynamic_ncols=True,
                    file=self.stream,
                )
            self.bar.update(n)
            if shown:
                self.bar.set_postfix(**shown)
            return
        now = time.perf_counter()
        if force or not self.printed or now - self.last >= self.every or self.done == self.total:
            self.last, self.printed = now, True
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            text = "".join(f" {k} {v}" for k, v in shown.items())
            print(f"{self.desc}: {self.unit} {count}{text} ({now - self.start:.1f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar (plain lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def track(items: Iterable, desc: str, unit: str = "step", total: int | None = None, **kwargs) -> Iterator:
    """Yield ``items`` and report progress after each (a :class:`Reporter`; ``kwargs`` go to it)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    reporter = Reporter(total, desc, unit, **kwargs)
    try:
        for item in items:
            yield item
            reporter.update(1)
    finally:
        reporter.close()


@contextmanager
def module_progress(module, total: int, desc: str, unit: str = "sample", **kwargs):
    """Progress of a long computation measured by the rows ``module`` (e.g. a model's decoder)
    processes: a forward hook counts the leading positions of its first input (all but the last
    axis), reported against ``total`` (the expected count, capped there). The computation itself
    is not changed, so any evaluation shows progress without knowing its internals."""
    reporter = Reporter(total, desc, unit, **kwargs)
    counted = [0]

    def hook(_module, inputs, _output):
        first = inputs[0] if inputs else None
        if first is None or not hasattr(first, "numel") or first.dim() == 0:
            return
        rows = first.numel() // max(1, first.shape[-1])
        step = min(rows, total - counted[0])
        if step > 0:
            counted[0] += step
            reporter.update(step)

    handle = module.register_forward_hook(hook)
    try:
        yield reporter
    finally:
        handle.remove()
        if counted[0] < total:
            reporter.update(total - counted[0], force=True)
        reporter.close()
