"""The AVAE question over seeds: VAE, AVAE and the smooth encoder at the official likelihood scale.

Cemgil et al. (NeurIPS 2020, table 2) report that the AVAE's representation keeps its digit probe
accuracy under L∞ PGD at ε = 0.1 (88.1 %) where the VAE's does not (5.8 %); the smooth encoder
(SE, ICLR 2020) reaches 89.6 %. Their official code trains with a Gaussian likelihood of variance
ν = 0.5 (std √0.5 ≈ 0.707) on 28×28×3 images. At a small std (0.05, below ε) the reconstruction
term charges thousands of nats for ignoring an ε-ball change and the coupling term a few, so the
ELBO demands the very sensitivity SE removes. The default arms (:data:`DEFAULT_ARMS`) therefore
train VAE, AVAE and SE ε 0.1 at the official scale (:data:`OFFICIAL_SCALE`), beside a VAE at std
0.05 as the reference of the earlier benchmark. Every arm is trained on >= 3 seeds by
``vaekit sweep`` (one run folder per arm and seed, resumable, ``--jobs N`` at a time).

Every run is evaluated with a linear probe on the encoder mean under three attacks from the
pixels (cross-entropy PGD-20, FGSM, the label-free latent attack) and with the smoothness figure
(:func:`vaekit.evaluation.robustness.smoothness`: median latent displacement under the latent
attack / median distance between codes of different classes). The arms of the earlier benchmark
(VAE + input noise, AVAE with a sampled x̃; :data:`ABLATION_ARMS`) can still be asked for by name.
``results.json`` keeps the schema of ``vaekit benchmark robustness`` —
``results[row]["probe"][label][attack][eps]`` (the mean over seeds) — with the per-seed results
under ``results[row]["per_seed"][seed]`` and the statistics under ``results[row]["aggregate"]``.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import io
from .robustness import BASE, PAPER_TABLE
from .sweeps.engine import run_and_collect
from .sweeps.points import finished_points
from .sweeps.results import INTERVAL, summarize
from .sweeps.spec import SweepSpec

#: Reference likelihood std per dataset (the earlier benchmark's setting, below ε = 0.1).
SCALE = {"color-digits": 0.05, "color-fashion-mnist": 0.05, "color-mnist": 0.05}
#: The official AVAE likelihood scale: ν = 0.5 (std √0.5) on 28×28×3 images; on 8×8×3 images the
#: same balance of reconstruction against KL and coupling is ν = 0.5 · 192/2352 ≈ 0.04 (std 0.2,
#: see :data:`vaekit.benchmarks.robustness.BASE`). Both are ≥ ε = 0.1.
OFFICIAL_SCALE = {"color-digits": 0.2, "color-fashion-mnist": math.sqrt(0.5), "color-mnist": math.sqrt(0.5)}
#: color-mnist (the AVAE paper's ColorMNIST built from the 4,000 real MNIST training images of
#: ``mnist-5k``): 100 epochs = 6,250 Adam steps of 64 images (30 epochs of the 20,000-image coloured
#: Fashion-MNIST subset are 9,375).
EPOCHS = {"color-digits": 20, "color-fashion-mnist": 30, "color-mnist": 100}
#: Training examples per dataset (a fixed subset, the same for every seed; None = all): coloured
#: Fashion-MNIST is cut to 20,000 of its 60,000 images to fit the 2-core budget.
TRAIN_SIZE = {"color-digits": None, "color-fashion-mnist": 20000, "color-mnist": None}
EPSILONS = (0.0, 0.05, 0.1, 0.2)
FEATURES = ("mean",)
ATTACKS = ("pgd", "fgsm", "latent")
ATTACK_NAMES = {
    "pgd": "cross-entropy PGD-20",
    "fgsm": "FGSM (one step of size ε)",
    "latent": "label-free latent PGD-20 (maximises ‖μ(x+δ) − μ(x)‖)",
}


def _std(scale: float) -> str:
    return f"std {scale:.3g}"


def arms(data: str, names=None) -> dict[str, dict]:
    """Arm name -> changes to the base config: :data:`DEFAULT_ARMS` (or the asked ``names`` among
    these and the ablation arms).

    Raises:
        ValueError: an unknown arm name.
    """
    ref, official = SCALE[data], OFFICIAL_SCALE[data]
    every = {
        f"VAE {_std(ref)}": {"model": "vae", "likelihood_scale": ref},
        f"VAE {_std(official)}": {"model": "vae", "likelihood_scale": official},
        f"AVAE {_std(official)}": {"model": "avae", "likelihood_scale": official},
        f"SE ε 0.1 {_std(official)}": {"model": "se", "epsilon": 0.1, "num_steps": 5, "likelihood_scale": official},
        # the earlier benchmark's ablation arms, all at the reference scale
        f"VAE + noise {ref:g}": {"model": "vae", "noise_std": ref},
        "VAE + noise 0.2": {"model": "vae", "noise_std": 0.2},
        "AVAE (mean)": {"model": "avae"},
        "AVAE (sampled)": {"model": "avae", "aux_sample": True},
        "SE ε 0.1": {"model": "se", "epsilon": 0.1, "num_steps": 5},
    }
    names = list(names) if names else list(every)[:4]
    unknown = [n for n in names if n not in every]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {list(every)}")
    return {n: every[n] for n in names}


def default_arms(data: str) -> list[str]:
    """The four arms run by default: VAE at the reference std, VAE, AVAE and SE at the official one."""
    return list(arms(data))


def spec(
    data: str = "color-digits",
    seeds=(0, 1, 2),
    epochs: int | None = None,
    max_test: int = 1000,
    data_dir: str = "data",
    arm_names=None,
    train_size: int | None = None,
    arm_specs: dict[str, dict] | None = None,
    evaluation: dict | None = None,
) -> SweepSpec:
    """The sweep of this benchmark (arms × seeds, robustness evaluation of every point).

    Args:
        arm_names: arms to run (default :func:`default_arms`).
        train_size: training examples (a fixed subset; default :data:`TRAIN_SIZE`).
        arm_specs: arm name -> changes to the base config, instead of the named arms (e.g. the
            verdict study, :mod:`vaekit.benchmarks.robustness_verdict`).
        evaluation: changes to the robustness evaluation (e.g. ``{"attacks": ["pgd"]}``).

    Raises:
        ValueError: a dataset without a setting here, or an unknown arm.
    """
    if data not in SCALE:
        raise ValueError(f"benchmark robustness-seeds has settings for {sorted(SCALE)}, got {data!r}")
    base = {**BASE["color-digits"], "data": data, "likelihood_scale": SCALE[data], "epochs": epochs or EPOCHS[data]}
    train_size = train_size or TRAIN_SIZE[data]
    if train_size is not None:
        base["train_size"] = train_size
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}
    if data not in ("color-digits", "color-mnist"):
        base["data_dir"] = data_dir
    evaluate = {
        "robustness": {
            "epsilons": list(EPSILONS),
            "num_steps": 20,
            "features": list(FEATURES),
            "attacks": list(ATTACKS),
            "smoothness": True,
            "max_test": max_test,
            "seed": 0,
            **(evaluation or {}),
        }
    }
    return SweepSpec(base, arm_specs or arms(data, arm_names), tuple(seeds), evaluate)


def _map_schema(per_seed: list[dict], reduce) -> dict:
    """``reduce(values over seeds)`` of every number in ``{label: {"clean": acc, attack: {eps: acc}}}``
    dicts (or any nesting of dicts over numbers), same schema."""
    first = per_seed[0]
    if not isinstance(first, dict):
        return reduce(per_seed)
    return {k: _map_schema([r[k] for r in per_seed], reduce) for k in first}


def _mean_schema(per_seed: list[dict]) -> dict:
    """The mean over seeds of ``{label: {"clean": acc, attack: {eps: acc}}}`` dicts, same schema."""
    return _map_schema(per_seed, lambda v: sum(v) / len(v))


def _stats_schema(per_seed: list[dict]) -> dict:
    """:func:`~vaekit.benchmarks.sweeps.results.summarize` of each number over seeds, same schema."""
    return _map_schema(per_seed, summarize)


def collect(out_dir, sweep: SweepSpec) -> dict:
    """Results of the finished points (a partial sweep gives partial results).

    Returns:
        ``{row: {"probe": ..., "probe_sample": ..., "probe_decoded": ... (means over seeds, the
        schema of ``vaekit benchmark robustness``), "per_seed": {seed: {...}}, "aggregate":
        {probe key: {label: {"clean": stats, "pgd": {eps: stats}}}, "active_units": stats, ...}}}``
        with stats from :func:`~vaekit.benchmarks.sweeps.results.summarize` (Student t 95 % interval).
    """
    rows = {}
    for point, evaluation, summary, cpu in finished_points(out_dir, sweep, "robustness"):
        entry = {
            k: v
            for k, v in evaluation.items()
            if (k.startswith("probe") and k != "probe_features") or k == "smoothness"
        }
        entry.update(
            active_units=summary["test"]["active_units"],
            mse_per_pixel=summary["test"]["mse_per_pixel"],
            elbo=summary["test"].get("elbo"),
            training_cpu_time_s=cpu,
            training_time_s=summary["training_time_s"],
            num_test_examples=evaluation["num_test_examples"],
        )
        rows.setdefault(point.arm, {})[point.seed] = entry
    results = {}
    for arm, seeds in rows.items():
        per_seed = [seeds[s] for s in sorted(seeds)]
        probes = [k for k in per_seed[0] if k.startswith("probe")]
        if all("smoothness" in r for r in per_seed):
            probes.append("smoothness")
        row = {k: _mean_schema([r[k] for r in per_seed]) for k in probes}
        row["per_seed"] = {str(s): seeds[s] for s in sorted(seeds)}
        row["aggregate"] = {k: _stats_schema([r[k] for r in per_seed]) for k in probes}
        for key in ("active_units", "mse_per_pixel", "elbo", "training_cpu_time_s"):
            if all(r.get(key) is not None for r in per_seed):
                row["aggregate"][key] = summarize([r[key] for r in per_seed])
        row["seeds"] = sorted(seeds)
        results[arm] = row
    return results


def _cell(stats: dict, scale: float = 100.0, digits: int = 1) -> str:
    if stats["n"] < 2:
        return f"{scale * stats['mean']:.{digits}f} (n=1)"
    return (
        f"{scale * stats['mean']:.{digits}f} [{scale * stats['ci95_low']:.{digits}f}, "
        f"{scale * stats['ci95_high']:.{digits}f}]"
    )


def _accuracy_table(results: dict, probe: str, attack: str, labels, epsilons) -> list[str]:
    name = {
        "probe": "encoder mean μ(x)",
        "probe_sample": "a sample z ~ q(z|x)",
        "probe_decoded": "the reconstruction g(μ(x))",
    }.get(probe, probe)
    header = ["arm", "seeds"] + [f"{label} ε={e:g}" for label in labels for e in epsilons] + ["active units"]
    lines = [
        f"Probe on {name}, {ATTACK_NAMES.get(attack, attack)}:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for arm, row in results.items():
        agg = row["aggregate"]
        if probe not in agg:
            continue
        cells = [arm, str(len(row["seeds"]))]
        for label in labels:
            entry = agg[probe].get(label)
            cells += (
                ["–"] * len(epsilons)
                if entry is None or attack not in entry
                else [_cell(entry["clean"] if e == 0 else entry[attack][f"{e:g}"]) for e in epsilons]
            )
        au = agg.get("active_units")
        cells.append(
            "–"
            if au is None
            else (
                f"{au['mean']:.1f} [{au['ci95_low']:.1f}, {au['ci95_high']:.1f}]"
                if au["n"] > 1
                else f"{au['mean']:.0f}"
            )
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _smoothness_table(results: dict, labels, epsilons) -> list[str]:
    radii = [e for e in epsilons if e > 0]
    header = (
        ["arm", "seeds"]
        + [f"{label} smoothness ε={e:g}" for label in labels for e in radii]
        + [f"latent move ε={e:g}" for e in radii]
        + [f"random-noise move ε={e:g}" for e in radii]
        + [f"{label} between-class distance" for label in labels]
    )
    lines = [
        "Smoothness of the encoder (median ‖μ(x_adv) − μ(x)‖ under the latent attack / median "
        "‖μ(x_i) − μ(x_j)‖ over test pairs of different classes; 0 = the ball cannot move the code):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for arm, row in results.items():
        agg = row["aggregate"].get("smoothness")
        if agg is None:
            continue
        cells = [arm, str(len(row["seeds"]))]
        cells += [
            _cell(agg["smoothness"][label][f"{e:g}"], 1.0, 2) if label in agg["smoothness"] else "–"
            for label in labels
            for e in radii
        ]
        cells += [_cell(agg["median_displacement"][f"{e:g}"], 1.0, 2) for e in radii]
        cells += [_cell(agg["median_random_displacement"][f"{e:g}"], 1.0, 2) for e in radii]
        cells += [
            _cell(agg["median_between_class_distance"][label], 1.0, 2)
            if label in agg["median_between_class_distance"]
            else "–"
            for label in labels
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(results: dict, labels=None, epsilons=EPSILONS) -> str:
    """One accuracy table per probe input and attack (accuracy % as mean [95 % t interval] over
    seeds; active units), then the smoothness table. ``labels``: the probed labels, default those
    of the results (e.g. item and color)."""
    lines = []
    if labels is None:
        labels = list(dict.fromkeys(label for r in results.values() for label in r["aggregate"].get("probe", {})))
    probes = list(dict.fromkeys(k for r in results.values() for k in r["aggregate"] if k.startswith("probe")))
    for probe in probes:
        attacks = list(
            dict.fromkeys(
                a
                for r in results.values()
                for entry in r["aggregate"].get(probe, {}).values()
                for a in entry
                if a != "clean"
            )
        )
        for attack in attacks:
            lines += _accuracy_table(results, probe, attack, labels, epsilons)
    if any("smoothness" in r["aggregate"] for r in results.values()):
        lines += _smoothness_table(results, labels, epsilons)
    lines.append(
        f"Accuracy in %, mean over seeds [{INTERVAL}]; L∞ attacks from the pixels, ε on [0, 1] pixels; "
        "ε = 0 is clean. Distances in latent units (Euclidean, encoder means)."
    )
    return "\n".join(lines) + "\n"


def paper_markdown(data: str = "color-digits") -> str:
    """The paper's table 2 rows that match the arms (ColorMNIST, one seed, no interval reported)."""
    other = "" if data in ("color-digits", "color-mnist") else f", a different dataset from {data}"
    header = f"| the paper (ColorMNIST 28×28, table 2{other}) | digit ε=0 | 0.1 | 0.2 | colour ε=0 | 0.1 | 0.2 |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name in ("VAE", "AVAE", "SE 5 steps, ε 0.1"):
        lines.append("| " + " | ".join([name] + [f"{v:.1f}" for v in PAPER_TABLE[name][:6]]) + " |")
    return "\n".join(lines) + "\n"


