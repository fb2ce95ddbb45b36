"""``--compile`` (torch.compile of the training step) against eager, per model size (issue 32).

For each size, ``vaekit.fit`` trains the same model from the same weights eagerly and with
``RunOptions(compile=True)``: one warm-up run of each (the compiled one pays the compilation,
recorded as ``compile_s``), then ``--rounds`` interleaved timed runs of ``--epochs`` epochs; the
ratio per round is eager time over compiled time (> 1: compiling is faster), reported as the
median with a bootstrap 95 % interval, in CPU time of the process (robust to other load) and in
wall time. Also: the break-even number of epochs, compile_s over the time saved per epoch.

Sizes: MLP VAEs on the 8x8 digits with hidden widths 64, 256 (the default) and 1024, and the
conv VAE on 28x28 Fashion-MNIST (first 1024 images). One thread on a CPU by default
(``--device cuda`` runs the same on a GPU: benchmarks/gpu_check.sh).

    python benchmarks/compile_speed.py --output benchmarks/results/compile_cpu.json
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

import scipy.stats
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.models import build_model  # noqa: E402

SIZES = {
    "mlp-64": dict(net="mlp", hidden=(64, 64), latent_dim=8, batch_size=128),
    "mlp-256": dict(net="mlp", hidden=(256, 256), latent_dim=8, batch_size=128),
    "mlp-1024": dict(net="mlp", hidden=(1024, 1024), latent_dim=8, batch_size=128),
    "conv-28": dict(net="conv", channels=(32, 64, 64), hidden=(256,), latent_dim=8, batch_size=64,
                    data="fashion-mnist", data_dir="/usr/share/datasets"),
}


def data(name: str, config: Config) -> torch.Tensor:
    if name.startswith("mlp"):
        return digits(config)[0]
    from vaekit.data.splits import load_dataset

    return load_dataset(config, "train").x[:1024]


def measure(name: str, epochs: int, rounds: int, device: str) -> dict:
    config = Config.from_flat(**SIZES[name], epochs=epochs, binarize="none", kl_diagnostic_points=0)
    x = data(name, config)
    base = build_model(config.model, x.shape[1:], seed=0)
    threads = 1 if device == "cpu" else None
    eager, compiled = vaekit.RunOptions(device=device, threads=threads), \
        vaekit.RunOptions(device=device, threads=threads, compile=True)
    torch._dynamo.reset()
    start = time.perf_counter()
    vaekit.fit(copy.deepcopy(base), x, config.replace(epochs=1), options=compiled)  # compiles
    compile_s = time.perf_counter() - start
    vaekit.fit(copy.deepcopy(base), x, config.replace(epochs=1), options=eager)
    clocks: dict[str, list[Clock]] = {"eager": [], "compiled": []}
    for r in range(rounds):
        for kind in (("eager", "compiled") if r % 2 else ("compiled", "eager")):
            model = copy.deepcopy(base)
            with Clock() as clock:
                vaekit.fit(model, x, config, options=eager if kind == "eager" else compiled)
                if device == "cuda":
                    torch.cuda.synchronize()
            clocks[kind].append(clock)
    out = {"size": name, "parameters": sum(p.numel() for p in base.parameters()), "num_train": len(x),
           "epochs_per_run": epochs, "compile_s_wall": compile_s, "load_average": os.getloadavg()}
    for kind in ("cpu", "wall"):
        ratios = [getattr(e, kind) / getattr(c, kind) for e, c in zip(clocks["eager"], clocks["compiled"])]
        ci = scipy.stats.bootstrap((ratios,), statistics.median, confidence_level=0.95, method="percentile",
                                   vectorized=False, random_state=0).confidence_interval if len(ratios) > 1 else None
        out[f"ratio_eager_over_compiled_{kind}"] = {"median": statistics.median(ratios),
                                                    "ci95": [ci.low, ci.high] if ci else None, "per_round": ratios}
    per_epoch = {k: statistics.median(c.wall for c in v) / epochs for k, v in clocks.items()}
    out["seconds_per_epoch_wall"] = per_epoch
    saved = per_epoch["eager"] - per_epoch["compiled"]
    out["break_even_epochs"] = compile_s / saved if saved > 0 else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="benchmarks/results/compile_cpu.json")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    out = Path(args.output)
    partial = out.with_suffix(".partial.json")
    done = json.loads(partial.read_text()) if partial.exists() else {}
    for name in args.sizes:
        if name not in done:
            done[name] = measure(name, args.epochs, args.rounds, args.device)
            partial.write_text(json.dumps(done, indent=1) + "\n")
        r = done[name]
        print(f"{name} ({r['parameters']} parameters): eager / compiled time {r['ratio_eager_over_compiled_cpu']['median']:.3f} "
              f"CPU ({r['ratio_eager_over_compiled_cpu']['ci95']}), {r['ratio_eager_over_compiled_wall']['median']:.3f} wall; "
              f"compilation {r['compile_s_wall']:.1f} s; load {r['load_average'][0]:.1f}", flush=True)
    result = {"benchmark": "torch.compile of vaekit's training step against eager, per model size",
              "device": args.device, "threads": 1 if args.device == "cpu" else None, "epochs_per_run": args.epochs,
              "rounds": args.rounds, "vaekit": vaekit.__version__, "machine": machine(),
              "results": {k: done[k] for k in args.sizes}}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
