"""Training throughput: vaekit's loop against a minimal hand-written loop, and the cost of each model.

1. ``vaekit.fit`` against the smallest correct PyTorch loop (Adam, shuffled slices, the same
   vaekit loss), same model and data, no validation: the ratio is the overhead of vaekit's loop
   (metrics, NaN checks, KL warm-up, checkpointing hooks), ideally ~1.
2. The time per epoch of every model in :data:`MODEL_NAMES` relative to the plain VAE, through
   ``vaekit.fit`` (e.g. AVAE and SE add a second encoder pass and PGD steps).

Two cases: an MLP VAE on the 8x8 digits and a convolutional VAE on the digits resized to 28x28.

    python benchmarks/train_throughput.py --output benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --device cuda --precision bf16   # on a GPU

Every figure is a ratio of two timings measured in this one run (machine, command, date in the JSON),
in CPU time of this process (robust to other processes on a shared machine) and in wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine  # noqa: E402

from vaekit import MODELS, Config, build_model, fit  # noqa: E402
from vaekit.objectives import LOSSES  # noqa: E402
from vaekit.runtime import RunOptions, autocast, resolve_device  # noqa: E402

#: Models timed against "vae" (hook: add e.g. "avae", "se", "se-avae" once they are registered).
MODEL_NAMES = ["vae", "ae"]

CASES = {
    "mlp-digits-8x8": dict(side=8, config=dict(net="mlp", hidden=(256, 256))),
    "conv-digits-28x28": dict(side=28, config=dict(net="conv", channels=(32, 64), hidden=(256,))),
}


def minimal_loop(model, train, config, options: RunOptions) -> Clock:
    """``config.epochs`` epochs of the smallest correct loop with vaekit's loss, timed."""
    device = resolve_device(options.device)
    model.to(device).train()
    train = train.to(device)
    loss_fn = LOSSES[config.model]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    _sync(device)
    with Clock() as clock:
        for _ in range(config.epochs):
            order = torch.randperm(len(train), generator=generator).to(device)
            for i in range(0, len(train), config.batch_size):
                with autocast(device, options.precision):
                    loss = loss_fn(model, train[order[i:i + config.batch_size]], config, config.beta)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        _sync(device)
    return clock


def vaekit_loop(model, train, config, options: RunOptions) -> Clock:
    """``config.epochs`` epochs of ``vaekit.fit`` (no validation, no progress bar), timed."""
    _sync(resolve_device(options.device))
    with Clock() as clock:
        fit(model, train, config, progress=False, options=options)
        _sync(resolve_device(options.device))
    return clock


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(name: str, case: dict, args, options: RunOptions) -> dict:
    config = Config(binarize="static", epochs=args.epochs, batch_size=args.batch_size, latent_dim=8, **case["config"])
    train, _ = digits(config, case["side"])
    shape = tuple(train.shape[1:])
    result = {"case": name, "num_train": len(train), "epochs": args.epochs, "batch_size": args.batch_size}
    base = build_model(config, shape)
    warm = config.replace(epochs=1)
    minimal_loop(copy.deepcopy(base), train, warm, options)  # warm-up, untimed
    vaekit_loop(copy.deepcopy(base), train, warm, options)
    clocks = {"minimal": [], "vaekit": []}
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        clocks["minimal"].append(minimal_loop(copy.deepcopy(base), train, config, options))
        clocks["vaekit"].append(vaekit_loop(copy.deepcopy(base), train, config, options))
    n = len(train) * args.epochs
    result["examples_per_s"] = {k: {"cpu": n / min(c.cpu for c in v), "wall": n / min(c.wall for c in v)}
                                for k, v in clocks.items()}
    result["vaekit_over_minimal_time"] = {
        kind: statistics.median(getattr(a, kind) / getattr(b, kind) for a, b in zip(clocks["vaekit"], clocks["minimal"]))
        for kind in ("cpu", "wall")}
    models = {}
    for model_name in MODEL_NAMES:
        if model_name not in MODELS:
            models[model_name] = "not registered in this vaekit"
            continue
        cfg = config.replace(model=model_name)
        runs = [vaekit_loop(build_model(cfg, shape), train, cfg, options) for _ in range(args.repeats)]
        models[model_name] = {"cpu": min(c.cpu for c in runs) / args.epochs, "wall": min(c.wall for c in runs) / args.epochs}
    vae = models.get("vae")
    result["seconds_per_epoch"] = models
    result["time_ratio_to_vae"] = {k: {kind: v[kind] / vae[kind] for kind in v}
                                   for k, v in models.items() if isinstance(v, dict) and isinstance(vae, dict)}
    print(json.dumps(result), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "16-mixed"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = RunOptions(device=args.device, precision=args.precision)
    report = {"machine": machine(), "settings": vars(args),
              "cases": [run_case(name, CASES[name], args, options) for name in args.cases]}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
