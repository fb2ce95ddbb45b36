"""Ladder VAE (two stochastic layers, Sønderby et al. 2016) vs the flat VAE on Fashion-MNIST: the
importance-sampled test log-likelihood at equal epochs, 3 seeds, mean and 95 % t interval, paired by seed.

The flat VAE has z of 16 dimensions; the ladder has the same z1 (16) and decoder, plus z2 (8) on top
(``--latent-dim 24 --options '{"top_dim": 8}'``). All arms are trained by ``vaekit train`` with the same
settings (MLP 256-256, Bernoulli likelihood on dynamically binarised images, KL warm-up over
``--warmup-epochs``, a fixed 5000-image training subset); the IS log-likelihood is K importance samples on
the first ``--test-examples`` test images, binarised once with seed 0 (the same images for every model).

Arms (``--arms``): ``vae``; ``vae-bn`` (the flat VAE with batch normalisation before every hidden
activation: vaekit.nets' MLPs with ``batch_norm`` as custom nets); ``ladder`` (Monte Carlo KL, no BN);
``ladder-akl`` (the per-layer analytic KL at the draw of z2); ``ladder-bn`` (BN as the paper, sec. 3: the
ladder's default since this experiment; runs made before it had no BN and ``{"top_dim": 8}`` alone);
``ladder-bn-akl``. Each point also records the KL per layer and per unit on the test images.

Reproduce (resumable: finished points are kept, a stopped run continues; ~4 min per 8-epoch run on a
shared CPU core):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ladder_vs_vae.py --out benchmarks/results/ladder \
        --arms vae ladder ladder-akl ladder-bn vae-bn
    # the same runs continued to 16 epochs (vaekit train --resume RUN --epochs 16: bit-identical to a
    # 16-epoch run with the same 2-epoch warm-up)
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ladder_vs_vae.py --out benchmarks/results/ladder/e16 \
        --runs-dir runs/ladder-bench-e16 --extend-from runs/ladder-bench --epochs 16 --arms vae ladder-bn vae-bn

Writes ``OUT/points/<arm>-seed<k>.json`` per point and ``OUT/ladder_vs_vae.json`` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mean_interval  # noqa: E402

ROLES, BN = ("encoder", "decoder"), {"hidden": [256, 256], "batch_norm": True}
LADDER = ["--model", "ladder", "--latent-dim", "24", "--options"]
# every arm has the same z1 (16) and decoder; the ladder variants differ only in their model options
ARMS = {
    "vae": ["--model", "vae", "--latent-dim", "16"],
    # the flat VAE with the same batch normalisation (vaekit.nets' MLPs with batch_norm, as custom nets)
    "vae-bn": ["--model", "vae", "--latent-dim", "16", "--trust-code"]
    + [
        arg
        for role in ROLES
        for arg in (f"--{role}", json.dumps({"target": f"vaekit.nets:MLP{role.title()}", "kwargs": BN}))
    ],
    "ladder": [*LADDER, '{"top_dim": 8, "batch_norm": false}'],
    "ladder-bn": [*LADDER, '{"top_dim": 8, "batch_norm": true}'],
    "ladder-akl": [*LADDER, '{"top_dim": 8, "batch_norm": false, "kl": "analytic"}'],
    "ladder-bn-akl": [*LADDER, '{"top_dim": 8, "batch_norm": true, "kl": "analytic"}'],
}




def latent_use(model, x: torch.Tensor, draws: int = 64) -> dict:
    """How much each stochastic layer carries on ``x``: the KL of each unit in nats per example, sorted
    from the largest (the ladder's KL(q(z2|x) ‖ N(0, I)) and E_z2 KL(q(z1|z2, x) ‖ p(z1|z2)), closed forms
    per unit at ``draws`` draws of z2; the flat VAE's closed form), their sums, and the units carrying
    more than 0.1 nats (a scale-free count of active units: the ladder's z1 has a learned prior scale)."""
    from vaekit.models.ladder import LadderPosterior, merge

    def unit_kl(loc_q, scale_q, loc_p, scale_p):
        ratio = (scale_q / scale_p).square()
        return 0.5 * (ratio + ((loc_q - loc_p) / scale_p).square() - 1 - ratio.log())

    state = torch.get_rng_state()
    torch.manual_seed(0)
    with torch.no_grad():
        q = model.encode(x)
        if isinstance(q, LadderPosterior):
            z2 = q.sample((draws,))[..., q.bottom_dim :]
            loc_p, scale_p = q.top_down(z2)
            layers = {
                "z1": unit_kl(*merge(q.loc1, q.scale1, loc_p, scale_p), loc_p, scale_p).mean((0, 1)),
                "z2": unit_kl(q.loc2, q.scale2, torch.zeros_like(q.loc2), torch.ones_like(q.scale2)).mean(0),
            }
        else:
            loc, scale = q.base_dist.loc, q.base_dist.scale
            layers = {"z1": unit_kl(loc, scale, torch.zeros_like(loc), torch.ones_like(scale)).mean(0)}
    torch.set_rng_state(state)
    result: dict = {}
    for layer, kl in layers.items():
        result[f"kl_{layer}"] = kl.sum().item()
        result[f"active_{layer}"] = int((kl > 0.1).sum())
        result[f"kl_per_unit_{layer}"] = [round(v, 3) for v in kl.sort(descending=True).values.tolist()]
    return result


def trained(run: Path, epochs: int) -> bool:
    """Whether ``run`` is a finished run folder of at least ``epochs`` epochs."""
    summary = run / "summary.json"
    return summary.exists() and json.loads(summary.read_text())["epochs_trained"] >= epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/ladder")
    parser.add_argument("--runs-dir", default="runs/ladder-bench")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["vae", "ladder"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument(
        "--extend-from",
        default=None,
        help="a runs dir of the same arms with fewer epochs: copy each run and continue it to --epochs",
    )
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--data-dir", default="/usr/share/datasets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from vaekit import data, io
    from vaekit.evaluation import log_likelihood

    out, runs = Path(args.out), Path(args.runs_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    test = data.load("fashion-mnist", "test", data_dir=args.data_dir).x[: args.test_examples]
    test = torch.bernoulli(test, generator=torch.Generator().manual_seed(0))
    common = [
        "--data",
        "fashion-mnist",
        "--data-dir",
        args.data_dir,
        "--train-size",
        str(args.train_size),
        "--epochs",
        str(args.epochs),
        "--warmup-epochs",
        str(args.warmup_epochs),
        "--hidden",
        "256",
        "256",
        "--eval-num-samples",
        "1",
        "--no-progress",
        "--threads",
        "1",
        "--runs-dir",
        str(runs),
    ]
    for seed in args.seeds:
        for arm in args.arms:
            flags = ARMS[arm]
            point = out / "points" / f"{arm}-seed{seed}.json"
            if point.exists():
                continue
            name = f"{arm}-seed{seed}"
            command = ["vaekit", "train", *flags, *common, "--seed", str(seed), "--name", name]
            resume = [
                "vaekit",
                "train",
                "--resume",
                str(runs / name),
                "--epochs",
                str(args.epochs),
                "--no-progress",
                "--threads",
                "1",
                "--trust-code",
            ]
            shorter = Path(args.extend_from or runs) / name
            if not trained(runs / name, args.epochs):
                if (runs / name / "checkpoint").exists():  # a stopped run continues bit-identically
                    subprocess.run(resume, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                elif args.extend_from and trained(shorter, 1):  # continue the shorter run to --epochs
                    shutil.copytree(shorter, runs / name)
                    subprocess.run(resume, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                    command = [*command, "# continued from", str(shorter), "with:", *resume]
                else:
                    shutil.rmtree(runs / name, ignore_errors=True)
                    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            model = io.load(runs / name, trust_code=True)
            model.eval()
            with torch.no_grad():
                ll = (
                    log_likelihood(
                        model, test, num_samples=args.num_samples, generator=torch.Generator().manual_seed(seed)
                    )
                    .mean()
                    .item()
                )
            summary = json.loads((runs / name / "summary.json").read_text())
            record = {
                "arm": arm,
                "seed": seed,
                "log_likelihood": ll,
                "test_elbo_full": summary["test"]["elbo"],
                "training_time_s": summary["training_time_s"],
                "command": " ".join(command),
                "latent_use": latent_use(model, test),
            }
            tmp = point.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1))
            tmp.replace(point)
            print(json.dumps(record), flush=True)
    for path in sorted((out / "points").glob("*.json")):  # points written before latent_use was recorded
        record = json.loads(path.read_text())
        if "latent_use" not in record and (runs / path.stem / "model.safetensors").exists():
            record["latent_use"] = latent_use(io.load(runs / path.stem, trust_code=True).eval(), test)
            path.with_suffix(".tmp").write_text(json.dumps(record, indent=1))
            path.with_suffix(".tmp").replace(path)
    points = [json.loads(p.read_text()) for p in sorted((out / "points").glob("*.json"))]
    table = {
        arm: mean_interval([p["log_likelihood"] for p in points if p["arm"] == arm])
        for arm in ARMS
        if any(p["arm"] == arm for p in points)
    }
    by = {(p["arm"], p["seed"]): p["log_likelihood"] for p in points}
    paired = {}  # each arm against the flat VAE; each BN arm also against the flat VAE with BN and itself without
    for arm in table:
        for base in dict.fromkeys(("vae", "vae-bn", arm.replace("-bn", ""))) if "-bn" in arm else ("vae",):
            diffs = [by[arm, s] - by[base, s] for s in args.seeds if (arm, s) in by and (base, s) in by]
            if arm != base and diffs:
                paired[f"{arm}_minus_{base}"] = mean_interval(diffs) if len(diffs) > 1 else diffs
    result = {
        "settings": vars(args),
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python " + " ".join(sys.argv),
        "log_likelihood": table,
        **paired,
        "units": "nats per test example (IS, K = num_samples), higher is better",
    }
    (out / "ladder_vs_vae.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
