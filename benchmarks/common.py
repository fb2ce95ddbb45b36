"""Shared helpers of the benchmark scripts: the machine description and the data they use."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from vaekit.data.splits import load_dataset, prepare


def t_interval(values) -> tuple[float, list[float]]:
    """Mean of ``values`` and its 95 % t interval (the mean twice for one value)."""
    import scipy.stats

    values = list(values)
    mean = statistics.fmean(values)
    half = float(scipy.stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5) if len(values) > 1 else 0.0
    return mean, [mean - half, mean + half]


def mean_interval(values) -> dict:
    """``{"mean", "sd", "ci95", "n", "values"}``: the mean of ``values`` with its 95 % t interval
    (:func:`t_interval`) and standard deviation (NaN for one value)."""
    values = list(values)
    mean, ci = t_interval(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return {"mean": mean, "sd": sd, "ci95": ci, "n": len(values), "values": values}


def machine() -> dict:
    """CPU/GPU model, core count, torch version, threads, the command and the UTC date of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def digits(config, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) digits as the config prepares them, bilinearly resized to ``side`` x ``side``.

    The 8x8 scikit-learn digits resized to 28x28 stand in for MNIST-sized inputs (no download
    is possible offline); binarization follows ``config.binarize`` after resizing.
    """
    xs = [load_dataset(config, split).x for split in ("train", "test")]
    if side != xs[0].shape[-1]:
        xs = [F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1) for x in xs]
    return prepare(xs[0], config, training=True), prepare(xs[1], config)


class Clock:
    """Wall time and this process's CPU time of a block (CPU time is robust to other processes'
    load on a shared machine; with one torch thread and no loader workers it is the work done)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
