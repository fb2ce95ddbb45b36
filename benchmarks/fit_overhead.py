"""``vaekit.fit`` against a minimal hand-written loop: throughput ratios in one process (issue 32).

Cases (``--cases``): ``digits-mlp``, the MLP VAE 64-256-256-8 on the grey 8x8 digits (1437
examples, batch 128, 5 epochs per timed run); ``fashion-conv``, the conv VAE (channels 32-64-64,
dense 256, latent 8) on 28x28 Fashion-MNIST (the first 2048 training images, batch 64, 1 epoch
per timed run). Every loop trains the same modules from the same initial weights, Adam 1e-3,
Bernoulli cross-entropy on the grey pixels (no binarization), no validation and no hooks:

* ``minimal``: the loop a user writes: shuffle an index, slice, ELBO by hand (BCE + closed-form
  KL), ``torch.optim.Adam(model.parameters(), lr)`` (torch's default step: foreach);
* ``vaekit``: ``vaekit.fit`` with its defaults (the fused Adam step, ``fused_optimizer=True``);
* ``vaekit_foreach``: ``vaekit.fit`` with ``fused_optimizer=False`` (the same step as minimal):
  what the fused step brings, and the loop's own overhead without it.

Threads (``--threads``): ``1`` (OMP_NUM_THREADS=1, ``torch.set_num_threads(1)``,
``RunOptions(threads=1)``) or ``default`` (no thread setting anywhere: torch's default for the
minimal loop, vaekit's own choice, :func:`vaekit.runtime.threads.choose_threads`).

In one process the loops take turns in ``--rounds`` interleaved rounds (the order alternates) after an
untimed warm-up round; the process's ratio is the median over rounds of the minimal loop's CPU
time over vaekit's (= vaekit's throughput over the minimal loop's; CPU time of the process is
robust to other processes on a shared machine, wall time is recorded too). The ratio moves from
one process to the next by more than its rounds say, so ``--processes`` fresh processes run one
after another and the headline is the mean of their ratios with a 95 % t interval. Each finished
process is saved at once (``--output`` + ``.partial.json``), so a stopped run resumes.

    python benchmarks/fit_overhead.py                       # all cases, both thread settings
    python benchmarks/fit_overhead.py --cases digits-mlp --threads 1 --rounds 15 --processes 3

Targets (issue 32): vaekit.fit >= 1.2x the minimal loop on digits-mlp, >= 1.1x on fashion-conv,
at 1 thread and at the default thread choice.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import scipy.stats
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, digits, machine, t_interval  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import Config  # noqa: E402
from vaekit.models import build_model  # noqa: E402


#: case -> (flat config settings, data side, train examples (None = all), epochs per timed run, target)
CASES = {
    "digits-mlp": (dict(net="mlp", hidden=(256, 256), latent_dim=8, batch_size=128), "digits", None, 5, 1.2),
    "fashion-conv": (dict(net="conv", channels=(32, 64, 64), hidden=(256,), latent_dim=8, batch_size=64,
                          data="fashion-mnist", data_dir="/usr/share/datasets"), "fashion", 2048, 1, 1.1),
}


def minimal_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """The reference: shuffle by index, slice, ELBO by hand (BCE + closed-form KL), default Adam step."""
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


def case_data(case: str, config: Config, limit: int | None) -> torch.Tensor:
    """The case's training tensor (grey pixels in [0, 1])."""
    if case == "digits-mlp":
        return digits(config)[0]
    from vaekit.data.splits import load_dataset

    x = load_dataset(config, "train").x
    return x[:limit] if limit else x


class ThreadRecord:
    """A hook that keeps the thread choice of each ``vaekit.fit`` run (its ``close`` only: no per-epoch work)."""

    def __init__(self):
        self.choices: list[dict] = []

    def close(self, loop) -> None:
        self.choices.append(loop.threads.to_dict())


