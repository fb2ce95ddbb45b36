"""The comparison report of a sweep: per arm and metric the mean, standard deviation and a 95 % interval.

The interval is Student's t interval for the mean over seeds, ``scipy.stats.t.interval(0.95,
n − 1, loc=mean, scale=s/√n)`` with s the sample standard deviation (ddof 1): it assumes the
per-seed values are independent draws from a normal distribution, which with 3–5 seeds is an
assumption, not a check. With one seed there is no interval (NaN).
"""

from __future__ import annotations

import math
from pathlib import Path

from ... import io

REPORT_JSON, REPORT_HTML, FIGURE = "sweep-report.json", "sweep-report.html", "sweep-per-seed.png"
INTERVAL = (
    "Student t 95 % interval for the mean over seeds: scipy.stats.t.interval(0.95, n-1, mean, s/sqrt(n)), s with ddof=1"
)


def summarize(values) -> dict:
    """``{"n", "mean", "std", "sem", "ci95_low", "ci95_high", "values"}`` of per-seed ``values``.

    ``std`` is the sample standard deviation (ddof 1); the interval is Student's t (see module doc).
    NaN for quantities undefined at n = 1.

    Raises:
        ValueError: no values.
    """
    import numpy as np
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    n, mean = int(x.size), float(x.mean())
    if n < 2:
        return {
            "n": n,
            "mean": mean,
            "std": math.nan,
            "sem": math.nan,
            "ci95_low": math.nan,
            "ci95_high": math.nan,
            "values": x.tolist(),
        }
    std = float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem) if sem > 0 else (mean, mean)
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "sem": sem,
        "ci95_low": float(low),
        "ci95_high": float(high),
        "values": x.tolist(),
    }


def collect(storage_url: str, study_name: str) -> dict:
    """Per arm the per-seed metrics of the finished trials: ``{arm: {seed: {metric: value}}}``,
    plus the numbers of trials per state, ``failures`` (``[{"point", "error"}]``: the grid points
    without a finished trial whose last try raised, and failed search trials) and ``unfinished``
    (the keys of all grid points without a finished trial: failed, or never run)."""
    import optuna
    from optuna.trial import TrialState

    from .spec import SweepSpec
    from .storage import hide_password, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    except KeyError:
        raise ValueError(
            f"no sweep study {study_name!r} in {hide_password(storage_url)}; run the sweep first, "
            "or pass its --study-name / --storage"
        ) from None
    spec = SweepSpec(**study.user_attrs["spec"])
    arm_of = {p.key: (p.arm, p.seed) for p in spec.points()}
    arms, errors, states, finished, grid = {}, {}, {}, set(), False
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
        grid = grid or t.user_attrs.get("mode") == "grid"
        if t.state == TrialState.FAIL and "error" in t.user_attrs:
            errors[t.user_attrs.get("point", t.number)] = t.user_attrs["error"]  # the last try's error
        if t.state != TrialState.COMPLETE:
            continue
        finished.add(t.user_attrs.get("point", t.number))
        if "point" in t.user_attrs:
            arm, seed = arm_of[t.user_attrs["point"]]
            arms.setdefault(arm, {})[seed] = t.user_attrs["metrics"]
        else:  # search trial: metrics per seed
            arms[t.user_attrs["arm"]] = {int(s): m for s, m in t.user_attrs["metrics"].items()}
    order = list(spec.arms) + sorted(a for a in arms if a not in spec.arms)
    failures = [{"point": p, "error": e} for p, e in errors.items() if p not in finished]
    unfinished = [k for k in arm_of if k not in finished] if grid else []
    return {
        "spec": spec.to_dict(),
        "arms": {a: arms[a] for a in order if a in arms},
        "failures": failures,
        "unfinished": unfinished,
        "states": states,
        "best": _best(study),
    }


def _best(study):
    try:
        best = study.best_trial
    except ValueError:
        return None
    return {"number": best.number, "value": best.value, "arm": best.user_attrs.get("arm", best.user_attrs.get("point"))}


