"""The zoo's results (:mod:`vaekit.benchmarks.zoo`): per model and library, the metrics of every
finished seed and their mean and 95 % t interval (:func:`~vaekit.benchmarks.sweeps.results.summarize`),
whether vaekit meets the goals against pythae, the markdown table and the figure of samples."""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .. import io
from .sweeps.results import summarize
from .sweeps.spec import SweepSpec, slug


def collect(out_dir, sweep: SweepSpec) -> dict:
    """Per arm: the finished seeds' zoo results and, per library and metric, :func:`summarize` over seeds."""
    rows: dict = {}
    for point in sweep.points():
        run_dir = Path(out_dir) / "runs" / point.key
        cache = run_dir / "sweep-zoo.json"
        row = rows.setdefault(point.arm, {"changes": sweep.arms[point.arm], "seeds": [], "per_seed": {}})
        if (run_dir / "zoo-error.json").is_file() and not cache.is_file():
            row["error"] = io.read_json(run_dir / "zoo-error.json")["error"]
        if not cache.is_file():
            continue
        result = io.read_json(cache)["result"]
        row["seeds"].append(point.seed)
        row["per_seed"][str(point.seed)] = result
    for row in rows.values():
        results = list(row["per_seed"].values())
        row["aggregate"] = {}
        for lib in ("vaekit", "pythae"):
            per = [r[lib] for r in results if lib in r and "skipped" not in r[lib]]
            if not per:
                if results and lib == "pythae":
                    row["pythae_skipped"] = results[0]["pythae"].get("skipped")
                continue
            keys = [k for k, v in per[0].items() if isinstance(v, (int, float)) and all(k in p for p in per)]
            row["aggregate"][lib] = {k: summarize([p[k] for p in per]) for k in keys}
        both = [r for r in results if "epoch_time_s" in r.get("pythae", {})]
        if both:
            row["aggregate"]["throughput_ratio"] = summarize(
                [r["pythae"]["epoch_time_s"] / r["vaekit"]["epoch_time_s"] for r in both]
            )
            metric = "log_likelihood" if all("log_likelihood" in r["pythae"] for r in both) else "mse_per_pixel"
            if all(metric in r["vaekit"] for r in both):
                sign = 1.0 if metric == "log_likelihood" else -1.0
                row["aggregate"]["paired_difference"] = {
                    "metric": metric,
                    **summarize([sign * (r["vaekit"][metric] - r["pythae"][metric]) for r in both]),
                }
    return rows


def goals(row: dict) -> dict:
    """Whether vaekit meets the issue's goals against pythae on this arm: its test metric (IS
    log-likelihood where both have one, else the reconstruction MSE) within pythae's 95 % interval
    or better, and throughput >= 1.0x. None where there is no pythae row or fewer than 2 seeds."""
    agg = row.get("aggregate", {})
    ours, theirs = agg.get("vaekit", {}), agg.get("pythae", {})
    if not theirs:
        return {}
    if "log_likelihood" in ours and "log_likelihood" in theirs:
        metric, higher = "log_likelihood", True
    else:
        metric, higher = "mse_per_pixel", False
    bound = theirs[metric]["ci95_low" if higher else "ci95_high"]
    mean = ours[metric]["mean"]
    quality = None if math.isnan(bound) else (mean >= bound if higher else mean <= bound)
    ratio = agg.get("throughput_ratio", {}).get("mean")
    return {"metric": metric, "quality": quality, "throughput": None if ratio is None else ratio >= 1.0}


