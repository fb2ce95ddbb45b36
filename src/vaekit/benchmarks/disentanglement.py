"""The disentanglement benchmark: it trains VAE,
β-VAE, β-TCVAE, the capacity-annealed β-VAE, FactorVAE and DIP-VAE-I/II with one convolutional architecture and budget on
dSprites over >= 5 seeds, reported as distributions over seeds per model and metric (the
presentation of Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised
Learning of Disentangled Representations", sec. 5, fig. 7: the seed moves the scores as much as
the model does).

Every (model, seed) point is a normal run folder trained and evaluated by ``vaekit sweep``'s
engine (:func:`vaekit.benchmarks.sweeps.engine.run_sweep`): ``--jobs N`` at a time, resumable (finished
points are reused, killed ones resumed from their checkpoint). The metrics of one run are
:func:`vaekit.evaluation.runs.disentanglement_of_run` (``vaekit evaluate disentanglement``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .. import io
from ..config import Config
from ..data import dsprites
from ..data.base import TEST_FRACTION
from ..evaluation.disentanglement.baselines import BASELINES, PUBLISHED_BETA_VAE_SCORE
from .disentanglement_baselines import baseline_rows
from .sweeps.engine import run_and_collect
from .sweeps.points import finished_points, wall_time
from .sweeps.results import INTERVAL, per_seed_figure, summarize
from .sweeps.spec import SweepSpec

#: Published BetaVAE scores on dSprites (Higgins et al. 2017, fig. 6), models and baselines.
PUBLISHED = PUBLISHED_BETA_VAE_SCORE
PUBLISHED_SOURCE = (
    'Higgins et al. 2017, "β-VAE: Learning Basic Visual Concepts with a Constrained Variational '
    'Framework", ICLR, fig. 6 (BetaVAE-metric accuracy on dSprites, 64×64, full grid, one model per '
    "row), as quoted by seed 003"
)

#: Benchmark models: name -> config changes on the shared base (one architecture and budget).
MODELS = {
    "vae": {"model": "vae", "beta": 1.0},
    "beta-vae": {"model": "vae", "beta": 4.0},
    "beta-tcvae": {"model": "betatc", "beta": 6.0},
    "capacity-vae": {"model": "vae", "capacity_max": 25.0},  # beta (γ) from capacity_gamma(), per scale
    "factor-vae": {"model": "factorvae"},  # γ = 10 (Kim & Mnih 2018 sweep 10-100 on dSprites)
    "dip-vae-i": {"model": "dip-vae-i"},  # λ_od = 10, λ_d = 100 (Kumar et al. 2018, sec. 4: λ_d = 10 λ_od)
    "dip-vae-ii": {"model": "dip-vae-ii"},  # λ_od = λ_d = 10
}

#: Burgess et al. 2018's dSprites setting (sec. 5 and appendix A.1): γ = 1000 on 64×64 images,
#: C raised linearly from 0 to 25 nats over 100,000 iterations.
CAPACITY_PAPER = {"gamma": 1000.0, "pixels": 64 * 64, "steps": 100_000, "capacity_max": 25.0}


#: Margin on :func:`capacity_gamma` below the paper's budget (the CPU scale): at the scaled γ = 5.2, 1 of 5
#: seeds still collapsed, and half of it trained that seed (benchmarks/results/capacity-gamma-seed4/check.md).
SAFETY = 0.5


def capacity_gamma(pixels: int, steps: int) -> float:
    """γ of the capacity objective −E_q log p(x|z) + γ·|KL − C| for ``pixels`` values per image and
    an anneal of ``steps`` optimisation steps: Burgess et al.'s γ = 1000 (64×64, 100,000 steps)
    scaled by ``pixels / 4096 × min(1, steps / 100,000)``.

    Reasoning (issue 21). γ has two jobs. (1) It must bind the constraint: for KL < C the loss
    rewards each nat of KL by γ, for KL > C reconstruction must gain more than γ nats per nat of
    KL; any γ above the reconstruction's marginal gain at C does that (on the benchmark's 32×32
    dSprites the β = 1 VAE stops at KL ≈ 10.5 nats, where that gain is 1, so any γ > 1 pins KL to
    C ≤ 25). (2) It must not drown the reconstruction signal. Adam divides each update by the
    gradient's running magnitude; with γ large that magnitude is γ·∂KL, whose sign flips each time
    KL crosses C and so averages out, while the reconstruction gradient (a sum over the pixels,
    hence ∝ pixels) moves the weights by about lr·|∂ log p|/(γ|∂KL|) per step. What the encoder
    learns about x is that drift summed over the anneal: ∝ pixels × steps / γ. Keeping it at the
    paper's value gives γ ∝ pixels × steps. Longer anneals than the paper's keep its γ (the drift
    only grows). For the CPU benchmark (32×32, C → 25 over 2,080 steps) γ = 1000 × 1/4 × 0.0208
    ≈ 5.2; the paper's γ = 1000 left the conv net with index-code MI 0 in all 5 seeds, 5.2 in 1 of
    5, so the benchmark uses half of it (:data:`SAFETY`).

    Raises:
        ValueError: ``pixels`` or ``steps`` not positive.
    """
    if pixels <= 0 or steps <= 0:
        raise ValueError(f"capacity_gamma needs positive pixels and steps, got {pixels} and {steps}")
    paper = CAPACITY_PAPER
    return paper["gamma"] * pixels / paper["pixels"] * min(1.0, steps / paper["steps"])


#: The CPU default (about 45 minutes for 4 models × 5 seeds on 2 cores) and the paper-scale setting
#: (--full, for a GPU). Both use the convolutional encoder/decoder of Higgins et al. 2017 /
#: Locatello et al. 2019 (4×4 stride-2 convolutions with 32, 32, 64, 64 channels down to a 4-pixel
#: map — the first three at 32×32 — and a 256-unit dense layer); the CPU default trains on 32×32
#: images of every 4th orientation and position (8,294 training images, 24 epochs: about 3,100
#: steps of 64, against Locatello's 300,000).
SCALES = {
    "default": {
        "image_size": 32,
        "grid_step": 4,
        "epochs": 24,
        "batch_size": 64,
        "lr": 1e-3,
        "net": "conv",
        "hidden": (256,),
        "dci": {"num_train": 1000, "num_test": 500},
    },
    "full": {
        "image_size": 64,
        "grid_step": 1,
        "epochs": 36,
        "batch_size": 64,
        "lr": 1e-4,
        "net": "conv",
        "hidden": (256,),
        "dci": {},
    },
}
SEEDS = (0, 1, 2, 3, 4)

#: Settings added after the committed rows (2026-12-02/04) were trained, with the value an earlier
#: ``results.json`` without them means: ``options`` (per-model options, none then) and
#: ``fused_optimizer`` (issue 32; before it, the foreach Adam step, as :func:`vaekit.io.load_config`
#: reads old run folders). The benchmark keeps ``fused_optimizer=False`` so that models added later
#: train with the same step and the earlier rows stay comparable (:func:`kept_rows`).
LATER_SETTINGS = {"options": None, "fused_optimizer": False}


def benchmark_configs(
    data: str = "dsprites-synthetic",
    data_dir: str = "data",
    full: bool = False,
    seed: int = 0,
    latent_dim: int = 10,
    epochs: int | None = None,
) -> dict[str, Config]:
    """The configs of the benchmark, one per model of :data:`MODELS`: same net, data, optimiser and budget; the capacity
    reaches 25 nats (Burgess et al. 2018, dSprites) after two thirds of the steps, with γ (the
    capacity model's ``beta``) from :func:`capacity_gamma` for the image size and that anneal (times
    :data:`SAFETY` below the paper's budget: 2.6 on the CPU scale, 1000 with ``full``)."""
    scale = SCALES["full" if full else "default"]
    epochs = epochs or scale["epochs"]
    base = Config.from_flat(
        data=data,
        data_dir=data_dir,
        image_size=scale["image_size"],
        grid_step=scale["grid_step"],
        latent_dim=latent_dim,
        net=scale["net"],
        channels=(32, 32, 64, 64),
        hidden=scale["hidden"],
        likelihood="bernoulli",
        binarize="none",
        epochs=epochs,
        batch_size=scale["batch_size"],
        lr=scale["lr"],
        seed=seed,
        eval_num_samples=1,
        fused_optimizer=False,  # the foreach Adam step the committed rows were trained with (LATER_SETTINGS)
    )
    train_size = (
        np.prod([len(k) for k in dsprites.grid(base.data.grid_step)])
        * (1 - TEST_FRACTION)
        * (1 - base.data.val_fraction)
    )
    steps = max(1, int(epochs * np.ceil(train_size / base.train.batch_size) * 2 / 3))
    gamma = capacity_gamma(scale["image_size"] ** 2, steps)
    capacity = {
        "capacity_steps": steps,
        "beta": round(gamma if gamma >= CAPACITY_PAPER["gamma"] else SAFETY * gamma, 2),
    }
    return {
        name: base.replace(**changes, **(capacity if "capacity_max" in changes else {}))
        for name, changes in MODELS.items()
    }


def spec(
    data: str = "dsprites-synthetic",
    data_dir: str = "data",
    full: bool = False,
    seeds=SEEDS,
    epochs: int | None = None,
    models=tuple(MODELS),
) -> SweepSpec:
    """The benchmark as a sweep: the shared config, one arm per model, ``seeds``, and the
    disentanglement evaluation of every point (metric seed 0 for all, so only training varies).

    Raises:
        ValueError: unknown model names.
    """
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown benchmark model(s) {unknown}; choose from {', '.join(MODELS)}")
    configs = benchmark_configs(data, data_dir, full, epochs=epochs)
    flat = {name: json.loads(json.dumps(c.to_flat())) for name, c in configs.items()}
    base = {k: v for k, v in flat["vae"].items() if k != "seed"}
    arms = {name: {k: v for k, v in flat[name].items() if k != "seed" and base.get(k) != v} for name in models}
    evaluate = {"disentanglement": {"seed": 0, "overrides": {"dci": SCALES["full" if full else "default"]["dci"]}}}
    return SweepSpec(base, arms, tuple(seeds), evaluate)


#: Headline metrics of the tables and figures: key in the evaluation's headline -> column name.
COLUMNS = [
    ("beta_vae.eval_accuracy", "BetaVAE"),
    ("factor_vae.eval_accuracy", "FactorVAE"),
    ("mig.mig", "MIG"),
    ("dci.disentanglement", "DCI-D"),
    ("dci.completeness", "DCI-C"),
    ("dci.informativeness_test", "DCI-I"),
    ("sap.sap", "SAP"),
]
KL_KEYS = ("kl", "kl_mi", "kl_tc", "kl_dimwise")


def collect(out_dir, sweep: SweepSpec) -> dict:
    """Per model: every finished seed's headline metrics, KL decomposition, test ELBO and
    training time, and their :func:`~vaekit.benchmarks.sweeps.results.summarize` over seeds."""
    rows: dict[str, dict] = {}
    for point, report, summary, cpu in finished_points(out_dir, sweep, "disentanglement"):
        entry = {
            **report["headline"],
            **{k: report["kl"][k] for k in KL_KEYS},
            "test_elbo": summary["test"]["elbo"],
            "active_units": summary["test"].get("active_units"),
            "train_s": summary["training_time_s"],
            "cpu_s": cpu,
        }
        rows.setdefault(point.arm, {})[point.seed] = entry
    models = {}
    for arm, seeds in rows.items():
        per_seed = [seeds[s] for s in sorted(seeds)]
        keys = [k for k in per_seed[0] if all(r.get(k) is not None for r in per_seed)]
        models[arm] = {
            "changes": sweep.arms[arm],
            "seeds": sorted(seeds),
            "per_seed": {str(s): seeds[s] for s in sorted(seeds)},
            "aggregate": {k: summarize([r[k] for r in per_seed]) for k in keys},
        }
    return models


def model_effect(models: dict, min_seeds: int = 2) -> dict:
    """Per headline metric: how much of the spread over all runs the model explains beyond the
    seed — a one-way ANOVA over models (``scipy.stats.f_oneway``: F, p) and η² = between-model sum
    of squares / total sum of squares (1 = the model decides everything, 0 = the seed does).
    Only rows of at least ``min_seeds`` seeds take part (1 admits the deterministic baselines, raw
    pixels and PCA: a group of one value adds to the between-model sum of squares and nothing to the
    within); metrics with fewer than 2 such rows, or no within-row spread at all, are left out."""
    import numpy as np
    from scipy import stats

    out = {}
    for key, _ in COLUMNS:
        groups = [
            np.asarray(row["aggregate"][key]["values"])
            for row in models.values()
            if key in row["aggregate"] and row["aggregate"][key]["n"] >= min_seeds
        ]
        if len(groups) < 2 or sum(len(g) for g in groups) <= len(groups):
            continue
        values = np.concatenate(groups)
        total = float(((values - values.mean()) ** 2).sum())
        between = float(sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups))
        f, p = stats.f_oneway(*groups)
        out[key] = {
            "eta_squared": between / total if total > 0 else float("nan"),
            "F": float(f),
            "p": float(p),
            "models": len(groups),
            "runs": int(values.size),
        }
    return out


