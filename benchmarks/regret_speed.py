"""Cost per row of the likelihood regret with encoder fine-tuning (Xiao et al. 2020, Algorithm 1: 100
Adam steps on a copy of the encoder per input), on the OOD benchmark's VAE (784-256-256 MLP encoder,
latent 16) and binarized real MNIST rows (mnist-5k test split).

Compares, in one process and alternating rounds (the machine is shared; the ratio is what counts):
  reference  one full copy of the encoder per row (vmap over 274k weights per row)
  reduced    the exact first-layer reduction of vaekit.evaluation.regret._binary_first_layer
             (a 256-vector per row instead of the 784x256 first layer; same iterates to 1e-4)
at several chunk sizes (the reference at --reference-chunks only: its copies take ~4 MB per row).
Writes wall and CPU seconds per row, scaled to 100 steps, and the speed-ups to --output. CPU time is
the figure to read on a shared machine (wall time there was 5-9x the CPU time).

    python benchmarks/regret_speed.py --rows 256 --steps 10 --chunks 32 256 --reference-chunks 32 \
        --output benchmarks/results/regret_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from unittest import mock

import torch

from common import machine

from vaekit.benchmarks.ood import MODEL
from vaekit.config import Config
from vaekit.data import load
from vaekit.evaluation import regret
from vaekit.models import build_model


def seconds_per_row(model, x, steps, chunk, reduced):
    """(wall, CPU) seconds per row of ``steps`` steps, scaled to 100 steps."""
    patch = mock.patch.object(regret, "_binary_first_layer", return_value=None) if not reduced else mock.MagicMock()
    with patch:
        start, cpu = time.perf_counter(), time.process_time()
        regret.likelihood_regret(model, x, steps, chunk_size=chunk)
        scale = 100 / steps / len(x)
        return (time.perf_counter() - start) * scale, (time.process_time() - cpu) * scale


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--reference-chunks", type=int, nargs="+", default=[32])
    parser.add_argument("--output", default="benchmarks/results/regret_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = Config.from_flat(**MODEL, data="array", seed=0)
    model = build_model(config.model, (1, 28, 28), seed=0).eval()
    x = torch.bernoulli(load("mnist-5k", "test").x[:args.rows], generator=torch.Generator().manual_seed(0))
    load_before = os.getloadavg()
    cases = {}
    for _ in range(args.rounds):
        for chunk in args.chunks:
            for reduced in (False, True):
                if not reduced and chunk not in args.reference_chunks:
                    continue
                key = f"{'reduced' if reduced else 'reference'} chunk {chunk}"
                cases.setdefault(key, []).append(seconds_per_row(model, x, args.steps, chunk, reduced))
    wall = {k: min(w for w, _ in v) for k, v in cases.items()}
    cpu = {k: min(c for _, c in v) for k, v in cases.items()}
    reference = f"reference chunk {args.reference_chunks[0]}"
    speedup_cpu = {k: cpu[reference] / v for k, v in cpu.items()}
    result = {"machine": machine(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "settings": vars(args), "wall_seconds_per_row_100_steps": wall, "cpu_seconds_per_row_100_steps": cpu,
              f"cpu_speedup_over_{reference.replace(' ', '_')}": speedup_cpu, "all_rounds_wall_cpu": cases}
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({"cpu_seconds_per_row": cpu, "wall_seconds_per_row": wall, "cpu_speedup": speedup_cpu}, indent=2))


if __name__ == "__main__":
    main()
