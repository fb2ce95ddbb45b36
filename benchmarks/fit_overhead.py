"""The per-step overhead of ``vaekit.fit``: its throughput against a minimal hand-written loop.

Both loops train the same MLP VAE (vaekit.nets modules 64-256-256-8, same initial weights) with
batch 128, Adam 1e-3, one torch thread, no validation and no hooks, on the grey 8x8 digits with
the Bernoulli cross-entropy (no binarization). The minimal loop slices a shuffled index and writes
the ELBO by hand (BCE + closed-form KL); a third loop, the same minimal loop around vaekit's
objective (``vaekit.ELBO()``, torch.distributions), splits the gap into the objective's share
and the training loop's own (schedule, metrics, checks). In one process, the three loops take turns in
``--rounds`` interleaved rounds (so that load drift on a shared machine hits them alike) after an
untimed warm-up round; the ratio is the median over rounds of vaekit's samples per CPU-second over
the minimal loop's (CPU time of this process: robust to other processes; wall time is recorded
too), with a 95 % percentile-bootstrap interval of that median over the rounds.

    python benchmarks/fit_overhead.py       # prints the ratio, writes benchmarks/results/fit_overhead.json

Target (issue 22, item 6): vaekit.fit >= 0.95x the minimal loop.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import scipy.stats
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.models import build_model  # noqa: E402


def minimal_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """The reference: shuffle by index, slice, ELBO by hand (BCE + closed-form KL), Adam step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
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


def objective_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """The minimal loop with vaekit's objective instead of the hand-written ELBO."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    objective = vaekit.ELBO()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            loss = objective(model, x[order[start:start + batch_size]]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds (one run of each loop per round)")
    parser.add_argument("--output", default="benchmarks/results/fit_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = Config.from_flat(net="mlp", hidden=(256, 256), latent_dim=8, batch_size=128, epochs=args.epochs,
                              binarize="none", kl_diagnostic_points=0)
    t = config.train
    x = digits(config)[0]
    base = build_model(config.model, x.shape[1:], seed=config.train.seed)
    runners = {
        "minimal": lambda m: minimal_loop(m, x, t.epochs, t.batch_size, t.lr, t.seed),
        "objective_loop": lambda m: objective_loop(m, x, t.epochs, t.batch_size, t.lr, t.seed),
        "vaekit": lambda m: vaekit.fit(m, x, config, options=vaekit.RunOptions(threads=1)),
    }
    clocks: dict[str, list[Clock]] = {name: [] for name in runners}
    for round_ in range(args.rounds + 1):
        for name in (list(runners) if round_ % 2 else list(runners)[::-1]):  # alternate who goes first
            run, model = runners[name], copy.deepcopy(base)
            with Clock() as clock:
                run(model)
            if round_ > 0:  # round 0: untimed warm-up (first-call and allocator costs)
                clocks[name].append(clock)
    samples = len(x) * t.epochs
    def per_round(numerator: str, kind: str) -> list[float]:  # time ratio = throughput ratio of vaekit.fit
        return [getattr(a, kind) / getattr(b, kind) for a, b in zip(clocks[numerator], clocks["vaekit"])]

    ratios = {kind: per_round("minimal", kind) for kind in ("cpu", "wall")}
    interval = scipy.stats.bootstrap((ratios["cpu"],), statistics.median, confidence_level=0.95, method="percentile",
                                     vectorized=False, random_state=0).confidence_interval
    loop_ratios = {kind: per_round("objective_loop", kind) for kind in ("cpu", "wall")}
    objective_ratios = {kind: [getattr(a, kind) / getattr(b, kind) for a, b in zip(clocks["minimal"], clocks["objective_loop"])]
                        for kind in ("cpu", "wall")}
    result = {
        "benchmark": "fit_overhead (vaekit.fit vs a minimal hand-written loop, MLP VAE 64-256-256-8, batch 128)",
        "epochs": t.epochs, "rounds": args.rounds, "batch_size": t.batch_size, "num_train": len(x), "threads": 1,
        "vaekit": vaekit.__version__, "machine": machine(),
        "samples_per_s": {name: {kind: samples / statistics.median(getattr(c, kind) for c in cs)
                                 for kind in ("cpu", "wall")} for name, cs in clocks.items()},
        "ratio_vaekit_over_minimal": {kind: statistics.median(r) for kind, r in ratios.items()},
        "ratio_vaekit_over_minimal_95ci_cpu": [interval.low, interval.high],
        "ratio_per_round": ratios,
        "ratio_vaekit_over_objective_loop": {kind: statistics.median(r) for kind, r in loop_ratios.items()},
        "ratio_objective_loop_over_minimal": {kind: statistics.median(r) for kind, r in objective_ratios.items()},
        "target": 0.95,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["ratio_vaekit_over_minimal"]
    print(f"vaekit.fit / minimal loop: {r['cpu']:.3f} (CPU time; 95 % interval {interval.low:.3f}-{interval.high:.3f}), "
          f"{r['wall']:.3f} (wall); target >= 0.95")
    print(f"vaekit.fit / the same loop around vaekit.ELBO(): {result['ratio_vaekit_over_objective_loop']['cpu']:.3f}; "
          f"that loop / minimal: {result['ratio_objective_loop_over_minimal']['cpu']:.3f} (CPU time)")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
