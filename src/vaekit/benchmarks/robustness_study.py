"""Why do small images behave differently? A study of the robustness benchmark's settings.

For each variant (likelihood scale ν, probe features, ρ, latent size, training budget) a VAE and
an AVAE are trained with otherwise equal settings and the digit probe (raw and standardised
encoder means) is attacked over an ε sweep. Runs that a variant leaves unchanged are reused (the
VAE does not depend on ρ). Writes study.json and study.md.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .. import io
from ..evaluation.runs import robustness_of_run
from .robustness import DEFAULT_EPSILONS, _train, base_config

#: variant name -> changes to the benchmark's base config.
VARIANTS = {
    "base": {},
    "ν = 0.5 (official, std 0.707)": {"likelihood_scale": math.sqrt(0.5)},
    "ν = 0.02 (std 0.141)": {"likelihood_scale": math.sqrt(0.02)},
    "ν = 0.01 (std 0.1)": {"likelihood_scale": 0.1},
    "ρ = 0.9": {"rho": 0.9},
    "latent 16": {"latent_dim": 16},
    "2× epochs": {"epochs": None},  # filled in: twice the base epochs
    "ρ = 0.99": {"rho": 0.99},
}


def run_study(
    data: str = "color-digits",
    out_dir="benchmarks/results/robustness-study",
    variants=tuple(VARIANTS),
    epsilons=DEFAULT_EPSILONS,
    num_steps: int = 20,
    max_test: int | None = 1000,
    seed: int = 0,
    label: str = "digit",
    progress: bool = False,
    log=print,
    **overrides,
) -> dict:
    """Train VAE and AVAE per variant and report the ``label`` probe's PGD accuracy (%) per ε,
    for raw and standardised probe features, with clean MSE and training times.

    Returns:
        ``{"rows": [...], "markdown": str}``; also written to ``out_dir``.
    """
    out = Path(out_dir)
    base = base_config(data, seed=seed, **overrides)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown study variants {unknown}; choose from {list(VARIANTS)}")
    started, done, rows = time.perf_counter(), {}, []
    for variant in variants:
        changes = dict(VARIANTS[variant])
        if "epochs" in changes:
            changes["epochs"] = 2 * base.train.epochs  # was base.epochs: an AttributeError (found by mypy)
        for model in ("vae", "avae"):
            # the VAE's objective does not read ρ (a config refuses it): its ρ variants reuse its base run
            config = base.replace(model=model, **{k: v for k, v in changes.items() if model == "avae" or k != "rho"})
            key = json.dumps(config.to_flat(), sort_keys=True)
            if key not in done:
                run_dir = out / "runs" / f"{model}-{len(done)}"
                if _finished(run_dir, config):
                    log(f"[{time.perf_counter() - started:6.0f}s] {variant}: reusing {run_dir}")
                else:
                    log(f"[{time.perf_counter() - started:6.0f}s] {variant}: training {model}")
                    _train(config, run_dir, progress)
                done[key] = _evaluate(run_dir, epsilons, num_steps, label, max_test, seed)
            for std, result in done[key].items():
                rows.append(
                    {
                        "variant": variant,
                        "model": model,
                        "probe": "standardised" if std else "raw",
                        "pgd": {e: 100 * a for e, a in result["probe"][label]["pgd"].items()},
                        "mse_per_example": result.get("mse_per_example", result.get("mse_per_image")),
                        "training_time_s": result["training_time_s"],
                    }
                )
            markdown = study_markdown(rows, epsilons, label)  # written after every run: partial results survive
            io.write_json(out / "study.json", {"config": base.to_flat(), "rows": rows, "markdown": markdown})
            io.atomic_write(out / "study.md", markdown)
    return {"rows": rows, "markdown": markdown}


def _evaluate(run_dir: Path, epsilons, num_steps, label, max_test, seed) -> dict:
    """Raw- and standardised-probe results of one run, cached in ``run_dir/study-evaluation.json``."""
    cache = run_dir / "study-evaluation.json"
    settings = [list(epsilons), num_steps, label, max_test, seed]
    if cache.is_file() and (cached := io.read_json(cache))["settings"] == settings:
        return {s == "True": r for s, r in cached["results"].items()}
    run = io.load_run(run_dir)
    results = {
        std: robustness_of_run(
            *run,
            epsilons,
            num_steps,
            labels=[label],
            consistency_steps=0,
            standardize=std,
            with_fid=False,
            max_test=max_test,
            seed=seed,
            attacks=("pgd",),
            with_smoothness=False,
        )
        for std in (False, True)
    }
    io.write_json(cache, {"settings": settings, "results": {str(k): v for k, v in results.items()}})
    return results


def _finished(run_dir: Path, config) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly ``config`` (so a restarted study reuses it)."""
    if not (run_dir / "summary.json").is_file():
        return False
    return io.load_record(run_dir)["config"] == json.loads(json.dumps(config.to_dict()))


def study_markdown(rows: list[dict], epsilons, label: str) -> str:
    """One line per (variant, model, probe): accuracy (%) per ε, MSE per image, training seconds."""
    header = ["variant", "model", "probe"] + [f"{label} ε={e:g}" for e in epsilons] + ["MSE/image", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["variant"], r["model"], r["probe"]] + [f"{v:.1f}" for v in r["pgd"].values()]
        cells += [f"{r['mse_per_example']:.2f}", f"{r['training_time_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
