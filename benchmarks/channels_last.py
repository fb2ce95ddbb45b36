"""Does ``torch.channels_last`` speed up the conv VAE on CPU? The fashion-conv case of
``benchmarks/fit_overhead.py`` (conv VAE 32-64-64 / 256 / latent 8, the first 2,048 Fashion-MNIST
training images, batch 64, 1 epoch per run, 1 thread): the minimal hand-written loop and ``vaekit.fit``,
each with the model and data in the default (NCHW) and in the channels-last memory format; CPU time of
the process, median over ``--rounds`` interleaved rounds after a warm-up round (the order alternates).

    OMP_NUM_THREADS=1 python benchmarks/channels_last.py [--rounds 5]   # -> benchmarks/results/channels_last.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_overhead as fo  # noqa: E402
from common import machine  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.models import build_model  # noqa: E402

KINDS = ("minimal", "fit", "minimal-channels-last", "fit-channels-last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/channels_last.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings, _, limit, epochs, _ = fo.CASES["fashion-conv"]
    config = Config.from_flat(**settings, epochs=epochs, binarize="none", kl_diagnostic_points=0)
    x = fo.case_data("fashion-conv", config, limit)
    base = build_model(config.model, x.shape[1:], seed=0)
    t = config.train

    def run(kind: str) -> float:
        model, data = copy.deepcopy(base), x
        if kind.endswith("channels-last"):
            model, data = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        start = time.process_time()
        if kind.startswith("minimal"):
            fo.minimal_loop(model, data, t.epochs, t.batch_size, t.lr, t.seed)
        else:
            # fit's default is channels-last for a conv net on the CPU: each arm names its layout
            vaekit.fit(model, data, config, options=vaekit.RunOptions(threads=1, channels_last=kind.endswith("channels-last")))
        return time.process_time() - start

    for kind in KINDS:  # warm-up
        run(kind)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_ in range(args.rounds):
        for kind in KINDS if round_ % 2 else KINDS[::-1]:
            times[kind].append(run(kind))
    median = {kind: statistics.median(v) for kind, v in times.items()}
    result = {
        "command": f"OMP_NUM_THREADS=1 python benchmarks/channels_last.py --rounds {args.rounds}",
        "machine": machine(),
        "load_average": os.getloadavg(),
        "cpu_seconds_per_epoch": times,
        "median": median,
        "speedup_channels_last": {
            "minimal": median["minimal"] / median["minimal-channels-last"],
            "fit": median["fit"] / median["fit-channels-last"],
        },
    }
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"median": median, "speedup_channels_last": result["speedup_channels_last"]}, indent=1))


if __name__ == "__main__":
    main()
