"""``vaekit benchmark anomaly``: VAE anomaly scores against standard detectors, same splits, same run.

Protocols:

* **digits** (An & Cho 2015, sec. 4.1, on MNIST; here scikit-learn's 8x8 digits): each digit
  class in turn is the anomaly. The detector is trained on the other nine classes of the fixed
  training split and scores the whole test split (360 images, ~36 of them anomalous).
* **breast-cancer** (WDBC): trained on the benign rows of the fixed training split, scores the
  test split (72 benign, 42 malignant); malignant is the anomaly.

Methods: the VAE (:class:`vaekit.AnomalyDetector`, every score of
:data:`vaekit.evaluation.anomaly.SCORES` from one trained model), and scikit-learn's
IsolationForest, LocalOutlierFactor(novelty=True), OneClassSVM (defaults) and PCA reconstruction
error (components keeping 90% of the variance). Digits: raw pixels in [0, 1] for every method.
Breast cancer: every baseline sees features standardised on the training rows; the VAE
standardises them itself. Metrics: AUROC and average precision with the anomaly as the positive
class (score = minus the normality score), per task and averaged over tasks; stochastic methods
(VAE, IsolationForest) are averaged over seeds.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from .. import data
from ..detectors.anomaly import AnomalyDetector
from ..evaluation.anomaly import SCORES
from ..training.progress import track

#: VAE options per data set (:class:`vaekit.AnomalyDetector` model options), chosen on an inner
#: validation split of the training split (see docs/readme/anomaly.md), never on the test split.
VAE_OPTIONS = {
    "digits": {"latent_dim": 4, "hidden": (256, 256), "epochs": 100, "likelihood": "gaussian",
               "likelihood_scale": 0.1, "batch_size": 64},
    "breast-cancer": {"latent_dim": 4, "hidden": (64, 64), "epochs": 200, "likelihood": "gaussian",
                      "likelihood_scale": "learned", "batch_size": 32},
}
#: The VAE score the target is about (An & Cho 2015).
PRIMARY = "vae: reconstruction_probability"
FPR_GRID = np.linspace(0.0, 1.0, 201)


@dataclasses.dataclass(frozen=True)
class Args:
    """Benchmark VAE anomaly scores against IsolationForest, LOF, OneClassSVM and PCA on digits and breast cancer."""

    output_dir: str = "benchmarks/results/anomaly"
    """Folder for anomaly.md, anomaly.json and roc.png."""
    datasets: tuple[str, ...] = ("digits", "breast-cancer")
    """Data sets to run (digits, breast-cancer)."""
    classes: tuple[int, ...] = tuple(range(10))
    """Digit classes to use as the anomaly, one task each."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the stochastic methods (VAE, IsolationForest); results are averaged over them."""
    epochs: int = 0
    """Override the VAE's training epochs (0 = the per-data-set default)."""
    progress: bool = True
    """Show progress (a bar on a terminal, else a line per task or per 10 s)."""
    quiet: bool = False
    """No progress output."""


@dataclasses.dataclass
class Task:
    """One train/test problem: normal training data, test data, and which test rows are anomalies."""

    dataset: str
    name: str
    train: torch.Tensor
    test: torch.Tensor
    is_anomaly: np.ndarray


def digit_tasks(classes) -> list[Task]:
    """One task per anomaly class k: train on the training-split images of the other classes."""
    train, test = data.load("digits", "train"), data.load("digits", "test")
    y_train, y_test = train.labels["digit"], test.labels["digit"].numpy()
    for k in classes:
        if not 0 <= k <= 9:
            raise ValueError(f"digit classes are 0-9, got {k}")
    return [Task("digits", str(k), train.x[y_train != k], test.x, y_test == k) for k in classes]


def breast_cancer_tasks() -> list[Task]:
    """Train on benign training rows; the test split's malignant rows are the anomalies."""
    train, test = data.load("breast-cancer", "train"), data.load("breast-cancer", "test")
    benign = train.labels["malignant"] == 0
    return [Task("breast-cancer", "malignant", train.x[benign], test.x, test.labels["malignant"].numpy() == 1)]


TASKS: dict[str, Callable[[Args], list[Task]]] = {
    "digits": lambda args: digit_tasks(args.classes),
    "breast-cancer": lambda args: breast_cancer_tasks(),
}


