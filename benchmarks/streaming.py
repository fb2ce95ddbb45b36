"""Training from a memory-mapped .npy (``--data npy-stream``) against the in-memory path.

The 60,000 Fashion-MNIST training images are written once as a uint8 ``.npy`` (47 MB on disk,
188 MB as the float32 tensor the in-memory path holds). Each mode trains the same MLP VAE
(784-512-256-8, Bernoulli, dynamic binarization, batch 128, one intra-op thread) for
``--epochs`` epochs over all 60,000 images in a fresh subprocess:

- ``memory``: the whole file read into one float32 tensor; :func:`vaekit.fit` slices batches;
- ``stream``: :class:`vaekit.data.stream.NpyStream` maps the file; :func:`vaekit.fit` reads each
  batch through a DataLoader with ``--num-workers`` worker processes.

Reported per mode: the seconds of every epoch (the last is the steady state: persistent workers
started), the peak resident memory of the training process and of its largest worker
(``ru_maxrss``), and the ratio in-memory epoch seconds / streamed epoch seconds (goal >= 0.8).

    python benchmarks/streaming.py --output benchmarks/results/streaming.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from vaekit import Config, RunOptions, build_model, fit  # noqa: E402

DATA_DIR = "/usr/share/datasets"


def write_npy(path: Path) -> None:
    from vaekit.data.splits import load_dataset

    if path.exists():
        return
    x = load_dataset(Config.from_flat(data="fashion-mnist", data_dir=DATA_DIR), "train").x
    np.save(path, np.round(x.numpy()[:, 0] * 255).astype(np.uint8))


def train(mode: str, path: Path, epochs: int, num_workers: int) -> dict:
    from vaekit.data.stream import NpyStream

    torch.set_num_threads(1)
    config = Config.from_flat(data="npy-stream", hidden=[512, 256], latent_dim=8, epochs=epochs, batch_size=128,
                              kl_diagnostic_points=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "memory":
        data = torch.from_numpy(np.load(path).astype(np.float32) / 255)[:, None]
        options = RunOptions(device="cpu", threads=1)
    else:
        data = NpyStream(path, "all")
        options = RunOptions(device="cpu", threads=1, num_workers=num_workers)
    model = build_model(config.model, (1, 28, 28), unit_interval=True, seed=0)
    history = fit(model, data, config, options=options)
    return {"mode": mode, "num_workers": 0 if mode == "memory" else num_workers, "examples": len(data),
            "epoch_seconds": [h["time"] for h in history], "train_loss": [h["train_loss"] for h in history],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_data_mb": before / 1024,
            "peak_rss_largest_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npy", default="/tmp/vaekit-fashion-mnist-train.npy")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--mode", choices=["memory", "stream"], help="(internal) train one mode and print JSON")
    parser.add_argument("--output", default="benchmarks/results/streaming.json")
    args = parser.parse_args()
    path = Path(args.npy)
    if args.mode:
        print(json.dumps(train(args.mode, path, args.epochs, args.num_workers)))
        return
    write_npy(path)
    rows = []
    for mode in ("memory", "stream"):
        done = subprocess.run([sys.executable, __file__, "--mode", mode, "--npy", str(path), "--epochs", str(args.epochs),
                               "--num-workers", str(args.num_workers)], capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    memory, stream = rows
    ratio = memory["epoch_seconds"][-1] / stream["epoch_seconds"][-1]
    record = {"machine": machine(), "npy_bytes": path.stat().st_size, "rows": rows,
              "ratio_memory_over_stream_last_epoch": ratio, "goal": 0.8, "met": ratio >= 0.8,
              "load_average_at_end": os.getloadavg()}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"streamed epoch at {ratio:.2f}x the in-memory speed (goal >= 0.8); written: {args.output}")


if __name__ == "__main__":
    main()
