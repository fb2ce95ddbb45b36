"""Poincaré VAE decoders on the digits: the gyroplane layer with its offsets at 0 (vaekit's default), the
gyroplane layer with the authors' offset initialisation b ~ U(±4/√d), and the log map at the origin;
the flat VAE as a reference. Test IS log-likelihood, 3 seeds, mean and 95 % t interval.

Settings: the scikit-learn digits (1,437 training images, dynamic binarisation; the 360 test images
binarised once at 0.5), latent 8, MLP 256-256, Bernoulli, batch 128, ``--epochs`` epochs (15), curvature
1, K = ``--num-samples`` (500) importance samples, one thread.

Reproduce (resumable: finished points are kept; ~10 min on a shared CPU core):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/poincare_decoder.py --out benchmarks/results/poincare

Writes ``OUT/points/<arm>-seed<k>.json`` per point and ``OUT/decoder.json`` (the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mean_interval  # noqa: E402

ARMS = {
    "gyroplane (offsets 0)": ("poincare", {"decoder_input": "gyroplane"}, False),
    "gyroplane (authors' offsets)": ("poincare", {"decoder_input": "gyroplane"}, True),
    "logmap0": ("poincare", {"decoder_input": "logmap0"}, False),
    "vae": ("vae", None, False),
}




def run_point(arm: str, seed: int, epochs: int, num_samples: int) -> dict:
    from vaekit import data as datasets
    from vaekit.config import Config
    from vaekit.evaluation import log_likelihood
    from vaekit.models import build_model
    from vaekit.training import fit

    model_name, options, authors = ARMS[arm]
    train, test = datasets.load("digits").x, datasets.load("digits", split="test").x
    config = Config.from_flat(model=model_name, latent_dim=8, epochs=epochs, seed=seed, options=options)
    model = build_model(config.model, train.shape[1:], seed=seed)
    if authors:
        model.decoder.first[0].reset_offsets_as_the_authors(torch.Generator().manual_seed(seed))
    start = time.process_time()
    fit(model, train, config)
    model.eval()
    with torch.no_grad():
        ll = log_likelihood(
            model, (test > 0.5).float(), num_samples=num_samples, generator=torch.Generator().manual_seed(0)
        )
    return {"arm": arm, "seed": seed, "log_likelihood": ll.mean().item(), "cpu_s": time.process_time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/poincare")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--num-samples", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    points = Path(args.out) / "points"
    points.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for seed in args.seeds:
        for arm in ARMS:
            path = points / f"{arm.split()[0]}{'-authors' if ARMS[arm][2] else ''}-seed{seed}.json"
            if not path.exists():
                point = run_point(arm, seed, args.epochs, args.num_samples)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(point, indent=1))
                tmp.replace(path)
                print(json.dumps(point), flush=True)
            results[arm].append(json.loads(path.read_text())["log_likelihood"])
    table = {
        "what": "test IS log-likelihood (nats per example, higher is better) on the digits, 3 seeds; "
        "mean, sd, 95 % t interval",
        "settings": f"latent 8, MLP 256-256, Bernoulli, batch 128, {args.epochs} epochs, curvature 1, "
        f"K = {args.num_samples}, test images binarised at 0.5",
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/poincare_decoder.py --out " + args.out,
        "arms": {arm: mean_interval(values) for arm, values in results.items()},
    }
    (Path(args.out) / "decoder.json").write_text(json.dumps(table, indent=1))
    for arm, row in table["arms"].items():
        print(f"{arm:30s} {row['mean']:8.2f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]  {row['values']}")


if __name__ == "__main__":
    main()
