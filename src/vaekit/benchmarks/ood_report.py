"""The report of ``vaekit benchmark ood``: metrics, the mean and 95 % interval over seeds, the
markdown tables (AUROC, AUPRC, FPR95; the typicality test at its bootstrap threshold) and the
score histograms. ``args`` is the benchmark's :class:`vaekit.benchmarks.ood.Args`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import io


def metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC and FPR95 with OOD as the positive class and minus the score as the statistic."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    s = -np.r_[in_scores, out_scores].astype(np.float64)
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "auprc": float(average_precision_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


def summary(rows: list[dict]) -> dict:
    """(in, out, method) -> {metric: (mean, 95 % half-width, n)} over seeds (Student t, n − 1 dof)."""
    from scipy import stats

    groups: dict = {}
    for r in rows:
        groups.setdefault((r["in"], r["out"], r["method"]), []).append(r)
    out = {}
    for key, group in groups.items():
        out[key] = {}
        for metric in ("auroc", "auprc", "fpr95"):
            v = np.array([g[metric] for g in group])
            half = (
                float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
                if len(v) > 1
                else float("nan")
            )
            out[key][metric] = (float(v.mean()), half, len(v))
    return out


def markdown(results: dict, metric: str = "auroc") -> str:
    """One table per in-distribution set: methods × OOD sets, ``metric`` mean ± 95 % half-width."""
    table = summary(results["rows"])
    lines = []
    for name in dict.fromkeys(r["in"] for r in results["rows"]):
        outs = list(dict.fromkeys(r["out"] for r in results["rows"] if r["in"] == name))
        methods = list(dict.fromkeys(r["method"] for r in results["rows"] if r["in"] == name))
        n = table[(name, outs[0], methods[0])][metric][2]
        lines += [
            f"**in: {name}** — {metric.upper()} (OOD = positive class), mean ± 95 % t-interval over {n} seeds",
            "",
            "| score | " + " | ".join(outs) + " |",
            "|---|" + "---|" * len(outs),
        ]
        for method in methods:
            cells = []
            for out in outs:
                if (name, out, method) not in table:
                    cells.append("—")
                    continue
                mean, half, _ = table[(name, out, method)][metric]
                cells.append(f"{mean:.3f} ± {half:.3f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def typicality_markdown(results: dict) -> str:
    """The typicality test at its bootstrap threshold ε (α = ``typicality_alpha``): per M, mean ε and the mean
    fraction of M-batches of each test set rejected (in: false alarms; others: detections), over seeds."""
    tests = results.get("typicality_tests") or []
    lines = []
    for name in dict.fromkeys(t["in"] for t in tests):
        group = [t for t in tests if t["in"] == name]
        sets = list(group[0]["rejected"])
        alpha = results.get("settings", {}).get("typicality_alpha", 0.05)
        lines += [
            f"**in: {name}** — typicality test at the bootstrap threshold (α = {alpha:g}): fraction of "
            f"M-batches rejected, mean over {len({t['seed'] for t in group})} seeds",
            "",
            "| M | ε (nats) | " + " | ".join(sets) + " |",
            "|---|---|" + "---|" * len(sets),
        ]
        for m in sorted({t["M"] for t in group}):
            rows = [t for t in group if t["M"] == m]
            cells = [f"{np.mean([r['rejected'][k] for r in rows]):.3f}" for k in sets]
            lines.append(f"| {m} | {np.mean([r['epsilon'] for r in rows]):.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def best_method(results: dict, name: str) -> str:
    """The method with the highest AUROC averaged over the OOD sets of in-distribution ``name``."""
    table = summary(results["rows"])
    means: dict[str, list[float]] = {}
    for (in_name, _, method), values in table.items():
        if in_name == name:
            means.setdefault(method, []).append(values["auroc"][0])
    return max(means, key=lambda m: np.mean(means[m]))


def write_report(results: dict, args) -> None:
    """results.json, results.md (AUROC, AUPRC, FPR95 tables) and histograms.png in ``args.output_dir``."""
    folder = Path(args.output_dir)
    io.write_json(folder / "results.json", results)
    header = (
        f"Command: `{results['command']}` ({results['date']}; {results['machine']}; "
        f"{results['time_s']:.0f} s this call, {results.get('units_time_s', 0):.0f} s of computed units)\n\n"
    )
    io.atomic_write(
        folder / "results.md",
        header
        + "\n".join(markdown(results, m) for m in ("auroc", "auprc", "fpr95"))
        + "\n"
        + typicality_markdown(results),
    )
    histograms(results, args, folder / "histograms.png")


def histograms(results: dict, args, path: Path) -> Path:
    """Score histograms, in-distribution test vs each OOD set, of the raw log-likelihood and the best
    score (highest mean AUROC) of the first in-distribution set and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, seed = results["rows"][0]["in"], results["rows"][0]["seed"]  # the first unit computed (or collected)
    with np.load(Path(args.output_dir) / "scores" / f"{name}-seed{seed}.npz") as f:
        scores = {key: f[key] for key in f.files if not key.startswith("_")}
    best = best_method(results, name)
    outs = [k.split("|")[1] for k in scores if k.startswith("log_likelihood|") and not k.endswith("|in")]
    fig, axes = plt.subplots(2, len(outs), figsize=(3.2 * len(outs), 5.6), squeeze=False)
    for row, method in enumerate(("log_likelihood", best)):
        for col, out in enumerate(outs):
            ax = axes[row, col]
            if f"{method}|{out}" not in scores:
                ax.set_axis_off()
                continue
            a, b = scores[f"{method}|in"], scores[f"{method}|{out}"]
            lo, hi = np.percentile(np.r_[a, b], [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
            ax.hist(np.clip(a, lo, hi), bins, alpha=0.6, label=f"in: {name}", density=True)
            ax.hist(np.clip(b, lo, hi), bins, alpha=0.6, label=f"out: {out}", density=True)
            auroc = metrics(a, b)["auroc"]
            ax.set_title(f"{method}\nvs {out}: AUROC {auroc:.3f}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper right")  # "best" warns when placing it is slow (a loaded machine)
    fig.suptitle(f"score histograms (seed {seed}; higher = more in-distribution)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
