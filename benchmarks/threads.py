"""The thread policy (``vaekit.runtime.threads.choose_threads``) against fixed thread counts, two
concurrent ``vaekit train`` runs against one (issue 11), and a run joined by a second one later
(issue 32: the policy's guard, ``vaekit.runtime.threads.ThreadGuard``).

Part 1, in one process: for each case (the default MLP on the 8x8 digits, the conv net on
Fashion-MNIST 28x28, the 4x200 MLP of the robustness benchmark on Fashion-MNIST 28x28), one
training epoch of ``vaekit.fit`` on ``--examples`` training examples with 1 thread, with every
core, and with the policy (``RunOptions(threads=None)``, OMP_NUM_THREADS removed from the
environment), interleaved in rounds whose order rotates; reported: median epoch seconds of each
and the ratio policy / best fixed count (goal <= 1.1).

Part 2: wall time of two ``vaekit train`` processes started together against one alone (same
settings, OMP_NUM_THREADS unset so the policy decides), interleaved ``--rounds`` times; the ratio
of medians (goal <= 2.2: two runs on the machine's cores cost at most 2.2x one). The same with
``--threads <cores>`` forced in both shows what the policy avoids.

Part 3: run A starts alone; ``--delay`` seconds later run B starts beside it (A chose its threads
on an idle machine). Wall time until both finish and A's thread record (``reductions``: where its
guard lowered the count), with the policy against ``--threads <cores>`` in both, ``--rounds``
interleaved rounds.

    python benchmarks/threads.py --output benchmarks/results/threads.json
    python benchmarks/threads.py --skip part1 --train-epochs 100 --train-batch-size 128 --rounds 3 \
        --contrast --output benchmarks/results/threads-guard.json
    python benchmarks/threads.py --skip part2 part3 --cases mlp-default-digits --batch-sizes 16 32 64 128 256 \
        --epochs-per-run 5 --repeats 11 --repeats-all-cores 11 --output benchmarks/results/threads-sizes.json

The second line measures parts 2 and 3 with a model above the policy's threshold (the digits MLP at
batch 128: the idle cores at the start). The third places the policy's FLOPs threshold (``THREAD_FLOPS_THRESHOLD``): the digits MLP
from 0.016 to 0.26 GFLOP per step.

The machine's load average is recorded before and after: on a shared machine the ratios, not the
seconds, are the result. Rerunning one part (``--skip``) keeps the other's results in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.pop("OMP_NUM_THREADS", None)  # the policy decides in part 1

import torch  # noqa: E402

from common import machine  # noqa: E402
from vaekit import Config, build_model, fit  # noqa: E402
from vaekit.data.splits import load_dataset, prepare  # noqa: E402
from vaekit.options import RunOptions  # noqa: E402
from vaekit.runtime import available_cores, choose_threads  # noqa: E402

CASES = {
    "mlp-default-digits": dict(),
    "conv-fashion-mnist-28x28": dict(data="fashion-mnist", data_dir="/usr/share/datasets", net="conv"),
    "mlp-4x200-fashion-mnist-28x28": dict(data="fashion-mnist", data_dir="/usr/share/datasets", net="mlp",
                                          hidden=(200, 200, 200, 200), latent_dim=64, likelihood="gaussian",
                                          likelihood_scale=0.1, decoder_activation="sigmoid"),
}


def epoch_seconds(config: Config, x: torch.Tensor, threads: int | None, epochs: int = 1) -> float:
    """Seconds per training epoch of a fresh model (seed 0) with ``threads`` (None = the policy),
    over ``epochs`` epochs."""
    model = build_model(config.model, tuple(x.shape[1:]), True, seed=0)
    history = fit(model, x, config.replace(epochs=epochs, kl_diagnostic_points=0), options=RunOptions(threads=threads))
    return sum(h["time"] for h in history) / epochs


def part1(args) -> dict:
    cores = available_cores()
    out = {}
    cases = {}
    for name, flat in CASES.items():
        for batch_size in args.batch_sizes or [None]:  # a sweep over batch sizes: one case each
            cases[name if batch_size is None else f"{name}/batch={batch_size}"] = (
                flat if batch_size is None else {**flat, "batch_size": batch_size})
    for name, flat in cases.items():
        if args.cases and name.split("/")[0] not in args.cases:
            continue
        config = Config.from_flat(**flat)
        limit = args.examples if "28x28" in name else None  # the digits: the whole training split
        x = prepare(load_dataset(config, "train").x[:limit], config, training=True)
        model = build_model(config.model, tuple(x.shape[1:]), True, seed=0)
        choice = choose_threads(model, config.train.batch_size, environ={})  # at the load of this moment
        contenders = {"1": 1, str(cores): cores, "policy": None}
        times = {k: [] for k in contenders}
        epoch_seconds(config, x, 1, args.epochs_per_run)  # warm-up
        for r in range(args.repeats):
            names = [k for k in contenders if k != str(cores) or r < args.repeats_all_cores]
            names = names[r % len(names):] + names[:r % len(names)]
            for k in names:
                times[k].append(epoch_seconds(config, x, contenders[k], args.epochs_per_run))
        med = {k: statistics.median(v) for k, v in times.items()}
        best = min((k for k in med if k != "policy"), key=med.get)
        out[name] = {"examples": len(x), "batch_size": config.train.batch_size, "policy": choice.to_dict(),
                     "speedup_all_cores_over_1": round(med["1"] / med[str(cores)], 3),
                     "median_epoch_s": {k: round(v, 4) for k, v in med.items()}, "best_fixed": best,
                     "policy_over_best": round(med["policy"] / med[best], 3),
                     "epoch_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}
        print(json.dumps({name: out[name]}), flush=True)
    return out


def train_command(runs_dir: str, name: str, epochs: int, threads: int | None, batch_size: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "vaekit", "train", "--epochs", str(epochs), "--runs-dir", runs_dir,
           "--name", name, "--quiet"]
    return cmd + (["--threads", str(threads)] if threads else []) + (["--batch-size", str(batch_size)] if batch_size else [])


def start_train(tmp: str, name: str, epochs: int, threads: int | None, batch_size: int | None) -> subprocess.Popen:
    """A ``vaekit train`` process, OMP_NUM_THREADS removed so that the policy (or ``threads``) decides."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.Popen(train_command(tmp, name, epochs, threads, batch_size), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> float:
    """Wait for ``process``; the time it ended (``time.perf_counter``). Its error is raised."""
    _, err = process.communicate()
    if process.returncode:
        raise RuntimeError(err.decode()[-2000:])
    return time.perf_counter()


