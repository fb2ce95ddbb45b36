"""The robustness benchmark of the AVAE paper (Cemgil et al., NeurIPS 2020, table 2, ColorMNIST).

Trains VAE, SE (ε 0.1, 0.2), AVAE, SE + AVAE (ε 0.1, 0.2) and AVAE-SS with one architecture,
budget and seed, and reports for each the accuracy of a linear probe on the encoder mean for every
label, clean and under PGD (L∞, 20 steps), the consistency of iterated forward passes, the test
reconstruction MSE, a classifier-feature FID (not Inception FID) and the training time relative
to the VAE. Writes results.json, results.md and PNG figures.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from .. import io, runtime
from ..config import Config
from ..data import splits
from ..evaluation.consistency import iterate
from ..evaluation.fid import FeatureNet, fit_feature_net
from ..evaluation.runs import robustness_of_run, seeded_subset
from ..reporting.outputs import write_outputs
from ..run import train
from ..runtime.progress import track

#: The paper's ColorMNIST table (Cemgil et al. 2020, table 2): accuracies in %, time relative to the
#: VAE, MSE in the paper's unit (not stated there), FID on Inception features.
PAPER_TABLE = {
    "VAE": [93.8, 5.8, 0.0, 100.0, 19.9, 2.0, 1.0, 1369.2, 12.44],
    "SE 5 steps, ε 0.1": [94.3, 89.6, 1.8, 100.0, 100.0, 21.8, 4.0, 1372.5, 13.01],
    "SE 5 steps, ε 0.2": [95.7, 92.6, 87.3, 100.0, 99.9, 99.9, 4.0, 1374.9, 11.72],
    "AVAE": [97.3, 88.1, 54.8, 100.0, 99.8, 87.7, 1.5, 1371.9, 15.46],
    "SE 0.1 + AVAE": [97.4, 93.6, 24.5, 100.0, 100.0, 60.0, 4.7, 1373.3, 13.90],
    "SE 0.2 + AVAE": [97.6, 94.2, 79.8, 100.0, 100.0, 83.2, 4.7, 1374.3, 13.89],
    "AVAE SS": [94.1, 72.8, 20.8, 100.0, 99.6, 56.8, 1.5, 1379.3, 12.44],
}

#: Table rows: name -> changes to the shared base config ("init" of AVAE SS is filled in with the VAE run).
ROWS = {
    "VAE": {"model": "vae"},
    "SE 5 steps, ε 0.1": {"model": "se", "epsilon": 0.1, "num_steps": 5},
    "SE 5 steps, ε 0.2": {"model": "se", "epsilon": 0.2, "num_steps": 5},
    "AVAE": {"model": "avae"},
    "SE 0.1 + AVAE": {"model": "se-avae", "epsilon": 0.1, "num_steps": 5},
    "SE 0.2 + AVAE": {"model": "se-avae", "epsilon": 0.2, "num_steps": 5},
    "AVAE SS": {"model": "avae-ss"},
}

#: Base settings per dataset, chosen by the study in docs/readme/robustness.md: the official 4x200
#: ReLU MLPs, sigmoid mean and ρ = 0.975, with a Gaussian variance ν scaled to the image size. The
#: official ν = 0.5 is for 28x28x3 images (2,352 values); at 8x8x3 (192 values) the same balance of
#: reconstruction against the KL and coupling terms is ν = 0.5 · 192/2352 ≈ 0.04 (std 0.2). With
#: ν = 0.5 the code collapses to colour. Latent 64 as in the official code; Adam 1e-3 and 20
#: epochs keep the budget small.
BASE = {
    "color-digits": dict(
        net="mlp",
        hidden=(200, 200, 200, 200),
        latent_dim=64,
        likelihood="gaussian",
        likelihood_scale=0.2,
        decoder_activation="sigmoid",
        lr=1e-3,
        batch_size=64,
        rho=0.975,
        epochs=20,
        eval_num_samples=100,
    ),
    "color-mnist": dict(
        net="mlp",
        hidden=(200, 200, 200, 200),
        latent_dim=64,
        likelihood="gaussian",
        likelihood_scale=math.sqrt(0.5),
        decoder_activation="sigmoid",
        lr=1e-3,
        batch_size=64,
        rho=0.975,
        epochs=10,
        eval_num_samples=100,
    ),
}
BASE["color-mnist-full"] = BASE["color-mnist"]
DEFAULT_EPSILONS = (0.0, 0.02, 0.05, 0.1, 0.2)


def base_config(data: str = "color-digits", **overrides) -> Config:
    """The shared config of every row for ``data`` (see :data:`BASE`), with ``overrides`` applied."""
    values = {**BASE.get(data, BASE["color-digits"]), "data": data, **overrides}
    return Config.from_flat(**values)


def _train(config: Config, run_dir: Path, progress: bool) -> None:
    train(config, io.RunFolder(run_dir, overwrite=True), progress=progress, outputs=[write_outputs])


def table_rows(results: dict, labels: tuple[str, str], epsilons=(0.1, 0.2)) -> dict[str, list[float]]:
    """Rows of the paper's table from :func:`~vaekit.evaluation.runs.robustness_of_run` results: per label clean and PGD
    accuracies (%), training CPU time relative to the VAE, MSE per image, FID."""
    vae_time = results["VAE"]["training_cpu_time_s"]
    rows = {}
    for name, r in results.items():
        row = []
        for label in labels:
            row += [100 * r["probe"][label]["clean"]] + [100 * r["probe"][label]["pgd"][f"{e:g}"] for e in epsilons]
        row += [r["training_cpu_time_s"] / vae_time, r["mse_per_example"], r.get("fid", math.nan)]
        rows[name] = row
    return rows


def markdown_table(rows: dict[str, list[float]], labels: tuple[str, str], epsilons=(0.1, 0.2)) -> str:
    """The rows as a Markdown table in the paper's layout."""
    header = ["model"] + [h for label in labels for h in [f"{label} ε=0"] + [f"{e:g}" for e in epsilons]]
    header += ["time", "MSE/image", "FID*"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [f"{v:.1f}" for v in row[:-3]] + [f"×{row[-3]:.2f}", f"{row[-2]:.2f}", f"{row[-1]:.2f}"]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines) + "\n"