def _pca_error(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """Minus the squared reconstruction error of PCA keeping 90% of the training variance."""
    pca = PCA(n_components=0.9, random_state=seed).fit(train)
    return -((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(1)


#: baseline name -> (train (N, D), test (M, D), seed) -> normality scores (M,), higher = more normal
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "IsolationForest": lambda tr, te, seed: IsolationForest(random_state=seed).fit(tr).score_samples(te),
    "LocalOutlierFactor": lambda tr, te, seed: LocalOutlierFactor(novelty=True).fit(tr).score_samples(te),
    "OneClassSVM": lambda tr, te, seed: OneClassSVM().fit(tr).score_samples(te),
    "PCA reconstruction error": _pca_error,
}
#: Baselines whose result does not depend on the seed (run once).
DETERMINISTIC = ("LocalOutlierFactor", "OneClassSVM", "PCA reconstruction error")


def _baseline_inputs(task: Task) -> tuple[np.ndarray, np.ndarray]:
    train, test = task.train.flatten(1).double().numpy(), task.test.flatten(1).double().numpy()
    if task.dataset == "digits":
        return train, test
    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def task_scores(task: Task, args: Args) -> dict[str, list[np.ndarray]]:
    """Normality scores of the test rows: method -> one (M,) array per seed."""
    out: dict[str, list[np.ndarray]] = {}
    options = dict(VAE_OPTIONS[task.dataset], **({"epochs": args.epochs} if args.epochs else {}))
    for seed in args.seeds:
        detector = AnomalyDetector(seed=seed, **options).fit(task.train)
        for name in SCORES:
            out.setdefault(f"vae: {name}", []).append(detector.set_params(score=name).score_samples(task.test))
    train, test = _baseline_inputs(task)
    for name, fn in BASELINES.items():
        seeds = args.seeds[:1] if name in DETERMINISTIC else args.seeds
        out[name] = [fn(train, test, seed) for seed in seeds]
    return out


def metrics(is_anomaly: np.ndarray, scores: list[np.ndarray]) -> dict:
    """AUROC, AP (mean and std over seeds) and the seed-averaged ROC curve on :data:`FPR_GRID`."""
    auroc = [roc_auc_score(is_anomaly, -s) for s in scores]
    ap = [average_precision_score(is_anomaly, -s) for s in scores]
    tpr = [np.interp(FPR_GRID, *roc_curve(is_anomaly, -s)[:2]) for s in scores]
    return {"auroc": float(np.mean(auroc)), "auroc_std": float(np.std(auroc)), "ap": float(np.mean(ap)),
            "ap_std": float(np.std(ap)), "tpr": np.mean(tpr, 0)}


def run(args: Args) -> dict:
    """Run every task and method; returns {dataset: {method: {"tasks": {task: metrics}, "mean_auroc", "mean_ap"}}}."""
    unknown = sorted(set(args.datasets) - set(TASKS))
    if unknown or not args.datasets:
        raise ValueError(f"unknown data set(s) {unknown or '(none given)'}; choose from: {', '.join(TASKS)}")
    if not args.seeds:
        raise ValueError("give at least one seed")
    results: dict = {}
    for dataset in args.datasets:
        for task in track(TASKS[dataset](args), f"benchmark anomaly {dataset}", "task", enabled=args.progress):
            for method, scores in task_scores(task, args).items():
                entry = results.setdefault(dataset, {}).setdefault(method, {"tasks": {}})
                entry["tasks"][task.name] = metrics(task.is_anomaly, scores)
    for methods in results.values():
        for entry in methods.values():
            tasks = entry["tasks"].values()
            entry["mean_auroc"] = float(np.mean([t["auroc"] for t in tasks]))
            entry["mean_ap"] = float(np.mean([t["ap"] for t in tasks]))
            entry["mean_tpr"] = np.mean([t["tpr"] for t in tasks], 0)
    return results


def markdown(results: dict, args: Args) -> str:
    """One table per data set: AUROC per task, mean AUROC and mean AP, best mean in bold."""
    lines = []
    for dataset, methods in results.items():
        tasks = list(next(iter(methods.values()))["tasks"])
        best = max(m["mean_auroc"] for m in methods.values())
        lines += [f"**{dataset}** (AUROC per anomaly {'class' if dataset == 'digits' else 'label'}; "
                  f"mean over {len(tasks)} task(s); VAE and IsolationForest: mean of {len(args.seeds)} seed(s))", "",
                  "| method | " + " | ".join(tasks) + " | mean AUROC | mean AP |",
                  "|---|" + "---|" * (len(tasks) + 2)]
        for method, entry in methods.items():
            mean = f"{entry['mean_auroc']:.3f}"
            mean = f"**{mean}**" if entry["mean_auroc"] == best else mean
            cells = " | ".join(f"{entry['tasks'][t]['auroc']:.3f}" for t in tasks)
            lines.append(f"| {method} | {cells} | {mean} | {entry['mean_ap']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _jsonable(results: dict) -> dict:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in ("tpr", "mean_tpr")}
        return value
    return clean(results)


def write_report(results: dict, args: Args, seconds: float) -> list[Path]:
    """Write anomaly.md, anomaly.json and roc.png to ``args.output_dir``; returns the paths."""
    from ..io import atomic_write, write_json

    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    context = {"command": ("vaekit benchmark anomaly " + _flags(args)).strip(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {platform.system()}, torch {torch.__version__}, "
                          f"{torch.get_num_threads()} torch thread(s)", "time_s": round(seconds, 1),
               "vae_options": VAE_OPTIONS, "epochs_override": args.epochs, "seeds": list(args.seeds)}
    write_json(folder / "anomaly.json", {**context, "results": _jsonable(results)})
    header = f"Command: `{context['command']}` ({context['date']}; {context['machine']}; {seconds:.0f} s)\n\n"
    atomic_write(folder / "anomaly.md", header + markdown(results, args))
    panels = {f"{dataset} (mean over tasks)": {m: (FPR_GRID, e["mean_tpr"]) for m, e in methods.items()}
              for dataset, methods in results.items()}
    from ..reporting import plots

    plots.roc_curves(panels, folder / "roc.png")
    return [folder / "anomaly.md", folder / "anomaly.json", folder / "roc.png"]


def _flags(args: Args) -> str:
    default = Args()
    parts = []
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.name != "progress" and value != getattr(default, field.name):
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            parts.append(f"--{field.name.replace('_', '-')} {shown}")
    return " ".join(parts)


def run_cli(args: Args) -> None:
    """``vaekit benchmark anomaly``: run, write the report, print the tables."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = run(args)
    paths = write_report(results, args, time.perf_counter() - start)
    print(markdown(results, args))
    for dataset, methods in results.items():
        baseline = max((m for m in methods if not m.startswith("vae")), key=lambda m: methods[m]["mean_auroc"])
        ours, theirs = methods[PRIMARY]["mean_auroc"], methods[baseline]["mean_auroc"]
        verdict = "at least as high as" if ours >= theirs else "below"
        print(f"{dataset}: VAE reconstruction probability mean AUROC {ours:.3f} is {verdict} the best baseline "
              f"({baseline}, {theirs:.3f})")
    print("written: " + ", ".join(map(str, paths)))
