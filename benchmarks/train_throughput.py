"""Training throughput of vaekit's loop against a minimal hand-written PyTorch loop, in one process,
and the time of every model in :data:`MODEL_NAMES` relative to the plain VAE.

Both loops train the same VAE (vaekit.nets modules, same initial weights) with the same batch
size, Adam settings and epochs, on grey pixels with a Bernoulli (cross-entropy) likelihood. The
runs alternate, ``--repeats`` times each, and the medians are compared, in CPU time of this
process (robust to other processes on a shared machine) and in wall time. Cases: an MLP VAE on
the 8x8 digits and a convolutional VAE on the digits resized to 28x28 (``--cases``).

    python benchmarks/train_throughput.py            # prints a table and writes a JSON file
    python benchmarks/train_throughput.py --device cuda --precision bf16   # on a GPU

Target (issue 2): vaekit >= 0.95x the minimal loop.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.models import MODELS, build_model  # noqa: E402
from vaekit.options import RunOptions  # noqa: E402
from vaekit.runtime import autocast, resolve_device  # noqa: E402
from vaekit.training import fit  # noqa: E402

#: Models timed through ``vaekit.fit`` against "vae" (the AVAE paper reports AVAE ≤ 1.5x and SE with 5 PGD steps ≤ 4x).
MODEL_NAMES = ["vae", "ae", "avae", "se", "se-avae"]

CASES = {
    "mlp-digits-8x8": dict(side=8, config=dict(net="mlp", hidden=(256, 256))),
    "conv-digits-28x28": dict(side=28, config=dict(net="conv", channels=(32, 64), hidden=(256,))),
}


def minimal_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int,
                 options: RunOptions) -> None:
    """The reference: shuffle by index, slice, ELBO by hand (BCE + closed-form KL), Adam step."""
    device = resolve_device(options.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        for start in range(0, len(x), batch_size):
            xb = x[order[start:start + batch_size]]
            with autocast(device, options.precision):
                loc, scale = model.encoder(xb)
                z = loc + scale * torch.randn_like(loc)
                logits = model.decoder(z)
            rec = F.binary_cross_entropy_with_logits(logits.float(), xb, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (loc.float().pow(2) + scale.float().pow(2) - 1).sum(1) - scale.float().log().sum(1)
            loss = (rec + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def timed(fn, device: torch.device) -> Clock:
    with Clock() as clock:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return clock


def measure(case: dict, args, options: RunOptions) -> dict:
    device = resolve_device(options.device)
    # The per-epoch KL diagnostics are evaluation, not training: off, as the minimal loop has none.
    config = Config.from_flat(epochs=args.epochs, batch_size=args.batch_size, binarize="none", latent_dim=8,
                    kl_diagnostic_points=0, **case["config"])
    x = digits(config, case["side"])[0].to(device)
    base = build_model(config.model, x.shape[1:], seed=config.train.seed).to(device)
    runners = {
        "minimal": lambda m: minimal_loop(m, x, config.train.epochs, config.train.batch_size, config.train.lr, config.train.seed, options),
        "vaekit": lambda m: fit(m, x, config, options=options),
    }
    for run in runners.values():  # untimed warm-up (first-call and allocator costs)
        run(copy.deepcopy(base))
    clocks = {"vaekit": [], "minimal": []}
    for _ in range(args.repeats):
        for name in ("minimal", "vaekit"):
            model = copy.deepcopy(base)
            clocks[name].append(timed(lambda: runners[name](model), device))
    samples = len(x) * config.train.epochs
    rate = {k: {kind: samples / statistics.median(getattr(c, kind) for c in v) for kind in ("cpu", "wall")}
            for k, v in clocks.items()}
    seconds = {name: "not registered in this vaekit" for name in MODEL_NAMES if name not in MODELS}
    models = {name: config.replace(model=name) for name in MODEL_NAMES if name in MODELS}
    runs = {name: [] for name in models}
    for _ in range(args.repeats):  # interleaved, so that load drift hits every model alike
        for name, cfg in models.items():
            runs[name].append(timed(lambda: fit(build_model(cfg.model, x.shape[1:], seed=cfg.train.seed), x, cfg,
                                                options=options), device))
    for name, clocks_of_model in runs.items():
        seconds[name] = {kind: statistics.median(getattr(c, kind) for c in clocks_of_model) / config.train.epochs
                         for kind in ("cpu", "wall")}
    vae = seconds.get("vae")
    return {
        "samples_per_s": rate,
        "ratio_vaekit_over_minimal": {kind: rate["vaekit"][kind] / rate["minimal"][kind] for kind in ("cpu", "wall")},
        "seconds_per_epoch": seconds,
        "time_ratio_to_vae": {k: {kind: v[kind] / vae[kind] for kind in v}
                              for k, v in seconds.items() if isinstance(v, dict) and isinstance(vae, dict)},
        "num_train": len(x), "data_shape": list(x.shape[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "16-mixed"])
    parser.add_argument("--output", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = RunOptions(device=args.device, precision=args.precision)
    result = {"benchmark": "train_throughput (vaekit.fit vs a minimal loop; model time ratios)",
              "epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats, "threads": args.threads,
              "device": args.device, "precision": args.precision, "vaekit": vaekit.__version__, "machine": machine(),
              "cases": {}}
    for name in args.cases:
        result["cases"][name] = measure(CASES[name], args, options)
        print(json.dumps({name: result["cases"][name]}), flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| case | loop | samples/s (CPU time) | samples/s (wall) |\n|---|---|---|---|")
    for name, case in result["cases"].items():
        for loop, value in case["samples_per_s"].items():
            print(f"| {name} | {loop} | {value['cpu']:,.0f} | {value['wall']:,.0f} |")
        print(f"ratio vaekit / minimal ({name}): {case['ratio_vaekit_over_minimal']['cpu']:.3f} CPU time, "
              f"{case['ratio_vaekit_over_minimal']['wall']:.3f} wall (target >= 0.95)")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
