"""Is channels-last (the CPU default for a conv net) faster across conv-net sizes, or only for the
benchmark's 32-64-64 net? ``vaekit.fit`` with ``channels_last=False`` and ``True`` on random [0, 1]
images for several image sizes and channel widths (dense 64, latent 4, batch 64, 2 epochs, 1 thread),
alternating in ``--rounds`` rounds after a warm-up round, in one process; the median CPU time of NCHW
over that of channels-last (> 1: channels-last is faster).

    OMP_NUM_THREADS=1 python benchmarks/channels_last_sizes.py   # -> benchmarks/results/channels_last_sizes.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import vaekit  # noqa: E402
from vaekit import Config, build_model, fit  # noqa: E402

#: (image shape, conv channels, examples)
CASES = (
    ((1, 8, 8), (8, 16), 1437),
    ((1, 8, 8), (32, 64), 1437),
    ((1, 28, 28), (8, 16), 1024),
    ((1, 28, 28), (16, 32), 1024),
    ((1, 28, 28), (32, 64), 1024),
    ((1, 28, 28), (32, 64, 64), 1024),
    ((1, 28, 28), (64, 64, 64), 1024),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", default="benchmarks/results/channels_last_sizes.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for shape, channels, n in CASES:
        config = Config.from_flat(net="conv", channels=channels, hidden=(64,), latent_dim=4, epochs=2, batch_size=64, binarize="none")
        x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0))
        base = build_model(config.model, shape, seed=0)
        times: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(args.rounds + 1):
            for layout in (True, False) if round_ % 2 else (False, True):
                model, start = copy.deepcopy(base), time.process_time()
                fit(model, x, config, options=vaekit.RunOptions(threads=1, channels_last=layout))
                if round_:  # round 0: warm-up
                    times[layout].append(time.process_time() - start)
        row = {"shape": list(shape), "channels": list(channels), "examples": n,
               "median_s": {"nchw": statistics.median(times[False]), "channels_last": statistics.median(times[True])},
               "speedup_channels_last": statistics.median(times[False]) / statistics.median(times[True]),
               "per_round": {"nchw": times[False], "channels_last": times[True]}}
        rows.append(row)
        print(shape, channels, f"NCHW / channels-last: {row['speedup_channels_last']:.3f}", flush=True)
    info = machine()
    info["command"] = f"OMP_NUM_THREADS=1 python benchmarks/channels_last_sizes.py --rounds {args.rounds}"
    Path(args.output).write_text(json.dumps({"benchmark": __doc__.splitlines()[0], "machine": info, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