def run_name(row: str) -> str:
    """The run folder name of a table row, e.g. "SE 0.1 + AVAE" -> "se-0.1-plus-avae"."""
    return row.lower().replace(" ", "-").replace(",", "").replace("+", "plus").replace("ε", "eps")


def _run_row(config_values: dict, run_dir: str, eval_kwargs: dict, feature_net_path: str, progress: bool) -> dict:
    """Train one row and evaluate it (a top-level function, so worker processes can run it)."""
    runtime.one_thread()  # and the policy of each fit
    config = Config.from_dict(config_values)
    train_set = splits.load_dataset(config, "train")
    net = FeatureNet(train_set.data_shape, {k: int(v.max()) + 1 for k, v in train_set.labels.items()})
    io.load_weights(net, feature_net_path)
    _train(config, Path(run_dir), progress)
    return robustness_of_run(*io.load_run(run_dir), feature_net=net.eval(), **eval_kwargs)


def run_benchmark(
    data: str = "color-digits",
    out_dir="benchmarks/results/robustness",
    epsilons=DEFAULT_EPSILONS,
    num_steps: int = 20,
    norm: str = "linf",
    max_test: int | None = None,
    seed: int = 0,
    rows=tuple(ROWS),
    progress: bool = False,
    log=print,
    jobs: int = 1,
    **overrides,
) -> dict:
    """Train every row of :data:`ROWS` with one base config and write the table and figures.

    Args:
        data: "color-digits", "color-mnist" (offline) or "color-mnist-full" (needs the MNIST files).
        out_dir: folder for ``runs/``, ``results.json``, ``results.md``, ``accuracy_bars.png``,
            ``accuracy_vs_epsilon.png`` and ``consistency.png``.
        epsilons: radii of the ε sweep (the table shows 0.1 and 0.2 when present).
        rows: subset of :data:`ROWS` ("VAE" is always trained: times are relative to it).
        jobs: rows trained at once in worker processes of one thread each (1 = in this process).
            Training times are CPU seconds of each worker, so they stay comparable.
        **overrides: changes to :func:`base_config` (e.g. ``epochs=20``).

    Returns:
        ``{"config": ..., "results": {row: robustness_of_run(...)}, "table": rows, "markdown": str}``.
    """
    out = Path(out_dir)
    base = base_config(data, seed=seed, **overrides)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown benchmark rows {unknown}; choose from {list(ROWS)}")
    rows = ["VAE"] + [r for r in rows if r != "VAE"]
    train_set = splits.load_dataset(base, "train")
    labels = tuple(train_set.labels)[:2]
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    net_path = out / "fid-feature-net.safetensors"
    io.save_weights(fit_feature_net(train_set.x, train_set.labels, seed=seed), net_path)
    run_dirs = {name: out / "runs" / run_name(name) for name in rows}
    eval_kwargs = dict(epsilons=epsilons, num_steps=num_steps, norm=norm, labels=labels, max_test=max_test, seed=seed)

    def job(name):
        changes = dict(ROWS[name]) | ({"init": str(run_dirs["VAE"])} if ROWS[name]["model"] == "avae-ss" else {})
        log(f"[{time.perf_counter() - started:6.0f}s] training and evaluating {name}")
        return (base.replace(**changes).to_flat(), str(run_dirs[name]), eval_kwargs, str(net_path), progress)

    first, later = (
        [r for r in rows if ROWS[r]["model"] != "avae-ss"],
        [r for r in rows if ROWS[r]["model"] == "avae-ss"],
    )
    if jobs <= 1:
        results = {name: _run_row(*job(name)) for name in track(first + later, "benchmark robustness", "row")}
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {name: pool.submit(_run_row, *job(name)) for name in first}
            futures["VAE"].result()  # AVAE SS refines the trained VAE
            futures.update({name: pool.submit(_run_row, *job(name)) for name in later})
            results = {name: futures[name].result() for name in track(rows, "benchmark robustness", "row")}
    log(f"[{time.perf_counter() - started:6.0f}s] done")
    shown = tuple(e for e in (0.1, 0.2) if e in epsilons)
    table = table_rows(results, labels, shown)
    markdown = markdown_table(table, labels, shown)
    report = {
        "config": base.to_flat(),
        "labels": labels,
        "results": results,
        "table": table,
        "markdown": markdown,
        "paper_table": PAPER_TABLE,
        "jobs": jobs,
        "wall_time_s": time.perf_counter() - started,
    }
    io.write_json(out / "results.json", report)
    io.atomic_write(out / "results.md", markdown)
    write_figures(results, run_dirs, labels, out, max_test, seed)
    return report


