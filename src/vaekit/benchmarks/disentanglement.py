"""Disentanglement of a trained run (metrics + figures), and the benchmark that trains VAE,
β-VAE, β-TCVAE and the capacity-annealed β-VAE with one architecture and budget on dSprites.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .. import io, pipeline
from ..evaluation.kl import DIAGNOSTIC_POINTS, kl_decomposition
from ..config import Config
from ..data import dsprites
from ..data.base import TEST_FRACTION
from ..data.factors import grid_classes
from ..evaluation.disentanglement import METRICS, evaluate_disentanglement, grid_codes, headline
from ..training.progress import track

#: Published BetaVAE scores on dSprites (Higgins et al. 2017, table 1 / fig. 6).
PUBLISHED = {"vae": 0.6158, "beta-vae": 0.9923}

#: Benchmark models: name -> config changes on the shared base (one architecture and budget).
MODELS = {
    "vae": {"model": "vae", "beta": 1.0},
    "beta-vae": {"model": "vae", "beta": 4.0},
    "beta-tcvae": {"model": "betatc", "beta": 6.0},
    "capacity-vae": {"model": "vae", "beta": 1000.0, "capacity_max": 25.0},
}

#: The CPU default (about 30 minutes on 2 cores) and the paper-scale setting (--full, for a GPU).
SCALES = {
    "default": {"image_size": 32, "grid_step": 4, "epochs": 40, "batch_size": 64, "lr": 1e-3, "net": "mlp",
                "hidden": (512, 512), "dci": {"num_train": 1000, "num_test": 500}},
    "full": {"image_size": 64, "grid_step": 1, "epochs": 36, "batch_size": 64, "lr": 1e-4, "net": "conv",
             "hidden": (256,), "dci": {}},
}


def evaluate_run(run_dir, metrics=tuple(METRICS), seed: int = 0, num_train: int | None = None,
                 num_eval: int | None = None, overrides: dict | None = None, figures: bool = True,
                 output=None) -> dict:
    """Disentanglement metrics of a run on its dataset's factor grid, written to
    ``RUN/disentanglement.json``, with figures (traversals, KL per dimension, factor response).

    Raises:
        ValueError: the run was not trained on a dataset with ground-truth factors.
    """
    run_dir = Path(run_dir)
    model, config = io.load(run_dir), io.load_config(run_dir)
    dataset = pipeline.load_dataset(config, "test")
    codes = grid_codes(model, dataset)
    results = evaluate_disentanglement(model, dataset, metrics, seed, num_train, num_eval, overrides, codes=codes)
    report = {"run": str(run_dir), "data": config.data.name, "factor_sizes": list(dataset.factor_sizes),
              "factor_names": list(dataset.factor_names), "seed": seed, "metrics": results,
              "headline": headline(results)}
    if model.stochastic:
        report["kl"] = kl_decomposition(model, dataset.x[:DIAGNOSTIC_POINTS], seed=seed)
        report["kl"]["points"] = min(len(dataset.x), DIAGNOSTIC_POINTS)
        if figures:
            report["figures"] = [str(p) for p in write_figures(model, dataset, codes, report["kl"]["kl_per_dim"], run_dir)]
    io.write_json(Path(output) if output else run_dir / "disentanglement.json", report)
    return report


def write_figures(model, dataset, codes: np.ndarray, kl_per_dim, folder) -> list[Path]:
    """Latent traversals of one test image (rows sorted by KL), the KL per dimension bar chart,
    and the mean code of each latent against each factor, per shape."""
    from ..reporting import plots

    folder = Path(folder)
    z = model.transform(dataset.x[:1].to(next(model.parameters()).device))[0]
    order = list(np.argsort(-np.asarray(kl_per_dim)))
    return [plots.traversal_figure(model, z, kl_per_dim, folder / "traversals.png"),
            plots.kl_per_dim_bars(kl_per_dim, folder / "kl_per_dim.png"),
            plots.factor_response(codes, grid_classes(dataset.factor_sizes), dataset.factor_names,
                                  dataset.factor_values, folder / "factor_response.png", dims=order)]


def benchmark_configs(data: str = "dsprites-synthetic", data_dir: str = "data", full: bool = False,
                      seed: int = 0, latent_dim: int = 10, epochs: int | None = None) -> dict[str, Config]:
    """The four configs of the benchmark: same net, data, optimiser and budget; the capacity
    reaches 25 nats (Burgess et al. 2018, dSprites) after two thirds of the steps."""
    scale = SCALES["full" if full else "default"]
    epochs = epochs or scale["epochs"]
    base = Config.from_flat(data=data, data_dir=data_dir, image_size=scale["image_size"], grid_step=scale["grid_step"],
                  latent_dim=latent_dim, net=scale["net"], channels=(32, 32, 64, 64), hidden=scale["hidden"],
                  likelihood="bernoulli", binarize="none", epochs=epochs, batch_size=scale["batch_size"],
                  lr=scale["lr"], seed=seed, eval_num_samples=1)
    train_size = np.prod([len(k) for k in dsprites.grid(base.data.grid_step)]) * (1 - TEST_FRACTION) * (1 - base.data.val_fraction)
    steps = max(1, int(epochs * np.ceil(train_size / base.train.batch_size) * 2 / 3))
    return {name: base.replace(**changes, **({"capacity_steps": steps} if "capacity_max" in changes else {}))
            for name, changes in MODELS.items()}


def run_benchmark(out_dir, data: str = "dsprites-synthetic", data_dir: str = "data", full: bool = False,
                  seed: int = 0, epochs: int | None = None, models=tuple(MODELS), command: str = "",
                  progress: bool = False) -> dict:
    """Train and evaluate every benchmark model in ``out_dir/<model>``; write ``results.json``
    and ``results.md`` there and return the results."""
    out_dir = Path(out_dir)
    configs = benchmark_configs(data, data_dir, full, seed, epochs=epochs)
    unknown = sorted(set(models) - set(configs))
    if unknown:
        raise ValueError(f"unknown benchmark model(s) {unknown}; choose from {', '.join(configs)}")
    overrides = {"dci": SCALES["full" if full else "default"]["dci"]}
    rows = {}
    for name in track(models, "benchmark disentanglement", "model"):
        run_dir = pipeline.create_run_dir(out_dir, name, configs[name], overwrite=True)
        start = time.perf_counter()
        summary = pipeline.train_run(configs[name], run_dir, progress=progress)
        trained = time.perf_counter() - start
        report = evaluate_run(run_dir, seed=seed, overrides=overrides)
        rows[name] = {"config": configs[name].to_flat(), "headline": report["headline"], "kl": report["kl"],
                      "test_elbo": summary["test"]["elbo"], "train_s": trained,
                      "eval_s": time.perf_counter() - start - trained}
    results = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                          f"{torch.get_num_threads()} thread(s)",
               "scale": "full" if full else "default", "dci_points": overrides["dci"] or "reference",
               "published_beta_vae_score": PUBLISHED, "models": rows}
    io.write_json(out_dir / "results.json", results)
    io.atomic_write(out_dir / "results.md", markdown(results))
    return results


COLUMNS = [("beta_vae.eval_accuracy", "BetaVAE"), ("factor_vae.eval_accuracy", "FactorVAE"), ("mig.mig", "MIG"),
           ("dci.disentanglement", "DCI-D"), ("dci.completeness", "DCI-C"), ("dci.informativeness_test", "DCI-I"),
           ("sap.sap", "SAP")]


def markdown(results: dict) -> str:
    """The benchmark table as Markdown: metrics, test ELBO and the KL decomposition per model."""
    head = ["model", "β", *[c for _, c in COLUMNS], "test ELBO", "KL", "MI", "TC", "dim-KL", "train s"]
    lines = [f"Command: `{results['command']}`  ", f"Date: {results['date']}; machine: {results['machine']}  ",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["models"].items():
        kl = row["kl"]
        cells = [name, f"{row['config']['beta']:g}", *[f"{row['headline'][k]:.3f}" for k, _ in COLUMNS],
                 f"{row['test_elbo']:.1f}", f"{kl['kl']:.2f}", f"{kl['kl_mi']:.2f}", f"{kl['kl_tc']:.2f}",
                 f"{kl['kl_dimwise']:.2f}", f"{row['train_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Published BetaVAE score on dSprites (Higgins et al. 2017): β-VAE 0.9923, VAE 0.6158.",
              "KL terms: nats per example on test images (Chen et al. 2018 decomposition, exact mixture).", ""]
    return "\n".join(lines)