def concurrent(n: int, epochs: int, threads: int | None, tmp: str, tag: str, batch_size: int | None = None) -> float:
    start = time.perf_counter()
    procs = [start_train(tmp, f"{tag}-{i}", epochs, threads, batch_size) for i in range(n)]
    return max(finish(p) for p in procs) - start


def staggered(epochs: int, threads: int | None, tmp: str, tag: str, delay: float, batch_size: int | None) -> dict:
    """Run A alone for ``delay`` seconds, then B beside it: both wall times and A's thread record."""
    start = time.perf_counter()
    a = start_train(tmp, f"{tag}-a", epochs, threads, batch_size)
    time.sleep(delay)
    b_start = time.perf_counter()
    b = start_train(tmp, f"{tag}-b", epochs, threads, batch_size)
    ends = {"a": finish(a), "b": finish(b)}
    threads_a = json.loads((Path(tmp) / f"{tag}-a" / "summary.json").read_text())["threads"]
    threads_b = json.loads((Path(tmp) / f"{tag}-b" / "summary.json").read_text())["threads"]
    return {"a_s": round(ends["a"] - start, 2), "b_s": round(ends["b"] - b_start, 2),
            "both_s": round(max(ends.values()) - start, 2), "threads_a": threads_a, "threads_b": threads_b}


def part3(args) -> dict:
    """Run B starts ``--delay`` seconds after run A (the load average and the runnable threads A saw at
    its start did not include B): the policy (with its guard) against both on every core."""
    cores = available_cores()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict[str, list[dict]] = {"policy": [], f"threads={cores}": []}
        for r in range(args.rounds):
            labels = list(rows) if r % 2 == 0 else list(rows)[::-1]
            for label in labels:
                rows[label].append(staggered(args.train_epochs, None if label == "policy" else cores, tmp,
                                             f"{label}-{r}", args.delay, args.train_batch_size))
                print(json.dumps({label: rows[label][-1]}), flush=True)
        for label, runs in rows.items():
            out[label] = {"runs": runs, "median_both_s": round(statistics.median(r["both_s"] for r in runs), 2),
                          "median_a_s": round(statistics.median(r["a_s"] for r in runs), 2)}
        out["policy_over_all_cores"] = round(out["policy"]["median_both_s"] / out[f"threads={cores}"]["median_both_s"], 3)
    return out


def part2(args) -> dict:
    cores = available_cores()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, threads in (("policy", None), *([(f"threads={cores}", cores)] if args.contrast else [])):
            one, two = [], []
            for r in range(args.rounds):
                order = [(1, one), (2, two)] if r % 2 == 0 else [(2, two), (1, one)]
                for n, bucket in order:
                    bucket.append(concurrent(n, args.train_epochs, threads, tmp, f"{label}-{r}-{n}", args.train_batch_size))
            out[label] = {"one_run_s": [round(t, 2) for t in one], "two_runs_s": [round(t, 2) for t in two],
                          "median_one_s": round(statistics.median(one), 2),
                          "median_two_s": round(statistics.median(two), 2),
                          "two_over_one": round(statistics.median(two) / statistics.median(one), 3)}
            print(json.dumps({label: out[label]}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=512, help="training examples per 28x28 epoch (part 1)")
    parser.add_argument("--repeats", type=int, default=11, help="rounds of part 1")
    parser.add_argument("--repeats-all-cores", type=int, default=3,
                        help="rounds of part 1 that also time every core (slow on a loaded machine)")
    parser.add_argument("--cases", nargs="*", default=None, help=f"subset of {list(CASES)}")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=None,
                        help="part 1: each case at each of these batch sizes (default: the case's own)")
    parser.add_argument("--epochs-per-run", type=int, default=1, help="part 1: epochs per timed run (the mean is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of part 2")
    parser.add_argument("--train-epochs", type=int, default=10, help="epochs of each vaekit train in part 2")
    parser.add_argument("--train-batch-size", type=int, default=None,
                        help="parts 2 and 3: vaekit train's --batch-size (default: the main job's 64)")
    parser.add_argument("--contrast", action="store_true", help="part 2 also with --threads <cores> forced")
    parser.add_argument("--delay", type=float, default=5.0, help="part 3: seconds between the starts of run A and run B")
    parser.add_argument("--skip", nargs="*", choices=["part1", "part2", "part3"], default=[])
    parser.add_argument("--output", default="benchmarks/results/threads.json")
    args = parser.parse_args()
    out = Path(args.output)
    result = json.loads(out.read_text()) if out.is_file() else {}  # a part not rerun is kept
    parts = (("policy_vs_fixed", part1, "part1"), ("concurrent_train", part2, "part2"), ("staggered_train", part3, "part3"))
    for key, part, skip in parts:
        if skip not in args.skip:
            record = {"machine": machine(), "settings": vars(args), "load_average_before": os.getloadavg()}
            record["results"] = part(args)
            record["load_average_after"] = os.getloadavg()
            result[key] = record
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