def _active(row: dict) -> bool:
    """True unless the model collapsed: no active latent unit in any seed (Burda et al. 2015's count)."""
    units = row["aggregate"].get("active_units")
    return units is None or max(units["values"]) > 0


def kept_rows(results_path, sweep: SweepSpec, rows: dict) -> dict:
    """Rows of an earlier ``results.json`` for the models not in ``rows`` whose settings (shared
    config and the model's changes, seeds included) are those of ``sweep``: a rerun of one model
    (``--models capacity-vae``) keeps the others' committed results instead of dropping them.
    Returns {model: row, with ``"kept_from"``: the earlier run's date and command}."""
    path = Path(results_path)
    if not path.is_file():
        return {}
    earlier = io.read_json(path)
    config = earlier.get("config")
    if isinstance(config, dict):
        config = {**LATER_SETTINGS, **config}  # an earlier config without a later setting means its old value
    if config != sweep.base:
        return {}
    return {
        name: {**row, "kept_from": row.get("kept_from") or f"{earlier.get('date')}: `{earlier.get('command')}`"}
        for name, row in earlier.get("models", {}).items()
        if name not in rows
        and name in sweep.arms
        and row.get("changes") == sweep.arms[name]
        and row.get("seeds") == list(sweep.seeds)
    }


def run_benchmark(
    out_dir="benchmarks/results/disentanglement",
    data: str = "dsprites-synthetic",
    data_dir: str = "data",
    full: bool = False,
    seeds=SEEDS,
    epochs: int | None = None,
    models=tuple(MODELS),
    jobs: int = 2,
    collect_only: bool = False,
    command: str = "",
    log=print,
    baselines=tuple(BASELINES),
) -> dict:
    """Train (or resume) and evaluate every (model, seed) point in ``out_dir/runs``; write
    ``results.json``, ``results.md`` and ``per_seed.png`` in ``out_dir`` and return the results.

    ``collect_only`` writes the results of the points finished so far without training. Models
    not trained here keep their rows of an earlier ``results.json`` when their settings are
    unchanged (:func:`kept_rows`). ``baselines`` (names of
    :data:`vaekit.evaluation.disentanglement.baselines.BASELINES`) are scored on the same grid,
    metrics and metric seed (random ones once per seed; cached in ``out_dir/baselines``), also
    with ``collect_only``, and take part in a second ANOVA (``model_effect_with_baselines``).

    Raises:
        ValueError: unknown models, or no finished point to report.
    """
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    out = Path(out_dir)
    sweep = spec(data, data_dir, full, seeds, epochs, models)
    try:
        if not models:  # baselines only: every model keeps its earlier row (kept_rows)
            raise LookupError
        rows, wall_s = run_and_collect(sweep, out, collect, jobs, collect_only, log)
    except (ValueError, LookupError) as e:
        if isinstance(e, ValueError) and not collect_only:
            raise
        rows, wall_s = {}, wall_time(out / "results.json", 0.0, True)  # no run folders here: the kept rows only
    every = spec(data, data_dir, full, seeds, epochs)
    rows = {**kept_rows(out / "results.json", every, rows), **rows}
    rows = {name: rows[name] for name in MODELS if name in rows}
    if not rows and not baselines:
        raise ValueError(f"no finished points in {out}/runs and no earlier results with these settings")
    scale = SCALES["full" if full else "default"]
    base_rows = (
        baseline_rows(
            benchmark_configs(data, data_dir, full, epochs=epochs)["vae"],
            baselines,
            seeds,
            scale["dci"],
            out / "baselines",
            log,
            cached_only=collect_only,
        )
        if baselines
        else {}
    )
    import torch

    results = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{jobs} worker(s) of 1 thread",
        "scale": "full" if full else "default",
        "config": sweep.base,
        "seeds": list(seeds),
        "dci_points": sweep.evaluate["disentanglement"]["overrides"]["dci"] or "reference",
        "interval": INTERVAL,
        "published_beta_vae_score": PUBLISHED,
        "models": rows,
        "baselines": base_rows,
        "published_source": PUBLISHED_SOURCE,
        "model_effect": model_effect(rows),
        "model_effect_active": model_effect({k: r for k, r in rows.items() if _active(r)}),
        "model_effect_with_baselines": model_effect({**rows, **base_rows}, min_seeds=1) if base_rows else {},
        "wall_time_s": wall_s,
    }
    results["traversals"] = sorted(p.name for p in out.glob("*-traversals.png"))
    io.write_json(out / "results.json", results)
    io.atomic_write(out / "results.md", markdown(results))
    figure(results, out / "per_seed.png")
    return results