def figure(results: dict, path) -> Path:
    """Per-seed label accuracies, clean and under each attack at ε 0.1, per probe input: dots and t intervals."""
    from .sweeps.results import per_seed_figure

    aggregated, metrics = {}, []
    for arm, row in results.items():
        flat = {}
        for probe, by_label in row["aggregate"].items():
            if not probe.startswith("probe"):
                continue
            for label, entry in by_label.items():
                flat[f"{probe}.{label}.clean"] = entry["clean"]
                flat.update(
                    {f"{probe}.{label}.{attack}.0.1": entry[attack]["0.1"] for attack in entry if attack != "clean"}
                )
        aggregated[arm] = flat
        metrics = metrics or list(flat)
    return per_seed_figure(aggregated, metrics, path, xlim=(-0.02, 1.02))


def run_benchmark(
    data: str = "color-digits",
    out_dir=None,
    seeds=(0, 1, 2),
    jobs: int = 2,
    epochs: int | None = None,
    max_test: int = 1000,
    data_dir: str = "data",
    collect_only: bool = False,
    command: str = "",
    log=print,
    arm_names=None,
    train_size: int | None = None,
    arm_specs: dict[str, dict] | None = None,
    evaluation: dict | None = None,
    preamble: str = "",
) -> dict:
    """Run (or resume) the sweep and write ``results.json``, ``results.md`` and ``per_seed.png``.

    ``collect_only`` writes the results of the points finished so far without training;
    ``arm_names``, ``train_size``, ``arm_specs`` and ``evaluation`` as in :func:`spec`;
    ``preamble``: markdown put before the tables.
    """
    out = Path(out_dir or f"benchmarks/results/robustness-seeds/{data}")
    sweep = spec(data, seeds, epochs, max_test, data_dir, arm_names, train_size, arm_specs, evaluation)
    results, wall_s = run_and_collect(sweep, out, collect, jobs, collect_only, log)
    md = preamble + markdown(results) + "\n" + paper_markdown(data)
    report = {
        "command": command,
        "data": data,
        "config": sweep.base,
        "arms": sweep.arms,
        "seeds": list(seeds),
        "evaluation": sweep.evaluate["robustness"],
        "interval": INTERVAL,
        "results": results,
        "paper_table": PAPER_TABLE,
        "jobs": jobs,
        "wall_time_s": wall_s,
        "markdown": md,
    }
    io.write_json(out / "results.json", report)
    io.atomic_write(out / "results.md", md)
    figure(results, out / "per_seed.png")
    return report