def write_figures(results: dict, run_dirs: dict, labels, out: Path, max_test=None, seed: int = 0) -> None:
    """accuracy_bars.png (clean and PGD per label and ε), accuracy_vs_epsilon.png (first label),
    consistency.png (iterates of a few test images, VAE beside AVAE)."""
    from ..reporting import plots_robustness

    bars = {
        name: {
            f"{label} ε={eps}": 100 * (r["probe"][label]["clean"] if eps == "0" else r["probe"][label]["pgd"][eps])
            for label in labels
            for eps in r["probe"][label]["pgd"]
        }
        for name, r in results.items()
    }
    plots_robustness.accuracy_bars(bars, out / "accuracy_bars.png", "linear-probe accuracy, clean and under L∞ PGD")
    curves = {
        name: {eps: 100 * acc for eps, acc in r["probe"][labels[0]]["pgd"].items()} for name, r in results.items()
    }
    plots_robustness.accuracy_curves(curves, out / "accuracy_vs_epsilon.png", f"{labels[0]} probe under L∞ PGD")
    shown = [n for n in ("VAE", "AVAE") if n in run_dirs]
    models = {n: io.load(run_dirs[n]) for n in shown}
    test = seeded_subset(splits.load_dataset(io.load_config(run_dirs[shown[0]]), "test"), max_test, seed)
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:6]
    plots_robustness.iterates_figure(
        {n: iterate(m, test.x[pick], 10) for n, m in models.items()}, out / "consistency.png"
    )