def measure(case: str, rounds: int, threads: str) -> dict:
    """One process: the loops in ``rounds`` interleaved rounds; per-round time ratios."""
    if threads == "1":
        torch.set_num_threads(1)
    default_threads = torch.get_num_threads()  # fit sets the thread count for the process: reset it before the minimal loop
    settings, _, limit, epochs, _ = CASES[case]
    config = Config.from_flat(**settings, epochs=epochs, binarize="none", kl_diagnostic_points=0)
    t = config.train
    x = case_data(case, config, limit)
    base = build_model(config.model, x.shape[1:], seed=t.seed)
    options = vaekit.RunOptions(threads=1 if threads == "1" else None)
    unfused = config.replace(fused_optimizer=False)
    record = ThreadRecord()
    runners = {
        "minimal": lambda m: (torch.set_num_threads(default_threads),
                              minimal_loop(m, x, t.epochs, t.batch_size, t.lr, t.seed)),
        "vaekit": lambda m: vaekit.fit(m, x, config, options=options, hooks=[record]),
        "vaekit_foreach": lambda m: vaekit.fit(m, x, unfused, options=options),
    }
    clocks: dict[str, list[Clock]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        for name in (list(runners) if round_ % 2 else list(runners)[::-1]):  # alternate who goes first
            run, model = runners[name], copy.deepcopy(base)
            with Clock() as clock:
                run(model)
            if round_ > 0:  # round 0: untimed warm-up (first-call and allocator costs)
                clocks[name].append(clock)
    samples = len(x) * t.epochs

    def ratios(a: str, b: str) -> dict[str, list[float]]:  # time of a over time of b = throughput of b over a
        return {kind: [getattr(p, kind) / getattr(q, kind) for p, q in zip(clocks[a], clocks[b])] for kind in ("cpu", "wall")}

    out = {"num_train": len(x), "batch_size": t.batch_size, "epochs": t.epochs,
           "torch_threads": {"minimal": default_threads, "vaekit": sorted({c["threads"] for c in record.choices})},
           "vaekit_thread_choices": record.choices,
           "load_average": os.getloadavg(),
           "samples_per_s": {name: {kind: samples / statistics.median(getattr(c, kind) for c in cs)
                                    for kind in ("cpu", "wall")} for name, cs in clocks.items()}}
    for name in ("vaekit", "vaekit_foreach"):
        per_round = ratios("minimal", name)
        interval = scipy.stats.bootstrap((per_round["cpu"],), statistics.median, confidence_level=0.95,
                                         method="percentile", vectorized=False, random_state=0).confidence_interval
        out[f"ratio_{name}_over_minimal"] = {kind: statistics.median(r) for kind, r in per_round.items()}
        out[f"ratio_{name}_over_minimal_95ci_cpu"] = [interval.low, interval.high]
        out[f"ratio_{name}_over_minimal_per_round"] = per_round
    return out




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", nargs="+", default=["1", "default"], choices=["1", "default"])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per process (one run of each loop per round)")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per case and thread setting")
    parser.add_argument("--output", default="benchmarks/results/fit_overhead.json")
    parser.add_argument("--one-process", nargs=2, metavar=("CASE", "THREADS"), help=argparse.SUPPRESS)  # a worker
    args = parser.parse_args()
    if args.one_process:
        print(json.dumps(measure(args.one_process[0], args.rounds, args.one_process[1])))
        return
    out = Path(args.output)
    partial = out.with_suffix(".partial.json")
    done = json.loads(partial.read_text()) if partial.exists() else {}
    for i in range(args.processes):  # process i of every setting before process i + 1 of any: drift hits all alike
        for case in args.cases:
            for threads in args.threads:
                key = f"{case}/threads={threads}"
                runs = done.setdefault(key, [])
                if len(runs) > i:
                    continue
                env = dict(os.environ)
                for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                    env.pop(name, None)
                if threads == "1":
                    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
                result = subprocess.run([sys.executable, __file__, "--one-process", case, threads, "--rounds",
                                         str(args.rounds)], env=env, check=True, capture_output=True, text=True)
                runs.append(json.loads(result.stdout))
                partial.write_text(json.dumps(done, indent=1) + "\n")
                r = runs[-1]
                print(f"{key} process {i + 1}/{args.processes}: vaekit.fit / minimal "
                      f"{r['ratio_vaekit_over_minimal']['cpu']:.3f} (rounds' 95 % interval "
                      f"{r['ratio_vaekit_over_minimal_95ci_cpu'][0]:.3f}-{r['ratio_vaekit_over_minimal_95ci_cpu'][1]:.3f}); "
                      f"foreach {r['ratio_vaekit_foreach_over_minimal']['cpu']:.3f}; load {r['load_average'][0]:.1f}",
                      flush=True)

    def across(runs: list[dict], key: str, kind: str = "cpu") -> dict:
        values = [p[key][kind] for p in runs]
        return {"mean": statistics.fmean(values), "ci95": t_interval(values)[1], "per_process": values}

    results = {}
    for key, runs in done.items():
        case = key.split("/")[0]
        results[key] = {
            "case": case, "threads": key.split("=")[1], "torch_threads": runs[0]["torch_threads"],
            "num_train": runs[0]["num_train"], "batch_size": runs[0]["batch_size"], "epochs": runs[0]["epochs"],
            "target": CASES[case][4],
            **{f"ratio_{name}_over_minimal": {kind: across(runs, f"ratio_{name}_over_minimal", kind) for kind in ("cpu", "wall")}
               for name in ("vaekit", "vaekit_foreach")},
            "load_average_per_process": [p["load_average"] for p in runs],
            "per_process": runs,
        }
    result = {"benchmark": "fit_overhead (vaekit.fit vs a minimal hand-written loop with torch's default Adam)",
              "rounds": args.rounds, "processes": args.processes, "vaekit": vaekit.__version__, "machine": machine(),
              "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for key, r in results.items():
        v, f = r["ratio_vaekit_over_minimal"]["cpu"], r["ratio_vaekit_foreach_over_minimal"]["cpu"]
        print(f"{key}: vaekit.fit / minimal loop {v['mean']:.3f} (95 % interval {v['ci95'][0]:.3f}-{v['ci95'][1]:.3f}; "
              f"target >= {r['target']}); with the foreach step {f['mean']:.3f} "
              f"({f['ci95'][0]:.3f}-{f['ci95'][1]:.3f}); CPU time, {len(r['per_process'])} processes")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
