"""Does β-VAE's disentanglement advantage appear with more training? VAE (β = 1) and β-VAE (β = 4,
Higgins et al. 2017's dSprites setting) of ``vaekit benchmark disentanglement`` (same conv net, data,
optimiser, metric seed) trained for 24 epochs (the benchmark's budget, 3,120 steps of 64), and
2×, 4×, 8×, 16× that, 3 seeds each; BetaVAE score and MIG per budget with 95 % t intervals, and a
figure of score vs steps.

Every (budget, model, seed) point is a run folder of ``vaekit sweep``'s engine
(:func:`vaekit.benchmarks.sweeps.points.run_point`: trained, resumed from its checkpoint when killed,
reused when finished; evaluation cached) under ``OUT/e<epochs>/runs/<model>-seed<k>``, and
``OUT/sweep-e<epochs>.json`` is the sweep file of each budget (``vaekit sweep --config-file
OUT/sweep-e96.json --out OUT/e96`` runs the same points from scratch). Two things this script adds:

- **Order.** Points run seed-first along the ladder of budgets (seed 0: VAE and β-VAE at 24, 48, 96,
  192, 384 epochs; then seed 1, ...), so the first points are the timing run of every budget and a
  stopped run still holds a complete trajectory per model (``--max-epochs`` stops the ladder,
  ``--seeds`` picks seeds; run it again to continue).
- **Extension.** A longer budget starts from the finished shorter run of the same model and seed
  (the folder is copied and its config's ``epochs`` raised, then the sweep engine resumes it from its
  checkpoint). There is no learning-rate schedule, early stopping or epoch-dependent weight in these
  two models, and a resumed run is bit-identical to an uninterrupted one (``tests/test_disentanglement_budget.py``
  checks both against training from scratch), so the 96-epoch point is the 96-epoch run; the ladder
  costs the longest budget's steps once instead of the sum of all budgets.

    OMP_NUM_THREADS=1 python benchmarks/disentanglement_budget.py [--max-epochs 96] [--seeds 0 1 2] [--collect-only]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from vaekit import io
from vaekit.benchmarks import disentanglement as bench
from vaekit.benchmarks.sweeps.points import POINT_FILE, run_point
from vaekit.benchmarks.sweeps.results import INTERVAL, summarize
from vaekit.benchmarks.sweeps.spec import SweepSpec

LADDER = (24, 48, 96, 192, 384)
MODELS = ("vae", "beta-vae")
SEEDS = (0, 1, 2)
METRICS = (("beta_vae.eval_accuracy", "BetaVAE"), ("mig.mig", "MIG"))
EVALUATE = {"disentanglement": {"seed": 0, "metrics": ["beta_vae", "mig"]}}
#: Locatello et al. 2019's reference protocol (disentanglement_lib): 300,000 steps of batch 64 on 64×64 dSprites.
REFERENCE_STEPS = 300_000
OUTPUT = "benchmarks/results/disentanglement-budget"


def budget_spec(epochs: int, seeds=SEEDS) -> SweepSpec:
    """The sweep of one budget: the benchmark's VAE and β-VAE at ``epochs``, ``seeds``, BetaVAE and MIG."""
    base = bench.spec(models=MODELS, seeds=tuple(seeds))
    # the ladder's runs were trained with the fused Adam step (vaekit's default; the benchmark itself now
    # pins torch's foreach step to match its rows of 2026-12-02): the same update, other float rounding
    return SweepSpec({**base.base, "epochs": int(epochs), "fused_optimizer": True}, dict(base.arms), tuple(seeds), EVALUATE)


def finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file() and (run_dir / io.CHECKPOINT).is_file()


def extend_from(shorter: Path, run_dir: Path, epochs: int) -> None:
    """Make ``run_dir`` the finished run ``shorter`` with its config's epochs raised to ``epochs``:
    the sweep engine then resumes it from the copied checkpoint (the last epoch of ``shorter``)."""
    partial = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(shorter, partial, ignore=shutil.ignore_patterns("summary.json", "sweep-*.json", POINT_FILE, "*.lock"))
    record = json.loads((partial / io.CONFIG).read_text())
    record["config"]["train"]["epochs"] = int(epochs)
    io.write_json(partial / io.CONFIG, record)
    partial.rename(run_dir)


