"""The anomaly benchmark's report, rebuilt from the finished units in ``OUTPUT/parts/``.

Per data set and method: AUROC per task (mean over seeds), the mean over tasks with a 95 %
Student-t interval over seeds (each seed's mean over tasks is one observation; only seeds that
finished every task count), mean average precision, the conformal threshold's false-alarm rate
on the normal test rows (nominal 0.05), and the CPU time.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

#: False-positive rates at which every ROC curve is sampled (for the mean curves of roc.png).
FPR_GRID = np.linspace(0.0, 1.0, 201)

#: Published one-class Fashion-MNIST AUROC (%) per normal class, for the table beside ours.
#: Golan & El-Yaniv 2018, "Deep anomaly detection using geometric transformations", NeurIPS, table 1
#: (their protocol: all 6,000 training images of the normal class; the official test split; one run
#: per class for the baselines, the mean of 5 runs for theirs). Filled only with numbers read from the paper.
PUBLISHED: dict[str, dict[str, list[float]]] = {}


def t_interval(values: list[float]) -> float | None:
    """Half-width of the 95 % Student-t interval of the mean of ``values`` (None for fewer than 2)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def aggregate(parts: list[dict]) -> dict:
    """{dataset: {method: summary}} from unit records; see the module docstring for the fields."""
    grouped: dict = {}
    for part in parts:
        for method, m in part["methods"].items():
            entry = grouped.setdefault(part["dataset"], {}).setdefault(method, {})
            entry.setdefault(part["task"], {})[part["seed"]] = m
    cpu: dict = {}
    for part in parts:
        cpu[part["dataset"]] = cpu.get(part["dataset"], 0.0) + part["cpu_s"]
    results: dict = {}
    for dataset, methods in grouped.items():
        tasks = sorted({t for m in methods.values() for t in m}, key=lambda t: (len(t), t))
        for method, by_task in methods.items():
            seeds = sorted({s for runs in by_task.values() for s in runs})
            complete = [s for s in seeds if all(s in by_task.get(t, {}) for t in tasks)]
            seed_means = [float(np.mean([by_task[t][s]["auroc"] for t in tasks])) for s in complete]
            everything = [r for runs in by_task.values() for r in runs.values()]
            fprs = [r["test_fpr"] for r in everything if "test_fpr" in r]
            results.setdefault(dataset, {})[method] = {
                "tasks": {
                    t: {
                        "auroc": float(np.mean([r["auroc"] for r in by_task[t].values()])),
                        "auroc_seeds": [by_task[t][s]["auroc"] for s in sorted(by_task[t])],
                    }
                    for t in tasks
                    if t in by_task
                },
                "seeds": complete,
                "seed_mean_auroc": seed_means,
                "mean_auroc": float(np.mean(seed_means)) if seed_means else None,
                "ci95": t_interval(seed_means),
                "mean_ap": float(np.mean([r["ap"] for r in everything])),
                "test_fpr": float(np.mean(fprs)) if fprs else None,
                "mean_tpr": np.mean([r["tpr"] for r in everything], 0),
            }
        results[dataset]["_cpu_s"] = cpu[dataset]
    return results


def _fmt_mean(entry: dict, best: float) -> str:
    if entry["mean_auroc"] is None:
        return "(incomplete)"
    text = f"{entry['mean_auroc']:.3f}" + (f" ± {entry['ci95']:.3f}" if entry["ci95"] is not None else "")
    return f"**{text}**" if entry["mean_auroc"] == best else text


def markdown(results: dict) -> str:
    """One table per data set (AUROC per task, mean ± 95 % interval, AP, test FPR), and the published table."""
    lines = []
    kinds = {
        "digits": "anomaly class",
        "digits-flat": "anomaly class",
        "breast-cancer": "anomaly label",
        "fashion-mnist": "normal class",
    }
    for dataset, methods in results.items():
        methods = {m: e for m, e in methods.items() if not m.startswith("_")}
        tasks = list(next(iter(methods.values()))["tasks"])
        best = max((e["mean_auroc"] for e in methods.values() if e["mean_auroc"] is not None), default=None)
        lines += [
            f"**{dataset}** (AUROC per {kinds.get(dataset, 'task')}, mean over seeds; mean over tasks "
            f"± 95 % t-interval over seeds; FPR: the conformal threshold's false-alarm rate on the normal "
            f"test rows at nominal 0.05; {methods_cpu(results, dataset):.0f} CPU s)",
            "",
            "| method | " + " | ".join(tasks) + " | mean AUROC | mean AP | FPR | seeds |",
            "|---|" + "---|" * (len(tasks) + 4),
        ]
        for method, entry in methods.items():
            cells = " | ".join(f"{entry['tasks'][t]['auroc']:.3f}" if t in entry["tasks"] else "–" for t in tasks)
            fpr = f"{entry['test_fpr']:.3f}" if entry["test_fpr"] is not None else "–"
            lines.append(
                f"| {method} | {cells} | {_fmt_mean(entry, best)} | {entry['mean_ap']:.3f} | {fpr} | "
                f"{len(entry['seeds'])} |"
            )
        lines.append("")
        for name, row in PUBLISHED.get(dataset, {}).items():
            if lines[-1] == "":
                lines += [f"Published ({dataset}, AUROC %, Golan & El-Yaniv 2018, table 1): ", ""]
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + f" | {np.mean(row):.1f} |")
    return "\n".join(lines)


