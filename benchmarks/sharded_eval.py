"""Speed-up of sharded evaluation at 2 processes against 1, on the same machine and in one run.

``vaekit.runtime.distributed.map_blocks`` splits a test set into fixed blocks, gives each rank a
contiguous run of them and gathers the per-example results (equal to one process, bit for bit:
tests/test_distributed_eval.py). This script times three evaluations of the first ``--num-test``
Fashion-MNIST test images (28x28, an MLP VAE 784-512-256-8 whose weights are seeded, untrained:
the time does not depend on them) under 1 and then 2 gloo processes (torch.multiprocessing,
as torchrun starts them, one intra-op thread each):

- the importance-sampled log-likelihood (K = ``--num-samples``),
- the anomaly score ``reconstruction_probability`` (L = ``--num-samples``),
- the OOD score ``likelihood_ratio`` against a per-pixel background (K = ``--num-samples``).

Each is timed ``--repeats`` times per world size (alternating 1, 2, 1, 2, ...); the ratio is the
median 1-process seconds over the median 2-process seconds (2.0 = perfect). On a machine whose
cores other jobs share, the ratio is bounded by the cores actually free.

    python benchmarks/sharded_eval.py --output benchmarks/results/sharded_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from vaekit import Config, build_model  # noqa: E402
from vaekit.runtime import distributed  # noqa: E402

DATA_DIR = "/usr/share/datasets"
_STATE = {}  # built in the parent, inherited by the forked workers


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(num_test: int, num_samples: int) -> None:
    from vaekit.data.splits import load_dataset
    from vaekit.evaluation.ood import PixelBackground  # noqa: F401 - the background's type
    from vaekit.detectors.ood import fit_pixel_background

    config = Config.from_flat(data="fashion-mnist", data_dir=DATA_DIR, hidden=[512, 256], latent_dim=8)
    test = load_dataset(config, "test").x[:num_test]
    train = load_dataset(config, "train").x[:5000]
    model = build_model(config.model, tuple(test.shape[1:]), unit_interval=True, seed=0).eval()
    background = fit_pixel_background(model, train, 0.1, 0)
    _STATE.update(model=model, x=(test > 0.5).float(), background=background, num_samples=num_samples)


def _tasks() -> dict:
    from vaekit.evaluation.anomaly import score_samples
    from vaekit.evaluation.likelihood import log_likelihood

    model, k, background = _STATE["model"], _STATE["num_samples"], _STATE["background"]

    def likelihood_ratio(xb):
        return log_likelihood(model, xb, k) - background.log_prob(xb)

    return {
        "log_likelihood": (lambda xb: log_likelihood(model, xb, k), 100, 0),
        "anomaly_reconstruction_probability": (lambda xb: score_samples(model, xb, num_samples=k), 256, None),
        "ood_likelihood_ratio": (likelihood_ratio, 100, 0),
    }


def _time(name: str) -> float:
    fn, block, seed = _tasks()[name]
    distributed.barrier()
    start = time.perf_counter()
    with torch.no_grad():
        distributed.map_blocks(fn, _STATE["x"], block, seed=seed)
    distributed.barrier()
    return time.perf_counter() - start


def _worker(rank: int, world: int, port: int, name: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    with distributed.process_group("cpu"):
        seconds = _time(name)
    if rank == 0:
        Path(out).write_text(json.dumps(seconds))


def measure(name: str, world: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "seconds.json")
        if world == 1:
            torch.set_num_threads(1)
            return _time(name)
        mp.start_processes(_worker, args=(world, _port(), name, out), nprocs=world, join=True, start_method="fork")
        return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/sharded_eval.json")
    args = parser.parse_args()
    _setup(args.num_test, args.num_samples)
    rows = []
    for name in _tasks():
        seconds = {1: [], 2: []}
        for _ in range(args.repeats):
            for world in (1, 2):
                seconds[world].append(measure(name, world))
                print(f"{name}: {world} process(es) {seconds[world][-1]:.2f} s", flush=True)
        one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
        rows.append({"evaluation": name, "seconds_1_process": seconds[1], "seconds_2_processes": seconds[2],
                     "median_1": one, "median_2": two, "speedup_2_processes": one / two})
        print(f"{name}: speed-up at 2 processes {one / two:.2f}x", flush=True)
    record = {"machine": machine(), "num_test": args.num_test,
              "num_samples": args.num_samples, "repeats": args.repeats, "rows": rows,
              "load_average_at_end": os.getloadavg()}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