def _cell(stats: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    if not stats:
        return "–"
    mean = stats["mean"] * scale
    if stats["n"] < 2 or math.isnan(stats["ci95_low"]):
        return f"{mean:.{digits}f} (n={stats['n']})"
    half = (stats["ci95_high"] - stats["ci95_low"]) / 2 * scale
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown(results: dict) -> str:
    """The zoo table: per model, vaekit's and pythae's rows side by side."""
    s = results["settings"]
    lines = [
        "# Model zoo: vaekit and pythae side by side on Fashion-MNIST",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}; {results.get('pythae_version') or 'pythae not installed'}.  ",
        f"Protocol: {s['data']}, {'all' if s.get('train_size') is None else format(s['train_size'], ',')} training images (9/10 train, 1/10 validation), static binarization, "
        f"Bernoulli decoder, MLP {s['hidden']} → {s['latent_dim']} latent dims, {s['epochs']} epochs, batch "
        f"{s['batch_size']}, Adam lr {s['lr']}; metrics on the first {s['num_test']:,} official test images, "
        f"IS log-likelihood with K = {s['num_samples']} (nats per example, higher is better), MSE per pixel ×1000 "
        "(grey-level test images), FID* = Fréchet distance in the features of a small CNN classifier trained on the "
        "training subset (not Inception FID; lower is better), active units (of 16), wall seconds per epoch "
        "(validation included). Mean ± half-width of the 95 % t interval over seeds. Ratio = pythae's "
        "seconds per epoch / vaekit's (> 1: vaekit is faster). Goal: vaekit's IS log-likelihood (else MSE) "
        "within pythae's interval or better (Q), throughput ratio ≥ 1.0 (T).",
        "",
        "| model | library | seeds | IS log-lik. | MSE ×1000 | FID* prior | FID* GMM | active units | s/epoch | ratio | goal Q / T |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, row in results["models"].items():
        agg = row.get("aggregate", {})
        goal = goals(row)
        flag = {True: "yes", False: "no", None: "–"}
        for lib in ("vaekit", "pythae"):
            a = agg.get(lib)
            if a is None:
                if lib == "pythae":
                    continue
                lines.append(f"| {arm} | vaekit | 0 | {row.get('error', 'not run yet')} |  |  |  |  |  |  |  |")
                continue
            n = len(row["seeds"])
            ratio = _cell(agg.get("throughput_ratio"), digits=2) if lib == "vaekit" and "pythae" in agg else ""
            g = f"{flag[goal.get('quality')]} / {flag[goal.get('throughput')]}" if lib == "vaekit" and goal else ""
            lines.append(
                f"| {arm} | {lib} | {n} | {_cell(a.get('log_likelihood'))} | {_cell(a.get('mse_per_pixel'), 1000, 2)} "
                f"| {_cell(a.get('fid.prior'), digits=2)} | {_cell(a.get('fid.gmm'), digits=2)} "
                f"| {_cell(a.get('active_units'))} | {_cell(a.get('epoch_time_s'), digits=2)} | {ratio} | {g} |"
            )
    paired = {
        a: r["aggregate"]["paired_difference"]
        for a, r in results["models"].items()
        if "paired_difference" in r.get("aggregate", {})
    }
    if paired:
        lines += [
            "",
            "The goals per shared model, paired by seed (both libraries start from the same initial networks of each "
            "seed): vaekit − pythae in the goal's metric, signed so that > 0 is vaekit better (IS log-likelihood in "
            "nats, else MSE per pixel ×1000 with the sign flipped), mean [95 % t interval]; an interval that holds 0 is "
            "no difference these seeds can show.",
            "",
            "| model | metric | vaekit − pythae | throughput ratio | goal Q / T |",
            "|---|---|---|---|---|",
        ]
        for arm, d in paired.items():
            scale = 1.0 if d["metric"] == "log_likelihood" else 1000.0
            interval = (
                f"{d['mean'] * scale:+.2f} [{d['ci95_low'] * scale:+.2f}, {d['ci95_high'] * scale:+.2f}]"
                if d["n"] > 1
                else f"{d['mean'] * scale:+.2f} (n=1)"
            )
            ratio = results["models"][arm]["aggregate"].get("throughput_ratio")
            r = (
                f"{ratio['mean']:.2f} [{ratio['ci95_low']:.2f}, {ratio['ci95_high']:.2f}]"
                if ratio and ratio["n"] > 1
                else "–"
            )
            goal = goals(results["models"][arm])
            flag = {True: "yes", False: "no", None: "–"}
            metric = "IS log-lik." if d["metric"] == "log_likelihood" else "MSE ×1000"
            lines.append(
                f"| {arm} | {metric} | {interval} | {r} | {flag[goal.get('quality')]} / {flag[goal.get('throughput')]} |"
            )
    skipped_rows = {a: r["pythae_skipped"] for a, r in results["models"].items() if r.get("pythae_skipped")}
    lines += (
        ["", "No pythae row: " + "; ".join(f"{a} ({w})" for a, w in skipped_rows.items()) + "."] if skipped_rows else []
    )
    lines += ["", "Not in the zoo: " + "; ".join(f"{a} ({w})" for a, w in results["skipped"].items()) + "."]
    lines += [
        "",
        "pythae's networks are measured with vaekit's estimators after training. For pythae's IAF, planar-flow "
        "(VAE_LinNF) and HVAE the flow / leapfrog part is not mapped into vaekit: their networks are measured as the "
        "VAE of the base Gaussian encoder, whose IS estimate of the same p(z) p(x|z) uses a plainer proposal (lower "
        "at finite K, same limit). Samples: `samples.png`.",
    ]
    return "\n".join(lines) + "\n"


def write_results(out_dir, sweep: SweepSpec, command: str, wall: float | None, protocol: dict) -> dict:
    """``results.json``, ``results.md`` and ``samples.png`` of the points finished so far; ``protocol``
    (the zoo's skipped models and pythae's published figures) is written into ``results.json`` as is."""
    from . import pythae_adapter as adapter

    out = Path(out_dir)
    version = None
    if adapter.available() is None:
        from importlib.metadata import version as _version

        version = f"pythae {_version('pythae')}"
    evaluation = sweep.evaluate["zoo"]
    results: dict[str, Any] = {
        "command": command,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread".replace(
            "  ", " "
        ),
        "pythae_version": version,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": {**sweep.base, **{k: v for k, v in evaluation.items() if k != "fid_net"}},
        "seeds": list(sweep.seeds),
        **protocol,
        "models": collect(out, sweep),
    }
    if wall is not None:
        results["wall_time_s"] = wall
    io.write_json(out / "results.json", results)
    io.atomic_write(out / "results.md", markdown(results))
    samples_figure(out, sweep, out / "samples.png")
    return results


def samples_figure(out_dir, sweep: SweepSpec, path) -> Path | None:
    """One strip of 8 samples of the model's prior per model and library (first finished seed),
    labelled; None when no point has finished."""
    from ..reporting import plots

    strips = []
    for arm in sweep.arms:
        for seed in sweep.seeds:
            file = Path(out_dir) / "runs" / _key(arm, seed) / "zoo-samples.safetensors"
            if file.is_file():
                tensors, _ = io.read_safetensors(file)
                strips += [
                    (f"{arm} ({lib})", tensors[f"{lib}.prior"][:8])
                    for lib in ("vaekit", "pythae")
                    if f"{lib}.prior" in tensors
                ]
                break
    if not strips:
        return None
    fig, axes = plots._subplots(len(strips), 1, figsize=(6.0, 0.8 * len(strips)), squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], strips):
        grid = plots.image_grid(images, 8)
        ax.imshow(
            grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    return plots._save(fig, path)


def _key(arm: str, seed: int) -> str:
    return f"{slug(arm)}-seed{seed}"