def run(out: Path, ladder, seeds, log=print, spec_of=budget_spec) -> None:
    """Train and evaluate every point, seed-first along ``ladder`` (see the module docstring);
    ``spec_of(epochs, seeds) -> SweepSpec`` gives each budget's sweep."""
    for epochs in ladder:
        io.write_json(out / f"sweep-e{epochs}.json", spec_of(epochs, tuple(seeds)).to_dict())
    for seed in seeds:
        for i, epochs in enumerate(ladder):
            sweep = spec_of(epochs, (seed,))
            for point in sweep.points():
                run_dir = out / f"e{epochs}" / "runs" / point.key
                if not run_dir.exists():
                    shorter = [out / f"e{e}" / "runs" / point.key for e in ladder[:i]]
                    shorter = [p for p in shorter if finished(p)]
                    if shorter:
                        extend_from(shorter[-1], run_dir, epochs)
                start = time.perf_counter()
                metrics = run_point(point, out / f"e{epochs}", sweep.evaluate)
                log(f"e{epochs} {point.key}: BetaVAE {metrics['disentanglement.headline.beta_vae.eval_accuracy']:.3f}, "
                    f"MIG {metrics['disentanglement.headline.mig.mig']:.3f} ({time.perf_counter() - start:.0f} s)")


def collect(out: Path, ladder) -> dict:
    """Per budget and model: every finished seed's steps, BetaVAE, MIG, test ELBO, KL and training
    time, and their summaries over seeds. A seed whose run folder is not on this disk (run folders are
    not committed; seeds may run on different machines) keeps its row of ``out/results.json``."""
    rows: dict = {}
    kept = io.read_json(out / "results.json")["budgets"] if (out / "results.json").is_file() else {}
    for epochs in ladder:
        for model in MODELS:
            per_seed = {}
            for seed in SEEDS:
                run_dir = out / f"e{epochs}" / "runs" / f"{model}-seed{seed}"
                if not (run_dir / POINT_FILE).is_file():
                    old = kept.get(str(epochs), {}).get(model, {}).get("per_seed", {}).get(str(seed))
                    if old is not None:
                        per_seed[seed] = old
                    continue
                result = io.read_json(run_dir / "sweep-disentanglement.json")["result"]
                summary = io.read_json(run_dir / "summary.json")
                history = io.read_json_lines(run_dir / io.METRICS)
                per_seed[seed] = {**{k: result["headline"][k] for k, _ in METRICS}, "steps": history[-1]["step"],
                                  "test_elbo": summary["test"]["elbo"], "kl": result["kl"]["kl"],
                                  "kl_tc": result["kl"]["kl_tc"], "cpu_s": sum(h.get("cpu_time", 0.0) for h in history)}
            if per_seed:
                values = [per_seed[s] for s in sorted(per_seed)]
                rows.setdefault(str(epochs), {})[model] = {
                    "seeds": sorted(per_seed), "per_seed": {str(s): per_seed[s] for s in sorted(per_seed)},
                    "aggregate": {k: summarize([v[k] for v in values]) for k in values[0]}}
    return rows


def reference_check(rows: dict) -> dict:
    """The 24-epoch points against the committed 5-seed benchmark's seeds (same settings): equal?"""
    path = Path(bench.__file__).parents[3] / "benchmarks/results/disentanglement/results.json"
    if not path.is_file() or "24" not in rows:
        return {}
    committed = io.read_json(path)["models"]
    out = {}
    for model, row in rows["24"].items():
        for seed, values in row["per_seed"].items():
            theirs = committed.get(model, {}).get("per_seed", {}).get(seed)
            if theirs:
                out[f"{model}-seed{seed}"] = {k: {"here": values[k], "benchmark": theirs[k]} for k, _ in METRICS}
    return out


def _cell(stats: dict) -> str:
    if stats["n"] < 2:
        return f"{stats['mean']:.3f} (n=1)"
    return f"{stats['mean']:.3f} [{stats['ci95_low']:.3f}, {stats['ci95_high']:.3f}] (n={stats['n']})"