def aggregate(arms: dict) -> dict:
    """``{arm: {metric: summarize(values over seeds)}}`` for every metric that all seeds of the arm have."""
    out = {}
    for arm, seeds in arms.items():
        metrics = set.intersection(*(set(m) for m in seeds.values())) if seeds else set()
        out[arm] = {k: summarize([seeds[s][k] for s in sorted(seeds)]) for k in sorted(metrics)}
    return out


def default_figure_metrics(aggregated: dict, limit: int = 6) -> list[str]:
    """Metrics shown in the figure: headline ones that exist (ELBO, log-likelihood, active units,
    probe accuracies), at most ``limit``."""
    keys = list(dict.fromkeys(k for stats in aggregated.values() for k in stats))
    preferred = [k for k in keys if k.endswith((".clean", ".pgd.0.1")) and ".probe." in f".{k}"]
    preferred += [
        k for k in ("test.elbo", "test.log_likelihood", "test.active_units", "test.mse_per_pixel") if k in keys
    ]
    return list(dict.fromkeys(preferred))[:limit] or keys[:limit]


def per_seed_figure(aggregated: dict, metrics: list[str], path, xlim=None) -> Path:
    """One panel per metric: every seed's value as a dot per arm, the mean and its 95 % t interval as
    a bar (``xlim``: a common x range, e.g. (0, 1) for accuracies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(metrics))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    arms = list(aggregated)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.5 + 0.45 * max(4, len(arms)) * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for i, arm in enumerate(arms):
            s = aggregated[arm].get(metric)
            if s is None:
                continue
            ax.scatter(s["values"], [i] * s["n"], s=18, color="tab:blue", alpha=0.7, zorder=3)
            if s["n"] > 1:
                ax.errorbar(
                    s["mean"],
                    i,
                    xerr=[[s["mean"] - s["ci95_low"]], [s["ci95_high"] - s["mean"]]],
                    fmt="|",
                    color="black",
                    capsize=4,
                    zorder=2,
                )
            else:
                ax.plot([s["mean"]], [i], "|", color="black")
        ax.set_yticks(range(len(arms)), arms if ax in axes[:, 0] else [""] * len(arms), fontsize=8)
        ax.set_title(metric, fontsize=9)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("per-seed values (dots), mean and 95 % t interval (bars)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out_dir,
    storage_url: str | None = None,
    study_name: str | None = None,
    metric: str | None = None,
    figure_metrics=None,
) -> dict:
    """Write ``sweep-report.json``, ``sweep-report.html`` and ``sweep-per-seed.png`` into ``out_dir``.

    Returns:
        ``{"interval", "arms" (per-seed metrics), "aggregate" (per arm and metric: n, mean, std,
        sem, ci95_low, ci95_high, values), "failures", "unfinished", "states", "best"}`` (see
        :func:`collect`).
    """
    from ...reporting.report import _render, image_uri
    from .storage import default_storage, storage_errors

    out = Path(out_dir)
    name = study_name or out.resolve().name
    with storage_errors(storage_url or default_storage(out)):
        data = collect(storage_url or default_storage(out), name)
    aggregated = aggregate(data["arms"])
    report = {"study": name, "interval": INTERVAL, **data, "aggregate": aggregated, "metric": metric}
    io.write_json(out / REPORT_JSON, report)
    shown = list(figure_metrics or default_figure_metrics(aggregated))
    figure = per_seed_figure(aggregated, shown, out / FIGURE) if aggregated else None
    keys = list(dict.fromkeys(k for stats in aggregated.values() for k in stats))
    rows = [{"metric": k, "cells": [_cell(aggregated[a].get(k)) for a in aggregated]} for k in keys]
    html = _render(
        "sweep.html.j2",
        report=report,
        arms=list(aggregated),
        rows=rows,
        figure=image_uri(figure) if figure else None,
        shown=shown,
    )
    io.atomic_write(out / REPORT_HTML, html)
    return report


def _cell(s) -> str:
    if s is None:
        return "–"
    if s["n"] < 2:
        return f"{s['mean']:.4g} (n=1)"
    return f"{s['mean']:.4g} ± {s['std']:.2g} [{s['ci95_low']:.4g}, {s['ci95_high']:.4g}] (n={s['n']})"
