"""Does a speed setting change a model's metrics? ``vaekit train`` with and without it for ``--seeds``
seeds; the final test ELBO and importance-sampled log-likelihood (nats per example) of each, their
means with 95 % t intervals, and the paired difference per seed with its interval. Each setting
computes the same model and differs only in rounding, so the difference should be within seed noise.

``--setting fused`` (default): the digits with the defaults (MLP VAE, 100 epochs, batch 64, K = 1000),
``--fused-optimizer`` (the default) against ``--no-fused-optimizer``. ``--setting channels-last``:
Fashion-MNIST's conv VAE (the first 2,000 training images, 5 epochs, batch 64, the 10,000 test images
with K = 100), ``--channels-last True`` (the CPU default for a conv net) against ``False``.

Runs already in ``--runs-dir`` (a ``summary.json``) are reused, so a stopped run resumes.

    python benchmarks/fused_metrics.py --output benchmarks/results/fused_metrics.json
    python benchmarks/fused_metrics.py --setting channels-last --runs-dir runs/channels-last-metrics \
        --output benchmarks/results/channels_last_metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402

METRICS = ("elbo", "log_likelihood")
#: setting -> (its two arms and their flags, the data and evaluation flags, the default epochs)
SETTINGS = {
    "fused": ({"fused": ["--fused-optimizer"], "foreach": ["--no-fused-optimizer"]}, [], 100),
    "channels-last": (
        {"channels_last": ["--channels-last", "True"], "nchw": ["--channels-last", "False"]},
        ["--data", "fashion-mnist", "--data-dir", "/usr/share/datasets", "--train-size", "2000",
         "--eval-num-samples", "100"],
        5,
    ),
}


def interval(values: list[float]) -> dict:
    """Mean and 95 % t interval."""
    mean, ci95 = t_interval(values)
    return {"mean": mean, "ci95": ci95, "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="fused")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the setting's")
    parser.add_argument("--runs-dir", default="runs/fused-metrics")
    parser.add_argument("--output", default="benchmarks/results/fused_metrics.json")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    arms, data, epochs = SETTINGS[args.setting]
    epochs = args.epochs or epochs
    (a, b) = arms
    summaries: dict[str, dict[int, dict]] = {kind: {} for kind in arms}
    for seed in args.seeds:
        for kind, flags in arms.items():
            name = f"{kind}-seed{seed}"
            path = Path(args.runs_dir) / name / "summary.json"
            if not path.exists():
                subprocess.run([sys.executable, "-m", "vaekit", "train", "--seed", str(seed), *flags, *data, "--epochs",
                                str(epochs), "--threads", "1", "--runs-dir", args.runs_dir, "--name", name,
                                "--overwrite", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
            summaries[kind][seed] = json.loads(path.read_text())
            print(name, {m: round(summaries[kind][seed]["test"][m], 3) for m in METRICS}, flush=True)
    result = {"benchmark": f"{a} vs {b}: final test metrics of vaekit train",
              "command": " ".join(["vaekit train --seed S", f"[{' '.join(arms[a])} | {' '.join(arms[b])}]", *data,
                                   f"--epochs {epochs} --threads 1"]),
              "machine": machine(), "seeds": args.seeds, "units": "nats per example (the test split)"}
    for metric in METRICS:
        first = [summaries[a][s]["test"][metric] for s in args.seeds]
        second = [summaries[b][s]["test"][metric] for s in args.seeds]
        result[metric] = {a: interval(first), b: interval(second),
                          f"difference_{a}_minus_{b}": interval([p - q for p, q in zip(first, second)])}
    result["training_time_s"] = {kind: [summaries[kind][s]["training_time_s"] for s in args.seeds] for kind in summaries}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for metric in METRICS:
        r = result[metric]
        d = r[f"difference_{a}_minus_{b}"]
        print(f"{metric}: {a} {r[a]['mean']:.3f} [{r[a]['ci95'][0]:.3f}, {r[a]['ci95'][1]:.3f}], "
              f"{b} {r[b]['mean']:.3f} [{r[b]['ci95'][0]:.3f}, {r[b]['ci95'][1]:.3f}], "
              f"difference {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")


if __name__ == "__main__":
    main()
