"""Training throughput of vaekit's loop against a minimal hand-written PyTorch loop, in one process.

Both train the same MLP VAE (vaekit.nets modules, same initial weights) on the bundled digits with
the same batch size, Adam settings and epochs, on grey pixels with a Bernoulli (cross-entropy)
likelihood. The runs alternate, ``--repeats`` times each, and the medians are compared.

    python benchmarks/train_throughput.py            # prints a table and writes a JSON file

Target (issue 2): vaekit >= 0.95x the minimal loop.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import vaekit
from vaekit import data
from vaekit.config import Config
from vaekit.models import build_model
from vaekit.train import fit


def minimal_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """The reference: shuffle by index, slice, ELBO by hand (BCE + closed-form KL), Adam step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            xb = x[order[start:start + batch_size]]
            loc, scale = model.encoder(xb)
            z = loc + scale * torch.randn_like(loc)
            logits = model.decoder(z)
            rec = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1).sum(1) - scale.log().sum(1)
            loss = (rec + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    x = data.load("digits").x
    config = Config(epochs=args.epochs, batch_size=args.batch_size, binarize="none", latent_dim=8, hidden=(256, 256))
    base = build_model(config, x.shape[1:])
    times = {"vaekit": [], "minimal": []}
    for _ in range(args.repeats):
        for name in ("minimal", "vaekit"):
            model = copy.deepcopy(base)
            start = time.perf_counter()
            if name == "vaekit":
                fit(model, x, config, progress=False)
            else:
                minimal_loop(model, x, config.epochs, config.batch_size, config.lr, config.seed)
            times[name].append(time.perf_counter() - start)
    samples = len(x) * config.epochs
    rate = {k: samples / statistics.median(v) for k, v in times.items()}
    return {
        "benchmark": "train_throughput (MLP VAE, digits)",
        "samples_per_s": rate,
        "ratio_vaekit_over_minimal": rate["vaekit"] / rate["minimal"],
        "epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats, "threads": args.threads,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), {platform.processor() or 'cpu'}",
        "torch": torch.__version__, "vaekit": vaekit.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    result = measure(args)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| loop | samples/s |\n|---|---|")
    for name, value in result["samples_per_s"].items():
        print(f"| {name} | {value:,.0f} |")
    print(f"ratio vaekit / minimal: {result['ratio_vaekit_over_minimal']:.3f} (target >= 0.95)")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
