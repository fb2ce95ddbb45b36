"""Self-contained HTML reports of run folders, rendered from Jinja2 templates.

``report.html`` in a run folder holds the configuration, the final test metrics with their
units, the loss curves, every PNG figure of the folder (embedded as base64, so the file is
readable offline and can be mailed), every further JSON result (evaluations, benchmarks) and the
environment of the training run. :func:`write_comparison` puts several runs side by side.
"""

from __future__ import annotations

import base64
import datetime
import functools
import os
import platform
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..io.checks import DATA_RECORD
from ..run import FinishedRun
from .gallery import CAPTIONS

ENVIRONMENT = "environment.json"
REPORT = "report.html"
#: JSON files of a run folder that the report shows in their own sections.
OWN_JSON = {io.CONFIG, "summary.json", ENVIRONMENT, io.SCALER, DATA_RECORD}  # the run's own records, not results
#: Lists longer than this are shortened in tables.
MAX_LIST = 16


@functools.cache
def _templates():
    """The Jinja2 environment of the report templates (jinja2 is imported on first use)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("vaekit.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def environment(model=None, training_time_s: float | None = None, threads: dict | None = None) -> dict:
    """Versions and machine of a run: vaekit, torch, numpy, Python, platform, device, threads,
    training time (seconds) and the date (UTC). ``threads``: the run's thread choice
    (:meth:`vaekit.runtime.threads.ThreadChoice.to_dict`), recorded as ``threads_source`` and
    ``flops_per_step`` beside ``torch_threads`` (the count the run started with; ``thread_reductions``
    when it ran on fewer later)."""
    from .._version import __version__

    device = str(next(model.parameters()).device) if model is not None else "cpu"
    env = {
        "vaekit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if threads is not None:
        env["torch_threads"] = threads["threads"]
        env["threads_source"], env["flops_per_step"] = threads["source"], threads.get("flops_per_step")
        if threads.get("reductions"):  # [step, threads] where the run's steps slowed down
            env["thread_reductions"] = threads["reductions"]
    if training_time_s is not None:
        env["training_time_s"] = round(float(training_time_s), 3)
    return env


def format_value(value) -> str:
    """A number or list as a short string: 4 significant digits, long lists shortened."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(format_value(v) for v in value[:MAX_LIST])
        return f"[{shown}{', …' if len(value) > MAX_LIST else ''}]"
    return str(value)


def flatten(obj, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as ``(dotted.key, formatted value)`` rows."""
    if isinstance(obj, dict):
        rows = []
        for key, value in obj.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix or "value", format_value(obj))]


def image_uri(path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return io.read_json_lines(path) if path.is_file() else []


def _figures(run_dir: Path) -> list[dict]:
    order = list(CAPTIONS)
    pngs = sorted(run_dir.glob("*.png"), key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
    return [
        {"name": p.name, "caption": CAPTIONS.get(p.name, p.stem.replace("_", " ")), "uri": image_uri(p)} for p in pngs
    ]


def collect(run_dir) -> dict:
    """Everything a report shows about one run folder (see the module docstring), read from its files.

    Raises:
        FileNotFoundError / ValueError: not a run folder (no config.json), or corrupt JSON.
    """
    run_dir = Path(run_dir)
    record = io.load_record(run_dir)
    summary = io.read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    env_path = run_dir / ENVIRONMENT
    env = (
        io.read_json(env_path)
        if env_path.is_file()
        else {**environment(), "note": "recorded when the report was built"}
    )
    return _page(run_dir, io.load_config(run_dir).to_flat(), record, summary, _read_history(run_dir), env)


def _page(run_dir: Path, config: dict, record: dict, summary: dict, history: list[dict], env: dict) -> dict:
    """The report's context of one run: its settings, record, summary, history and environment as
    given, and the files of the folder that are no part of the run itself (figures, other JSON results)."""
    test, units = summary.get("test", {}), summary.get("units", {})
    results = [
        {"name": p.name, "rows": flatten(io.read_json(p))}
        for p in sorted(run_dir.glob("*.json"))
        if p.name not in OWN_JSON
    ]
    return {
        "name": run_dir.resolve().name,
        "path": str(run_dir),
        "config": config,
        "data_shape": record["data_shape"],
        "extra": record.get("extra", {}),
        "metrics": [{"key": k, "value": format_value(v), "unit": units.get(k, "")} for k, v in test.items()],
        "test": test,
        "run_facts": [(k, format_value(v)) for k, v in summary.items() if k not in ("test", "units")],
        "last_epoch": [(k, format_value(v)) for k, v in (history[-1] if history else {}).items()],
        "figures": _figures(run_dir),
        "results": results,
        "environment": env,
    }


def _render(template: str, **context) -> str:
    from .._version import __version__

    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _templates().get_template(template).render(version=__version__, generated=generated, **context)


def write_report(run_dir, output=None) -> Path:
    """Render ``report.html`` of a run folder (or ``output``) from its files and return its path.

    Raises:
        FileNotFoundError / ValueError: ``run_dir`` is not a run folder.
    """
    out = Path(output) if output else Path(run_dir) / REPORT
    io.atomic_write(out, _render("report.html.j2", run=collect(run_dir)))
    return out


def write_run_report(run: FinishedRun, env: dict) -> Path:
    """Render ``report.html`` of a run that has just finished, from what is in memory: its config,
    model record, summary and history (:class:`vaekit.run.FinishedRun`) and ``env``
    (:func:`environment`); the figures and further JSON results are the folder's files. Returns its path."""
    page = _page(
        Path(run.run_dir), run.config.to_flat(), io.model_record(run.model, run.config), run.summary, run.history, env
    )
    out = Path(run.run_dir) / REPORT
    io.atomic_write(out, _render("report.html.j2", run=page))
    return out


def write_comparison(run_dirs, output) -> Path:
    """A page with the test metrics, run facts and differing settings of several runs side by side.

    Raises:
        ValueError: fewer than two runs. FileNotFoundError: a folder that is not a run.
    """
    if len(run_dirs) < 2:
        raise ValueError(f"a comparison needs at least two run folders, got {len(run_dirs)}")
    runs = [collect(d) for d in run_dirs]
    metric_keys = list(dict.fromkeys(k for r in runs for k in r["test"]))
    units = {m["key"]: m["unit"] for r in runs for m in r["metrics"]}
    metrics = [
        {"key": k, "unit": units.get(k, ""), "cells": [format_value(r["test"].get(k, "–")) for r in runs]}
        for k in metric_keys
    ]
    config_keys = list(dict.fromkeys(k for r in runs for k in r["config"]))
    settings = [{"key": k, "cells": [format_value(r["config"].get(k)) for r in runs]} for k in config_keys]
    differing = [s for s in settings if len(set(s["cells"])) > 1]
    facts = list(dict.fromkeys(k for r in runs for k, _ in r["run_facts"]))
    fact_rows = [{"key": k, "cells": [dict(r["run_facts"]).get(k, "–") for r in runs]} for k in facts]
    out = Path(output)
    io.atomic_write(
        out,
        _render(
            "comparison.html.j2", runs=runs, metrics=metrics, differing=differing, settings=settings, facts=fact_rows
        ),
    )
    return out


def default_comparison_path(run_dirs) -> Path:
    """``<parent of the first run>/comparison.html``."""
    return Path(run_dirs[0]).resolve().parent / "comparison.html"


__all__ = ["collect", "environment", "write_comparison", "write_report", "write_run_report"]