def summary(results: dict) -> str:
    """One row per method, one column per data set: mean AUROC ± 95 % interval (the README table), then the
    conformal threshold's false-alarm rates on the normal test rows (nominal 0.05)."""
    datasets = list(results)
    methods = list(dict.fromkeys(m for d in datasets for m in results[d] if not m.startswith("_")))
    best = {
        d: max(
            (e["mean_auroc"] for m, e in results[d].items() if not m.startswith("_") and e["mean_auroc"] is not None),
            default=None,
        )
        for d in datasets
    }
    lines = [
        "| method | " + " | ".join(f"{d} AUROC" for d in datasets) + f" | FPR ({' / '.join(datasets)}) |",
        "|---|" + "---|" * (len(datasets) + 1),
    ]
    for method in methods:
        cells, fprs = [], []
        for d in datasets:
            entry = results[d].get(method)
            cells.append(_fmt_mean(entry, best[d]) if entry else "–")
            fprs.append(f"{entry['test_fpr']:.3f}" if entry and entry["test_fpr"] is not None else "–")
        shown = " / ".join(fprs) if any(f != "–" for f in fprs) else "–"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {shown} |")
    return "\n".join(lines)


#: Seed 004's claim, flows against VAE scores: (flow, VAE score) pairs whose per-seed difference is reported.
CLAIM_PAIRS = [
    ("flow: MAF log-density", "vae: reconstruction_probability"),
    ("flow: MAF log-density", "vae: log_likelihood"),
    ("flow: NSF log-density", "vae: reconstruction_probability"),
]


def paired_differences(results: dict) -> str:
    """Mean AUROC difference (flow − VAE) over the seeds both finished, ± 95 % t-interval of the per-seed
    differences (paired by seed: same splits, same seed), one line per data set and pair."""
    lines = []
    for dataset, methods in results.items():
        for flow, vae in CLAIM_PAIRS:
            a, b = methods.get(flow), methods.get(vae)
            if not a or not b:
                continue
            common = sorted(set(a["seeds"]) & set(b["seeds"]))
            diffs = [
                a["seed_mean_auroc"][a["seeds"].index(s)] - b["seed_mean_auroc"][b["seeds"].index(s)] for s in common
            ]
            if diffs:
                ci = t_interval(diffs)
                lines.append(
                    f"- {dataset}: {flow} − {vae}: {np.mean(diffs):+.3f}"
                    + (f" ± {ci:.3f}" if ci is not None else "")
                    + f" ({len(diffs)} seeds)"
                )
    return "\n".join(lines)


def methods_cpu(results: dict, dataset: str) -> float:
    """CPU seconds the finished units of ``dataset`` took, summed (0 when none were recorded)."""
    return results[dataset].get("_cpu_s", 0.0)


def _jsonable(results: dict) -> dict:
    return {
        d: {
            m: ({k: v for k, v in e.items() if k != "mean_tpr"} if isinstance(e, dict) else e)
            for m, e in methods.items()
        }
        for d, methods in results.items()
    }


def write_report(parts: list[dict], wanted: int, folder: Path, context: dict) -> tuple[list[Path], str]:
    """Write anomaly.md, anomaly.json and roc.png to ``folder`` from the finished unit records ``parts``
    (``wanted``: how many units were asked for; ``context``: command, settings and seeds for the JSON)."""
    from ..io import atomic_write, write_json
    from ..reporting import plots

    if not parts:
        raise ValueError(f"no finished units in {folder / 'parts'} for these arguments; run without --report-only")
    results = aggregate(parts)
    cpu = sum(p["cpu_s"] for p in parts)
    context = {
        **context,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {platform.system()}, torch {torch.__version__}, 1 torch thread per process",
        "units_finished": len(parts),
        "units": wanted,
        "cpu_s": round(cpu, 1),
        "wall_s_units": round(sum(p["wall_s"] for p in parts), 1),
    }
    write_json(folder / "anomaly.json", {**context, "results": _jsonable(results)})
    header = (
        f"Command: `{context['command']}` ({context['date']}; {context['machine']}); {len(parts)} of {wanted} "
        f"units finished; {cpu:.0f} CPU s in all (= {cpu / 2 / 60:.0f} min on 2 cores)\n\n"
    )
    text = (
        header
        + "All data sets (mean AUROC over tasks ± 95 % t-interval over seeds):\n\n"
        + summary(results)
        + "\n\nFlows against VAE scores, paired by seed (mean AUROC difference ± 95 % t-interval):\n\n"
        + paired_differences(results)
        + "\n\n"
        + markdown(results)
    )
    atomic_write(folder / "anomaly.md", text + "\n")
    panels = {
        f"{dataset} (mean over tasks, seeds)": {
            m: (FPR_GRID, e["mean_tpr"]) for m, e in methods.items() if not m.startswith("_")
        }
        for dataset, methods in results.items()
    }
    plots.roc_curves(panels, folder / "roc.png")
    return [folder / "anomaly.md", folder / "anomaly.json", folder / "roc.png"], text
