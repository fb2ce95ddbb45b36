"""Does the fused Adam step change a model's metrics? ``vaekit train`` on the digits (the
defaults: MLP VAE, 100 epochs, batch 64) with ``--fused-optimizer`` (the default) and
``--no-fused-optimizer`` for ``--seeds`` seeds; the final test ELBO and importance-sampled
log-likelihood (K = 1000, nats per example) of each, their means with 95 % t intervals, and the
paired difference per seed (fused − foreach) with its interval. The two steps compute the same
Adam and differ only in rounding, so the difference should be within seed noise.

Runs already in ``--runs-dir`` (a ``summary.json``) are reused, so a stopped run resumes.

    python benchmarks/fused_metrics.py --output benchmarks/results/fused_metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

METRICS = ("elbo", "log_likelihood")


def interval(values: list[float]) -> dict:
    """Mean and 95 % t interval."""
    mean = statistics.fmean(values)
    half = scipy.stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": mean, "ci95": [mean - half, mean + half], "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--runs-dir", default="runs/fused-metrics")
    parser.add_argument("--output", default="benchmarks/results/fused_metrics.json")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    summaries: dict[str, dict[int, dict]] = {"fused": {}, "foreach": {}}
    for seed in args.seeds:
        for kind, flag in (("fused", "--fused-optimizer"), ("foreach", "--no-fused-optimizer")):
            name = f"{kind}-seed{seed}"
            path = Path(args.runs_dir) / name / "summary.json"
            if not path.exists():
                subprocess.run([sys.executable, "-m", "vaekit", "train", "--seed", str(seed), flag, "--epochs",
                                str(args.epochs), "--threads", "1", "--runs-dir", args.runs_dir, "--name", name,
                                "--overwrite", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
            summaries[kind][seed] = json.loads(path.read_text())
            print(name, {m: round(summaries[kind][seed]["test"][m], 3) for m in METRICS}, flush=True)
    result = {"benchmark": "fused vs foreach Adam step: final test metrics of vaekit train on the digits",
              "command": f"vaekit train --seed S --[no-]fused-optimizer --epochs {args.epochs} --threads 1",
              "machine": machine(), "seeds": args.seeds, "units": "nats per example (test split, 360 examples)"}
    for metric in METRICS:
        fused = [summaries["fused"][s]["test"][metric] for s in args.seeds]
        foreach = [summaries["foreach"][s]["test"][metric] for s in args.seeds]
        result[metric] = {"fused": interval(fused), "foreach": interval(foreach),
                          "difference_fused_minus_foreach": interval([a - b for a, b in zip(fused, foreach)])}
    result["training_time_s"] = {kind: [summaries[kind][s]["training_time_s"] for s in args.seeds] for kind in summaries}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for metric in METRICS:
        r = result[metric]
        print(f"{metric}: fused {r['fused']['mean']:.3f} [{r['fused']['ci95'][0]:.3f}, {r['fused']['ci95'][1]:.3f}], "
              f"foreach {r['foreach']['mean']:.3f} [{r['foreach']['ci95'][0]:.3f}, {r['foreach']['ci95'][1]:.3f}], "
              f"difference {r['difference_fused_minus_foreach']['mean']:+.3f} "
              f"[{r['difference_fused_minus_foreach']['ci95'][0]:+.3f}, {r['difference_fused_minus_foreach']['ci95'][1]:+.3f}]")


if __name__ == "__main__":
    main()