def markdown(results: dict) -> str:
    lines = [f"Command: `{results['command']}`  ", f"Date: {results['date']}; machine: {results['machine']}  ", "",
             "| epochs | steps | × benchmark | model | BetaVAE | MIG | test ELBO | TC (nats) | per-seed BetaVAE | per-seed MIG |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for epochs, models in results["budgets"].items():
        for model, row in models.items():
            agg, per = row["aggregate"], row["per_seed"]
            lines.append(f"| {epochs} | {agg['steps']['mean']:.0f} | {int(epochs) / 24:g} | {model} | "
                         f"{_cell(agg['beta_vae.eval_accuracy'])} | {_cell(agg['mig.mig'])} | "
                         f"{agg['test_elbo']['mean']:.1f} | {agg['kl_tc']['mean']:.2f} | "
                         + ", ".join(f"{per[s]['beta_vae.eval_accuracy']:.3f}" for s in per) + " | "
                         + ", ".join(f"{per[s]['mig.mig']:.3f}" for s in per) + " |")
    check = results.get("reference_check") or {}
    if check:
        lines += ["", "The 24-epoch points beside the same seeds of the committed 5-seed benchmark "
                      "(benchmarks/results/disentanglement, same settings, trained 2026-12-02 with the code of then):", "",
                  "| point | BetaVAE here | BetaVAE benchmark | MIG here | MIG benchmark |", "|---|---|---|---|---|"]
        for point, values in check.items():
            b, m = values["beta_vae.eval_accuracy"], values["mig.mig"]
            lines.append(f"| {point} | {b['here']:.3f} | {b['benchmark']:.3f} | {m['here']:.3f} | {m['benchmark']:.3f} |")
    lines += ["", f"Mean over seeds [{INTERVAL}]. Steps: optimisation steps of batch 64; Locatello et al. 2019's "
                  f"reference protocol trains {REFERENCE_STEPS:,} steps on 64×64 images.",
              "Published BetaVAE score (Higgins et al. 2017, fig. 6): VAE 0.6158, β-VAE 0.9923.",
              "TC: total correlation of the aggregate posterior on 1,000 test images (Chen et al. 2018).", ""]
    return "\n".join(lines)


def figure(results: dict, path: Path) -> Path:
    """BetaVAE and MIG against training steps (log axis): every seed a dot, the mean and its 95 % t
    interval a line with error bars, per model; the published BetaVAE scores as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = {"vae": "tab:blue", "beta-vae": "tab:orange"}
    for ax, (key, label) in zip(axes, METRICS):
        for model in MODELS:
            points = [(row[model]["aggregate"]["steps"]["mean"], row[model]) for row in results["budgets"].values()
                      if model in row]
            if not points:
                continue
            steps = [p for p, _ in points]
            stats = [r["aggregate"][key] for _, r in points]
            for x, s in zip(steps, stats):
                ax.scatter([x] * s["n"], s["values"], s=14, color=colors[model], alpha=0.5)
            low = [s["mean"] - s["ci95_low"] if s["n"] > 1 else 0 for s in stats]
            high = [s["ci95_high"] - s["mean"] if s["n"] > 1 else 0 for s in stats]
            ax.errorbar(steps, [s["mean"] for s in stats], yerr=[low, high], color=colors[model], capsize=3,
                        marker="o", label=f"{model} (β = {'4' if model == 'beta-vae' else '1'})")
        if key.startswith("beta_vae"):
            for model, value in (("vae", 0.6158), ("beta-vae", 0.9923)):
                ax.axhline(value, color=colors[model], linestyle="--", linewidth=0.8)
            ax.text(0.01, 0.97, "dashed: Higgins et al. 2017", transform=ax.transAxes, fontsize=7, va="top")
        ax.set_ylim(bottom=0 if key == "mig.mig" else None)
        ax.set_xscale("log")
        ax.set_xlabel("training steps (batch 64)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    import os
    import platform

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--max-epochs", type=int, default=LADDER[-1], help="stop the ladder at this budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--collect-only", action="store_true", help="write the results of the finished points only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.output)
    ladder = tuple(e for e in LADDER if e <= args.max_epochs)
    if not args.collect_only:
        run(out, ladder, args.seeds)
    budgets = collect(out, LADDER)
    results = {"command": "OMP_NUM_THREADS=1 python benchmarks/disentanglement_budget.py"
                          + (f" --max-epochs {args.max_epochs}" if args.max_epochs != LADDER[-1] else "")
                          + (f" --seeds {' '.join(map(str, args.seeds))}" if tuple(args.seeds) != SEEDS else ""),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other sessions), "
                          f"torch {torch.__version__}, 1 process of 1 thread",
               "ladder": list(LADDER), "seeds": list(SEEDS), "config": budget_spec(24).base, "evaluate": EVALUATE,
               "interval": INTERVAL, "reference_steps": REFERENCE_STEPS, "budgets": budgets}
    results["reference_check"] = reference_check(budgets)
    io.write_json(out / "results.json", results)
    io.atomic_write(out / "results.md", markdown(results))
    figure(results, out / "score_vs_steps.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
