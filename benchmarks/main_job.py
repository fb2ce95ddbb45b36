"""The main job's wall time against the minimal loop's (issue 32): ``vaekit train`` on the digits
(its defaults: MLP VAE 64-256-256-8, 100 epochs, batch 64, dynamic binarization; validation
and KL diagnostics every epoch, a checkpoint per epoch, the test ELBO and importance-sampled
log-likelihood (K = 1000), weights, metrics, every figure and report.html) against a minimal
hand-written script that trains the same network for the same epochs and batch and writes nothing:
import torch, read the digits (numpy), shuffle and slice, ELBO by hand, torch's default Adam.

Both run as fresh processes (``python -m vaekit train ... --threads 1 --quiet`` and ``python -c
MINIMAL``), one thread each, alternating in ``--rounds`` rounds; per round the ratio of their wall
times (and of their CPU times, user + system of the child: robust to other load on a shared
machine), then the median over rounds with a bootstrap 95 % interval. The load average is recorded.

    python benchmarks/main_job.py --rounds 7 --output benchmarks/results/main_job.json

Target (issue 32): the main job's wall time <= 1.3x the minimal loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

MINIMAL = r"""
import sys, torch, torch.nn.functional as F
from torch import nn
from vaekit.data.digits import read_digits  # numpy: the digits without scikit-learn's import
epochs, batch_size, num_train = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
torch.manual_seed(0)
images, _ = read_digits()
x = torch.from_numpy(images / 16.0).float().flatten(1)[torch.randperm(len(images))[:num_train]]
encoder = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 16))
decoder = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64))
optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
for _ in range(epochs):
    order = torch.randperm(len(x))
    for start in range(0, len(x), batch_size):
        xb = torch.bernoulli(x[order[start:start + batch_size]])
        loc, raw = encoder(xb).chunk(2, dim=-1)
        scale = F.softplus(raw) + 1e-4
        z = loc + scale * torch.randn_like(loc)
        rec = F.binary_cross_entropy_with_logits(decoder(z), xb, reduction="none").sum(1)
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1).sum(1) - scale.log().sum(1)
        loss = (rec + kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
"""

#: what ``vaekit train`` writes today (checked after every round)
OUTPUTS = ("config.json", "model.safetensors", "metrics.jsonl", "summary.json", "checkpoint/last.safetensors",
           "loss_curves.png", "reconstructions.png", "samples.png", "latent_scatter.png", "principal_grid.png",
           "traversals.png", "interpolation.png", "iterated.png", "report.html")


def timed(cmd: list[str], env: dict) -> dict:
    """Wall and CPU (user + system) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
            "load_average": os.getloadavg()[0]}


def median_interval(values: list[float]) -> dict:
    """Median and its bootstrap 95 % interval."""
    ci = scipy.stats.bootstrap((values,), statistics.median, confidence_level=0.95, method="percentile",
                               vectorized=False, random_state=0).confidence_interval if len(values) > 1 else None
    return {"median": statistics.median(values), "ci95": [float(ci.low), float(ci.high)] if ci else None, "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default="benchmarks/results/main_job.json")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = Path(args.output)
    partial = out.with_suffix(".partial.json")
    rounds = json.loads(partial.read_text()) if partial.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        train = [sys.executable, "-m", "vaekit", "train", "--epochs", str(args.epochs), "--batch-size",
                 str(args.batch_size), "--threads", "1", "--runs-dir", tmp, "--name", "job", "--overwrite", "--quiet"]
        num_train = None
        while len(rounds) < args.rounds:
            row = {}
            order = ("vaekit", "minimal") if len(rounds) % 2 else ("minimal", "vaekit")
            for name in order:
                if name == "vaekit":
                    row[name] = timed(train, env)
                    run = Path(tmp, "job")
                    missing = [f for f in OUTPUTS if not (run / f).exists()]
                    assert not missing, f"vaekit train did not write {missing}"
                    summary = json.loads((run / "summary.json").read_text())
                    num_train = summary["num_train_examples"]
                    row[name]["training_time_s"] = summary["training_time_s"]
                else:
                    row[name] = timed([sys.executable, "-c", MINIMAL, str(args.epochs), str(args.batch_size),
                                       str(num_train or 1293)], env)
            rounds.append(row)
            partial.write_text(json.dumps(rounds, indent=1) + "\n")
            print(f"round {len(rounds)}: vaekit train {row['vaekit']['wall']:.1f} s wall ({row['vaekit']['cpu']:.1f} s CPU), "
                  f"minimal {row['minimal']['wall']:.1f} s ({row['minimal']['cpu']:.1f} s CPU); "
                  f"load {row['vaekit']['load_average']:.1f}", flush=True)
    result = {"benchmark": "main job (vaekit train, digits defaults) vs the minimal loop, same epochs and batch",
              "epochs": args.epochs, "batch_size": args.batch_size, "threads": 1, "rounds": len(rounds),
              "outputs_checked": list(OUTPUTS), "machine": machine(),
              "ratio_vaekit_over_minimal": {kind: median_interval([r["vaekit"][kind] / r["minimal"][kind] for r in rounds])
                                            for kind in ("wall", "cpu")},
              "seconds": {name: {kind: median_interval([r[name][kind] for r in rounds]) for kind in ("wall", "cpu")}
                          for name in ("vaekit", "minimal")},
              "load_average": [r["vaekit"]["load_average"] for r in rounds], "target": 1.3, "per_round": rounds}
    out.write_text(json.dumps(result, indent=2) + "\n")
    for kind in ("wall", "cpu"):
        r = result["ratio_vaekit_over_minimal"][kind]
        low, high = r["ci95"] or (r["median"], r["median"])
        print(f"vaekit train / minimal loop ({kind} time): {r['median']:.3f} (95 % interval [{low:.3f}, {high:.3f}]); target <= 1.3")


if __name__ == "__main__":
    main()
