"""The AVAE question over seeds: VAE, VAE + input noise, AVAE (x̃ = mean / x̃ sampled) and SE ε 0.1.

Cemgil et al. (NeurIPS 2020, table 2) report that the AVAE's representation keeps its digit probe
accuracy under L∞ PGD at ε = 0.1 (88.1 %) where the VAE's does not (5.8 %). This benchmark asks
which ingredient, if any, gives that robustness here, with every arm trained on >= 3 seeds by
``vaekit sweep`` (one run folder per arm and seed, resumable, ``--jobs N`` at a time):

- **VAE**, and **VAE + noise** (a denoising VAE, ``noise_std`` = the likelihood's scale, and 0.2):
  does plain input noise, which an x̃ drawn from p(x|z) amounts to, give the same?
- **AVAE (mean)**: the coupling with x̃ = g(z) (paper, eq. 9); **AVAE (sampled)**: x̃ ~ p(x|z)
  (``aux_sample``).
- **SE ε 0.1**: the smooth encoder (ICLR 2020), adversarial by construction, as a positive control.

Every run is evaluated with the linear probe read three ways (encoder mean, a sample z, the
decoded reconstruction g(μ(x))), clean and under PGD-20 through the whole chain from the pixels.
``results.json`` keeps the schema of ``vaekit benchmark robustness`` —
``results[row]["probe"][label]["pgd"][eps]`` (the mean over seeds) — with the per-seed results
under ``results[row]["per_seed"][seed]`` and the statistics under ``results[row]["aggregate"]``.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from .sweeps.engine import run_and_collect
from .sweeps.points import finished_points
from .sweeps.results import INTERVAL, summarize
from .sweeps.spec import SweepSpec
from .robustness import BASE, PAPER_TABLE

#: Likelihood std per dataset: the largest at which the VAE is not collapsed (see docs/robustness.md).
SCALE = {"color-digits": 0.05, "color-fashion-mnist": 0.05}
EPOCHS = {"color-digits": 20, "color-fashion-mnist": 30}
#: Training examples per dataset (a fixed subset, the same for every seed; None = all): coloured
#: Fashion-MNIST is cut to 20,000 of its 60,000 images so that 18 points fit 90 minutes on 2 cores.
TRAIN_SIZE = {"color-digits": None, "color-fashion-mnist": 20000}
EPSILONS = (0.0, 0.05, 0.1, 0.2)
FEATURES = ("mean", "sample", "decoded")


def arms(data: str) -> dict[str, dict]:
    """Arm name -> changes to the base config."""
    scale = SCALE[data]
    out = {
        "VAE": {"model": "vae"},
        f"VAE + noise {scale:g}": {"model": "vae", "noise_std": scale},
        "VAE + noise 0.2": {"model": "vae", "noise_std": 0.2},
        "AVAE (mean)": {"model": "avae"},
        "AVAE (sampled)": {"model": "avae", "aux_sample": True},
        "SE ε 0.1": {"model": "se", "epsilon": 0.1, "num_steps": 5},
    }
    return out


def spec(data: str = "color-digits", seeds=(0, 1, 2), epochs: int | None = None, max_test: int = 1000,
         data_dir: str = "data") -> SweepSpec:
    """The sweep of this benchmark (arms × seeds, robustness evaluation of every point).

    Raises:
        ValueError: a dataset without a setting here.
    """
    if data not in SCALE:
        raise ValueError(f"benchmark robustness-seeds has settings for {sorted(SCALE)}, got {data!r}")
    base = {**BASE["color-digits"], "data": data, "likelihood_scale": SCALE[data], "epochs": epochs or EPOCHS[data]}
    if TRAIN_SIZE[data] is not None:
        base["train_size"] = TRAIN_SIZE[data]
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}
    if data != "color-digits":
        base["data_dir"] = data_dir
    evaluate = {"robustness": {"epsilons": list(EPSILONS), "num_steps": 20, "features": list(FEATURES),
                               "max_test": max_test, "seed": 0}}
    return SweepSpec(base, arms(data), tuple(seeds), evaluate)


def _mean_schema(per_seed: list[dict]) -> dict:
    """The mean over seeds of ``{label: {"clean": acc, "pgd": {eps: acc}}}`` dicts, same schema."""
    labels = per_seed[0]
    return {label: {"clean": sum(r[label]["clean"] for r in per_seed) / len(per_seed),
                    "pgd": {e: sum(r[label]["pgd"][e] for r in per_seed) / len(per_seed) for e in entry["pgd"]}}
            for label, entry in labels.items()}


def _stats_schema(per_seed: list[dict]) -> dict:
    """:func:`~vaekit.benchmarks.sweeps.results.summarize` of each accuracy over seeds, same schema."""
    return {label: {"clean": summarize([r[label]["clean"] for r in per_seed]),
                    "pgd": {e: summarize([r[label]["pgd"][e] for r in per_seed]) for e in entry["pgd"]}}
            for label, entry in per_seed[0].items()}


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
        entry = {k: v for k, v in evaluation.items() if k.startswith("probe") and k != "probe_features"}
        entry.update(active_units=summary["test"]["active_units"], mse_per_pixel=summary["test"]["mse_per_pixel"],
                     elbo=summary["test"].get("elbo"), training_cpu_time_s=cpu,
                     training_time_s=summary["training_time_s"], num_test_examples=evaluation["num_test_examples"])
        rows.setdefault(point.arm, {})[point.seed] = entry
    results = {}
    for arm, seeds in rows.items():
        per_seed = [seeds[s] for s in sorted(seeds)]
        probes = [k for k in per_seed[0] if k.startswith("probe")]
        row = {k: _mean_schema([r[k] for r in per_seed]) for k in probes}
        row["per_seed"] = {str(s): seeds[s] for s in sorted(seeds)}
        row["aggregate"] = {k: _stats_schema([r[k] for r in per_seed]) for k in probes}
        for key in ("active_units", "mse_per_pixel", "elbo", "training_cpu_time_s"):
            if all(r.get(key) is not None for r in per_seed):
                row["aggregate"][key] = summarize([r[key] for r in per_seed])
        row["seeds"] = sorted(seeds)
        results[arm] = row
    return results


def _cell(stats: dict, scale: float = 100.0) -> str:
    if stats["n"] < 2:
        return f"{scale * stats['mean']:.1f} (n=1)"
    return f"{scale * stats['mean']:.1f} [{scale * stats['ci95_low']:.1f}, {scale * stats['ci95_high']:.1f}]"


def markdown(results: dict, labels=None, epsilons=EPSILONS) -> str:
    """One table per probe input: accuracy % as mean [95 % t interval] over seeds; active units.
    ``labels``: the probed labels, default those of the results (e.g. digit and color)."""
    lines = []
    if labels is None:
        labels = list(dict.fromkeys(label for r in results.values() for label in r["aggregate"].get("probe", {})))
    probes = list(dict.fromkeys(k for r in results.values() for k in r["aggregate"] if k.startswith("probe")))
    for probe in probes:
        name = {"probe": "encoder mean μ(x)", "probe_sample": "a sample z ~ q(z|x)",
                "probe_decoded": "the reconstruction g(μ(x))"}.get(probe, probe)
        header = ["arm", "seeds"] + [f"{label} ε={e:g}" for label in labels for e in epsilons] + ["active units"]
        lines += [f"Probe on {name}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for arm, row in results.items():
            agg = row["aggregate"]
            if probe not in agg:
                continue
            cells = [arm, str(len(row["seeds"]))]
            for label in labels:
                entry = agg[probe].get(label)
                cells += ["–"] * len(epsilons) if entry is None else \
                    [_cell(entry["clean"] if e == 0 else entry["pgd"][f"{e:g}"]) for e in epsilons]
            au = agg.get("active_units")
            cells.append("–" if au is None else (f"{au['mean']:.1f} [{au['ci95_low']:.1f}, {au['ci95_high']:.1f}]"
                                                 if au["n"] > 1 else f"{au['mean']:.0f}"))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Accuracy in %, mean over seeds [{INTERVAL}]; PGD-20, L∞, ε on [0, 1] pixels; ε = 0 is clean.")
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
    """Per-seed digit and colour accuracies at ε 0.1 (and clean), per probe input: dots and t intervals."""
    from .sweeps.results import per_seed_figure

    aggregated, metrics = {}, []
    for arm, row in results.items():
        flat = {}
        for probe, by_label in row["aggregate"].items():
            if not probe.startswith("probe"):
                continue
            for label, entry in by_label.items():
                flat[f"{probe}.{label}.clean"] = entry["clean"]
                flat[f"{probe}.{label}.pgd.0.1"] = entry["pgd"]["0.1"]
        aggregated[arm] = flat
        metrics = metrics or list(flat)
    return per_seed_figure(aggregated, metrics, path, xlim=(-0.02, 1.02))


def run_benchmark(data: str = "color-digits", out_dir=None, seeds=(0, 1, 2), jobs: int = 2,
                  epochs: int | None = None, max_test: int = 1000, data_dir: str = "data",
                  collect_only: bool = False, command: str = "", log=print) -> dict:
    """Run (or resume) the sweep and write ``results.json``, ``results.md`` and ``per_seed.png``.

    ``collect_only`` writes the results of the points finished so far without training.
    """
    out = Path(out_dir or f"benchmarks/results/robustness-seeds/{data}")
    sweep = spec(data, seeds, epochs, max_test, data_dir)
    results, wall_s = run_and_collect(sweep, out, collect, jobs, collect_only, log)
    md = markdown(results) + "\n" + paper_markdown(data)
    report = {"command": command, "data": data, "config": sweep.base, "arms": sweep.arms, "seeds": list(seeds),
              "evaluation": sweep.evaluate["robustness"], "interval": INTERVAL, "results": results,
              "paper_table": PAPER_TABLE, "jobs": jobs, "wall_time_s": wall_s,
              "markdown": md}
    io.write_json(out / "results.json", report)
    io.atomic_write(out / "results.md", md)
    figure(results, out / "per_seed.png")
    return report
