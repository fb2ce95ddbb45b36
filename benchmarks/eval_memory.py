"""Peak memory of the importance-sampled log-likelihood against its memory budget.

``vaekit.evaluation.log_likelihood(model, x, num_samples=K, max_memory_mb=B)`` draws the K
samples in chunks sized so that one chunk's decoder outputs and activations stay near B MiB,
combining chunks with a running logsumexp. This script measures, for K = 5,000 on 784-dimensional
inputs (the digits resized to 28x28, flattened by an MLP VAE 784-512-256-8), the peak resident
memory each budget needs, each in a fresh subprocess: peak RSS (``getrusage`` ``ru_maxrss``)
minus the RSS just before the call, after a warm-up. "unbounded" draws all K samples at once.
Each budget is measured with glibc's default allocator and with its mmap threshold fixed
(``MALLOC_MMAP_THRESHOLD_``), where the RSS follows the live tensors.

    python benchmarks/eval_memory.py --output benchmarks/results/eval_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits, machine  # noqa: E402

from vaekit import Config, build_model  # noqa: E402
from vaekit.evaluation import log_likelihood  # noqa: E402

BUDGETS_MB = [16, 64, 256, 1024, None]

#: glibc's default raises its mmap threshold after large frees, so freed tensors stay in the heap and
#: peak RSS overstates the live tensors; a fixed threshold returns every large block to the OS.
ALLOCATORS = {"glibc default": {}, "glibc, mmap threshold fixed at 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def child(budget: float | None, num_samples: int, num_examples: int) -> dict:
    """One measurement, run in its own process so that ru_maxrss is this call's high-water mark."""
    torch.set_num_threads(1)
    config = Config.from_flat(binarize="static", net="mlp", hidden=(512, 256), latent_dim=8)
    x = digits(config, side=28)[1][:num_examples]
    model = build_model(config.model, tuple(x.shape[1:]), seed=config.train.seed).eval()
    limit = budget if budget is not None else 1e12
    log_likelihood(model, x[:2], 10, max_memory_mb=limit)  # warm-up: kernels, allocator
    before = _rss_mb()
    torch.manual_seed(0)
    start = time.perf_counter()
    estimate = log_likelihood(model, x, num_samples, max_memory_mb=limit).mean().item()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"budget_mb": budget, "peak_extra_mb": peak - before, "seconds": seconds,
            "samples_per_s": num_samples * num_examples / seconds, "log_likelihood": estimate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--num-examples", type=int, default=32)
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="MiB budgets to measure (default 16 64 256 1024 and unbounded)")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(None if args.child < 0 else args.child, args.num_samples, args.num_examples)))
        return
    budgets = args.budgets or BUDGETS_MB
    rows = []
    for allocator, env in ALLOCATORS.items():
        for budget in budgets:
            command = [sys.executable, __file__, "--child", str(-1 if budget is None else budget),
                       "--num-samples", str(args.num_samples), "--num-examples", str(args.num_examples)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **env})
            rows.append({"allocator": allocator, **json.loads(done.stdout.strip().splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)
    report = {"machine": machine(), "num_samples": args.num_samples, "num_examples": args.num_examples,
              "input_dim": 784, "rows": rows}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
