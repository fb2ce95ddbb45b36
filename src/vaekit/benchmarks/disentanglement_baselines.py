"""The baseline rows of ``vaekit benchmark disentanglement``: raw pixels, PCA, FastICA and the
untrained VAE encoder (:mod:`vaekit.evaluation.disentanglement.baselines`), scored by the same
metrics, metric seed, numbers of points and factor grid as the trained models, so a reader can tell
where a model's score sits between "no learning" and the paper's numbers (Higgins et al. 2017,
fig. 6 reports the same four baselines).

Random baselines (ICA, the untrained encoder) run once per benchmark seed; the deterministic ones
(raw pixels, PCA) once. Every (baseline, seed) result is cached in ``OUT/baselines/<name>-seed<k>.json``
with its settings, so a rerun only computes what is missing or changed.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import io
from ..data.splits import load_dataset
from ..evaluation.disentanglement import METRICS, evaluate_disentanglement, headline
from ..evaluation.disentanglement.baselines import (
    BASELINES,
    PUBLISHED_BETA_VAE_SCORE,
    baseline_codes,
)
from .sweeps.results import summarize

#: Metrics left out per baseline, with the reason printed under the table. DCI fits one
#: gradient-boosted classifier (100 trees) per factor on every code dimension: on the 1,024 raw
#: pixels of a 32×32 image that is ~100× the cost of a 10-dimensional code (211 s on the shared
#: cores), about 6 hours.
SKIPPED = {
    "raw-pixels": {
        "dci": "DCI not run on raw pixels: gradient boosting over 1,024 pixel features is ~100× "
        "the cost of a 10-dimensional code (211 s on the benchmark machine), about 6 hours"
    }
}


def baseline_seeds(name: str, seeds) -> tuple[int, ...]:
    """The seeds a baseline runs with: all of ``seeds`` when it is random, else the first."""
    seeds = tuple(int(s) for s in seeds)
    return seeds if BASELINES[name].random else seeds[:1]


def _settings(name: str, config, seed: int, dci: dict) -> dict:
    return {
        "baseline": name,
        "seed": seed,
        "metric_seed": 0,
        "metrics": [m for m in METRICS if m not in SKIPPED.get(name, {})],
        "dci": dci,
        "latent_dim": config.model.latent_dim,
        "data": config.data.name,
        "image_size": config.data.image_size,
        "grid_step": config.data.grid_step,
        "model": config.model.name,
        "channels": list(config.model.channels),
        "hidden": list(config.model.hidden),
        **({"fitted_on": "training pixels that vary"} if name in ("pca", "ica") else {}),
    }


def cached_result(name: str, config, seed: int, dci: dict, folder) -> dict | None:
    """The cached report of :func:`evaluate_baseline` with these settings, or None."""
    path = Path(folder) / f"{name}-seed{seed}.json"
    if path.is_file() and (cached := io.read_json(path)).get("settings") == _settings(name, config, seed, dci):
        return cached
    return None


def evaluate_baseline(name: str, config, seed: int, dci: dict, folder) -> dict:
    """Metrics of baseline ``name`` with ``seed`` on ``config``'s factor grid (fits on its training
    split), cached in ``folder/<name>-seed<seed>.json``; returns the cached report.

    Args:
        config: the benchmark's model config (:class:`vaekit.config.Config`): data, latent_dim,
            and the encoder of the untrained VAE.
        dci: the DCI numbers of points (``{"num_train": ..., "num_test": ...}``), as for the models.
    """
    settings = _settings(name, config, seed, dci)
    path = Path(folder) / f"{name}-seed{seed}.json"
    if (cached := cached_result(name, config, seed, dci, folder)) is not None:
        return cached
    metrics = settings["metrics"]
    test, train = load_dataset(config, "test"), load_dataset(config, "train")
    start = time.perf_counter()
    codes = baseline_codes(name, test, train.x, config.model.latent_dim, seed, config.model)
    codes_s = time.perf_counter() - start
    results = evaluate_disentanglement(None, test, tuple(metrics), seed=0, overrides={"dci": dci}, codes=codes)
    for result in results.values():
        result.pop("score_matrix", None)  # (pixels, factors) for raw pixels: kept out of the committed JSON
    report = {
        "settings": settings,
        "description": BASELINES[name].description,
        "code_dim": int(codes.shape[1]),
        "codes_s": codes_s,
        "metrics": results,
        "headline": headline(results),
        "skipped": SKIPPED.get(name, {}),
    }
    io.write_json(path, report)
    return report


def baseline_rows(
    config,
    names=tuple(BASELINES),
    seeds=(0, 1, 2, 3, 4),
    dci: dict | None = None,
    folder="baselines",
    log=print,
    cached_only: bool = False,
) -> dict:
    """Rows of the benchmark's tables for ``names``: per baseline its seeds, every seed's headline
    metrics and their :func:`~vaekit.benchmarks.sweeps.results.summarize` over seeds (the shape of
    :func:`vaekit.benchmarks.disentanglement.collect`'s rows), plus ``description``, ``skipped`` and
    ``published_beta_vae_score`` (Higgins et al. 2017).

    Seeds run in the outer loop (seed 0 of every baseline first), so a stopped run has every
    baseline; ``cached_only`` computes nothing and reports the (baseline, seed) results already in
    ``folder`` (a baseline with none is left out).

    Raises:
        ValueError: unknown baseline names.
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    done: dict[str, dict] = {name: {} for name in names}
    for seed in sorted(set(int(s) for s in seeds), key=list(seeds).index):
        for name in names:
            if seed not in baseline_seeds(name, seeds):
                continue
            if cached_only:
                cached = cached_result(name, config, seed, dci or {}, folder)
                if cached is not None:
                    done[name][seed] = cached
                continue
            log(f"baseline {name} seed {seed}")
            done[name][seed] = evaluate_baseline(name, config, seed, dci or {}, folder)
    rows = {}
    for name, per_seed in done.items():
        if not per_seed:
            continue
        reports = [per_seed[s] for s in sorted(per_seed)]
        keys = list(reports[0]["headline"])
        rows[name] = {
            "kind": "baseline",
            "description": BASELINES[name].description,
            "seeds": sorted(per_seed),
            "code_dim": reports[0]["code_dim"],
            "skipped": reports[0]["skipped"],
            "published_beta_vae_score": PUBLISHED_BETA_VAE_SCORE.get(name),
            "per_seed": {str(s): per_seed[s]["headline"] for s in sorted(per_seed)},
            "aggregate": {k: summarize([r["headline"][k] for r in reports]) for k in keys},
        }
    return rows