def _cell(stats: dict, digits: int = 3) -> str:
    if stats["n"] < 2:
        return f"{stats['mean']:.{digits}f} (n=1)"
    return f"{stats['mean']:.{digits}f} [{stats['ci95_low']:.{digits}f}, {stats['ci95_high']:.{digits}f}]"


def markdown(results: dict) -> str:
    """Two tables as Markdown: the metrics per model (mean [95 % t interval] over seeds, and the
    spread min–max), then test ELBO, the KL decomposition and training time."""
    models, baselines = results["models"], results.get("baselines") or {}
    rows = {**models, **{f"{name} (baseline)": row for name, row in baselines.items()}}
    head = ["model", "seeds", *[c for _, c in COLUMNS]]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; machine: {results['machine']}  ",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, row in rows.items():
        agg = row["aggregate"]
        lines.append(
            "| "
            + " | ".join([name, str(len(row["seeds"]))] + [_cell(agg[k]) if k in agg else "–" for k, _ in COLUMNS])
            + " |"
        )
    lines += ["", "Spread over seeds (min – max):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        agg = row["aggregate"]
        lines.append(
            "| "
            + " | ".join(
                [name, str(len(row["seeds"]))]
                + [
                    f"{min(agg[k]['values']):.3f} – {max(agg[k]['values']):.3f}" if k in agg else "–"
                    for k, _ in COLUMNS
                ]
            )
            + " |"
        )
    if baselines:
        lines += [
            "",
            "Baselines (same grid, metrics, metric seed and numbers of points as the models; "
            "n=1: deterministic, one value):",
            "",
        ]
        lines += [
            f"- {name}: {row['description']}"
            + (f"; code of {row['code_dim']} dimensions" if row.get("code_dim") else "")
            + "".join(f"; {why}" for why in row.get("skipped", {}).values())
            for name, row in baselines.items()
        ]
        lines += [
            "",
            f"BetaVAE score beside the published one ({results.get('published_source', PUBLISHED_SOURCE)}):",
            "",
            "| representation | ours (32×32 synthetic dSprites, grid step 4) | Higgins et al. 2017 |",
            "|---|---|---|",
        ]
        ours = {**{n: r for n, r in baselines.items()}, **models}
        for name, published in (results.get("published_beta_vae_score") or PUBLISHED).items():
            cell = _cell(ours[name]["aggregate"]["beta_vae.eval_accuracy"]) if name in ours else "not run"
            lines.append(f"| {name} | {cell} | {published:.4f} |")
    effect, active = results.get("model_effect") or {}, results.get("model_effect_active") or {}
    with_baselines = results.get("model_effect_with_baselines") or {}
    if effect:
        keys = [k for k, _ in COLUMNS if k in effect]
        lines += [
            "",
            "How much the model decides beyond the seed (one-way ANOVA over models; η² = between-model "
            "share of the total sum of squares; p of the F test):",
            "",
            "| models | " + " | ".join(c for k, c in COLUMNS if k in effect) + " |",
            "|" + "---|" * (1 + len(keys)),
        ]
        for group, table in (("all", effect), ("not collapsed", active), ("models + baselines", with_baselines)):
            for field, label, fmt in (("eta_squared", "η²", "{:.2f}"), ("p", "p", "{:.2g}")):
                if table:
                    lines.append(
                        f"| {group}: {label} | "
                        + " | ".join(fmt.format(table[k][field]) if k in table else "–" for k in keys)
                        + " |"
                    )
    head = ["model", "test ELBO", "KL", "MI", "TC", "dim-KL", "active units", "train s"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in models.items():
        agg = row["aggregate"]
        cells = [name] + [_cell(agg[k], 1) if k in agg else "–" for k in ("test_elbo", *KL_KEYS, "active_units")]
        cells.append(f"{agg['train_s']['mean']:.0f}" if "train_s" in agg else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if results.get("traversals"):
        lines += [
            "",
            "Latent traversals (one row per latent, sorted by KL): "
            + ", ".join(f"[{name}]({name})" for name in results["traversals"])
            + ".",
        ]
    kept = {name: row["kept_from"] for name, row in models.items() if row.get("kept_from")}
    lines += [f"Kept from an earlier run with the same settings: {name} ({when})." for name, when in kept.items()]
    lines += [
        "",
        f"Mean over seeds [{results.get('interval', INTERVAL)}].",
        "Published BetaVAE score on dSprites (Higgins et al. 2017, fig. 6, one model per row, 64×64, full grid): "
        + ", ".join(f"{k} {v:.4f}" for k, v in (results.get("published_beta_vae_score") or PUBLISHED).items())
        + ".",
        "KL terms: nats per example on test images (Chen et al. 2018 decomposition, exact mixture).",
        "",
    ]
    return "\n".join(lines)


def figure(results: dict, path) -> Path:
    """Per-seed values (dots) and the mean with its 95 % t interval per model, one panel per
    headline metric (Locatello et al. 2019, fig. 7 shows the same distributions as violins)."""
    aggregated = {name: row["aggregate"] for name, row in results["models"].items()}
    aggregated.update(
        {f"{name} (baseline)": row["aggregate"] for name, row in (results.get("baselines") or {}).items()}
    )
    metrics = [k for k, _ in COLUMNS if any(k in a for a in aggregated.values())]
    return per_seed_figure(aggregated, metrics, path, xlim=(-0.02, 1.02))
