"""Why is vaekit's VQ-VAE slower than pythae's in the zoo (issue 27: 0.81x)? vaekit trains its
autoregressive code prior inside the VQ-VAE's loss, every step; pythae's VQVAE has no prior (the zoo
fits one on pythae's codes afterwards, untimed, so that pythae's model can sample). This times, in one
process and on the zoo's protocol (Fashion-MNIST, 10,000 binarized training images, MLP 256-256,
latent 16, 2 epochs, batch 100, Adam 1e-3, 1 thread), per seed (5 seeds) and interleaved:

- ``vaekit``: ``vaekit.fit`` of the VQ-VAE (code prior trained in the loss);
- ``pythae``: pythae's VQVAE from the same initial networks (the zoo's adapter and trainer);
- ``prior``: the code prior fitted afterwards on pythae's codes (the zoo's ``from_pythae``), the
  work pythae's timing leaves out.

Ratios (> 1: vaekit is faster) are pythae / vaekit and (pythae + prior) / vaekit, CPU seconds of the
process for the whole training (robust to other load on the shared machine) (pythae's trainer validates every epoch, as vaekit's loop does), mean over seeds with a
95 % t interval.

    OMP_NUM_THREADS=1 python benchmarks/zoo_vqvae_time.py   # -> benchmarks/results/zoo-vqvae-time.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402

import vaekit  # noqa: E402
from vaekit.benchmarks import pythae_adapter as adapter  # noqa: E402
from vaekit.benchmarks import zoo  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.data.splits import load_dataset, prepare, split_validation  # noqa: E402
from vaekit.models import build_model  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
OUT = Path("benchmarks/results/zoo-vqvae-time.json")


def interval(values: list[float]) -> dict:
    mean, ci95 = t_interval(values)
    return {"mean": mean, "ci95": ci95, "per_seed": values}


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for i, seed in enumerate((SEEDS[0], *SEEDS)):  # pass 0: a warm-up, not recorded (first-call costs)
        config = Config.from_flat(**{**zoo.BASE, "epochs": 2, "model": "vqvae", "seed": seed})
        t = config.train
        train_set = load_dataset(config, "train")
        x = prepare(train_set.x, config, training=True)
        train_x, val_x = split_validation(x, config)
        initial = build_model(config.model, train_set.data_shape, train_set.unit_interval, seed=seed)
        row = {"seed": seed}
        ours = build_model(config.model, train_set.data_shape, train_set.unit_interval, seed=seed)
        start = time.process_time()
        vaekit.fit(ours, train_x, config, val=val_x, options=vaekit.RunOptions(threads=1))
        row["vaekit_s"] = time.process_time() - start
        pmodel = adapter.to_pythae("vqvae", initial)
        start = time.process_time()
        adapter.train_pythae("vqvae", pmodel, train_x, val_x, t.epochs, t.batch_size, t.lr, seed)
        row["pythae_s"] = time.process_time() - start
        start = time.process_time()
        adapter.from_pythae("vqvae", pmodel.cpu(), initial, train_x, t.epochs, t.batch_size, t.lr, seed)
        row["prior_s"] = time.process_time() - start
        if i > 0:
            rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "benchmark": "zoo VQ-VAE training time, vaekit (code prior in the loss) vs pythae (no prior) + the prior fitted after",
        "machine": machine(),
        "command": "OMP_NUM_THREADS=1 python benchmarks/zoo_vqvae_time.py",
        "rows": rows,
        "ratio_pythae_over_vaekit": interval([r["pythae_s"] / r["vaekit_s"] for r in rows]),
        "ratio_pythae_plus_prior_over_vaekit": interval([(r["pythae_s"] + r["prior_s"]) / r["vaekit_s"] for r in rows]),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("ratio")}, indent=1))


if __name__ == "__main__":
    main()
