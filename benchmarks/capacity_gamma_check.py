"""Check of the capacity-annealed β-VAE's γ rule (:func:`vaekit.benchmarks.disentanglement.capacity_gamma`).

One seed (0) of the disentanglement benchmark's capacity model (32×32 dsprites-synthetic, conv net,
24 epochs, C → 25 nats over 2,080 steps) at γ = the rule's 5.2 and 5× it (26); the benchmark's earlier γ = 1000 collapsed in all 5 seeds (git
history of benchmarks/results/disentanglement). The pixel-only scaling, 250 = 1000 × 1024/4096, was not
run: 26 already collapses (and the 2 cores were shared with four other sessions' runs). Every point is a run folder of
the sweep engine, so a rerun resumes; the table is printed and written to OUT/check.md.

    OMP_NUM_THREADS=1 python benchmarks/capacity_gamma_check.py [--jobs 2] [--collect-only]
"""

import argparse
from pathlib import Path

from vaekit.benchmarks import disentanglement as bench
from vaekit.io import atomic_write
from vaekit.benchmarks.sweeps.engine import run_and_collect
from vaekit.benchmarks.sweeps.spec import SweepSpec

GAMMAS = (5.2, 26.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/capacity-gamma")
    parser.add_argument("--gammas", type=float, nargs="+", default=GAMMAS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collect-only", action="store_true", help="write the table of the finished points only")
    args = parser.parse_args()
    base = bench.spec(models=("capacity-vae",), seeds=(args.seed,))
    arm = base.arms["capacity-vae"]
    sweep = SweepSpec(base.base, {f"gamma={g:g}": {**arm, "beta": g} for g in args.gammas}, (args.seed,), base.evaluate)
    rows, _ = run_and_collect(sweep, Path(args.output), bench.collect, args.jobs, args.collect_only)
    head = ["γ", "test ELBO", "KL", "index-code MI", "dim-KL", "active units", "BetaVAE", "MIG", "DCI-D", "train s"]
    flags = "" if args.seed == 0 and tuple(args.gammas) == GAMMAS else \
        f" --seed {args.seed} --gammas {' '.join(f'{g:g}' for g in args.gammas)} --output {args.output}"
    lines = [f"Command: `OMP_NUM_THREADS=1 python benchmarks/capacity_gamma_check.py{flags}`  ",
             f"Anneal: C → {arm['capacity_max']:g} nats over {arm['capacity_steps']} steps; seed {args.seed}; "
             "nats per test image.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        r = row["per_seed"][str(args.seed)]
        lines.append(f"| {name.split('=')[1]} | {r['test_elbo']:.1f} | {r['kl']:.1f} | {r['kl_mi']:.2f} | "
                     f"{r['kl_dimwise']:.1f} | {r['active_units']} | {r['beta_vae.eval_accuracy']:.3f} | "
                     f"{r['mig.mig']:.3f} | {r['dci.disentanglement']:.3f} | {r['train_s']:.0f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(args.output) / "check.md", text)
    print(text)


if __name__ == "__main__":
    main()
