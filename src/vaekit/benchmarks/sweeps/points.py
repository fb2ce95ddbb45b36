"""One sweep point, end to end: a normal run folder, trained (or resumed, or reused) and evaluated.

``run_point`` is idempotent: a finished run folder (``summary.json`` of the same config) is not
trained again, a killed one is resumed from ``checkpoint/last.safetensors`` (so it reaches the
state of an uninterrupted run), and evaluations are cached in ``RUN/sweep-<name>.json`` together
with their settings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ... import io
from ...data.splits import load_dataset
from ...evaluation.runs import disentanglement_report, seeded_subset
from ...io import CHECKPOINT, RunFolder
from ...reporting.outputs import write_outputs
from ...run import train
from .spec import Point, SweepSpec

#: The cached metrics of a finished point (flat ``{"test.elbo": ..., ...}``).
POINT_FILE = "sweep-point.json"


def probe_robustness(
    run_dir,
    epsilons=(0.0, 0.05, 0.1, 0.2),
    num_steps: int = 20,
    norm: str = "linf",
    labels=None,
    features=("mean",),
    max_test: int | None = None,
    max_train: int | None = None,
    seed: int = 0,
    attacks=("pgd",),
    smoothness: bool = False,
) -> dict:
    """Linear-probe accuracy of a run, clean and under attack, for each probe input in ``features``.

    The protocol of :func:`vaekit.evaluation.robustness.robustness` (Cemgil et al. 2020, sec. 6);
    the attack always starts from the pixels, whatever the probe reads.

    Args:
        features: probe inputs, each "mean", "sample" or "decoded" (see
            :class:`vaekit.evaluation.probe.LinearProbe`).
        max_test / max_train: seeded random subsets of the test / training split (None = all).
        attacks: subset of :data:`vaekit.evaluation.robustness.ATTACKS`.
        smoothness: add :func:`vaekit.evaluation.robustness.smoothness` (test subset, ε > 0).

    Returns:
        ``{"probe": {label: {"clean": acc, attack: {str(ε): acc}}}}`` for the first entry of
        ``features`` (the schema of ``vaekit evaluate robustness``), ``"probe_<features>"`` for
        the others; accuracies in [0, 1]; plus ``num_test_examples`` and ``"smoothness"``.

    Raises:
        ValueError: a dataset without labels, or unknown labels / features.
    """
    from ...evaluation.robustness import probe_labels, robustness
    from ...evaluation.robustness import smoothness as smoothness_of

    model, config = io.load(run_dir), io.load_config(run_dir)
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    train_set, test_set = seeded_subset(train_set, max_train, seed), seeded_subset(test_set, max_test, seed)
    names = probe_labels(test_set, labels)
    out = {"num_test_examples": len(test_set), "num_train_examples": len(train_set)}
    for i, feature in enumerate(features):
        result = robustness(
            model,
            train_set.x,
            {n: train_set.labels[n] for n in names},
            test_set.x,
            {n: test_set.labels[n] for n in names},
            epsilons,
            num_steps,
            norm,
            tuple(attacks),
            seed=seed,
            features=feature,
        )
        result.pop("_probes")
        out["probe" if i == 0 else f"probe_{feature}"] = result
    out["probe_features"] = list(features)
    radii = [e for e in epsilons if e > 0]
    if smoothness and radii:
        out["smoothness"] = smoothness_of(
            model, test_set.x, {n: test_set.labels[n] for n in names}, radii, num_steps, norm, seed=seed
        )
    return out


def disentanglement(
    run_dir,
    metrics=None,
    seed: int = 0,
    num_train: int | None = None,
    num_eval: int | None = None,
    overrides: dict | None = None,
) -> dict:
    """Disentanglement metrics of a run on its dataset's test split of the factor grid, and the KL
    decomposition of its posterior: :func:`vaekit.evaluation.runs.disentanglement_report` of the run's model and data.

    Raises:
        ValueError: the run was not trained on a dataset with ground-truth factors.
    """
    config = io.load_config(run_dir)
    return disentanglement_report(
        io.load(run_dir), config, load_dataset(config, "test"), metrics, seed, num_train, num_eval, overrides
    )


#: Evaluations a sweep can run on every point: name -> function(run_dir, **settings) -> JSON dict. A
#: benchmark module above this one adds its own (:mod:`vaekit.benchmarks.zoo` adds ``"zoo"`` on import).
EVALUATIONS = {"robustness": probe_robustness, "disentanglement": disentanglement}


def finished_points(out_dir, sweep, evaluation: str) -> list[tuple]:
    """The finished points of ``sweep`` in ``out_dir/runs`` (a partial sweep gives those done so
    far), each as ``(point, result, summary, cpu_time_s)``: the cached result of ``evaluation``
    (``RUN/sweep-<evaluation>.json``), the run's ``summary.json`` and the CPU seconds of its
    training loop (summed over ``metrics.jsonl``; NaN when not recorded)."""
    done = []
    for point in sweep.points():
        run_dir = Path(out_dir) / "runs" / point.key
        if not (run_dir / POINT_FILE).is_file():
            continue
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
        done.append(
            (
                point,
                io.read_json(run_dir / f"sweep-{evaluation}.json")["result"],
                io.read_json(run_dir / "summary.json"),
                sum(h.get("cpu_time", math.nan) for h in history),
            )
        )
    return done


def wall_time(results_path, started: float, collect_only: bool) -> float | None:
    """Wall seconds of a benchmark's training run for its ``results.json``: the time since
    ``started`` (``time.perf_counter()``), or with ``collect_only`` the time the earlier results at
    ``results_path`` recorded (None when there are none), so collecting does not overwrite it."""
    import time

    if not collect_only:
        return time.perf_counter() - started
    path = Path(results_path)
    return io.read_json(path).get("wall_time_s") if path.is_file() else None


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numbers of a nested dict as ``{"a.b.c": value}`` (lists, strings and None are left out)."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def train_point(point: Point, run_dir: Path, outputs=(write_outputs,)) -> dict:
    """Train the point's run folder, resume it, or reuse it when finished; returns its summary.
    ``outputs``: the output hooks of :func:`vaekit.run.train` (figures and report by default).

    Raises:
        ValueError: the folder holds a run of another config (not overwritten).
    """
    config = point.config()
    if (run_dir / io.CONFIG).is_file():
        saved = json.loads(json.dumps(io.load_config(run_dir).to_flat()))
        wanted = json.loads(json.dumps(config.to_flat()))
        # "auto" settings are saved resolved (e.g. decoder_activation "auto" -> "sigmoid")
        if any(saved.get(k) != v and v != "auto" for k, v in wanted.items()):
            raise ValueError(
                f"{run_dir} holds a run of other settings than sweep point {point.key!r}; "
                "move it away or use another --out"
            )
        if (run_dir / "summary.json").is_file():
            return io.read_json(run_dir / "summary.json")
        if (run_dir / CHECKPOINT).is_file():
            return train(None, RunFolder(run_dir, resume=True), progress=False, outputs=list(outputs))
    return train(config, RunFolder(run_dir, overwrite=True), progress=False, outputs=list(outputs))


def evaluate_point(run_dir: Path, name: str, settings: dict) -> dict:
    """Evaluation ``name`` of a run folder, cached in ``RUN/sweep-<name>.json`` with its settings.

    Raises:
        ValueError: an unknown evaluation name.
    """
    if name not in EVALUATIONS:
        raise ValueError(f"unknown sweep evaluation {name!r}; choose from {sorted(EVALUATIONS)}")
    cache = run_dir / f"sweep-{name}.json"
    if cache.is_file() and (cached := io.read_json(cache)).get("settings") == settings:
        return cached["result"]
    result = EVALUATIONS[name](run_dir, **settings)
    io.write_json(cache, {"settings": settings, "result": result})
    return result


#: Metrics every point reports beside ``test.<name>`` (:data:`vaekit.evaluation.UNITS`, but
#: ``kl_per_dim``, a list) and ``<evaluation>.<...>`` of its evaluations.
POINT_METRICS = ("training_time_s", "epochs_trained")


def check_metric(metric: str | None, spec: SweepSpec) -> None:
    """Refuse a ``--metric`` that no point of ``spec`` can report, before any training.

    Names under an evaluation (``robustness.probe.digit.pgd.0.1``) depend on its settings: only the
    prefix is checked here, the full name after the first point.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if metric is None:
        return
    from ...evaluation import UNITS

    known = [f"test.{k}" for k in UNITS if k != "kl_per_dim"] + list(POINT_METRICS)
    if metric in known or any(metric.startswith(f"{name}.") for name in spec.evaluate):
        return
    under = (
        f", or a name under {', '.join(f'{n}.' for n in spec.evaluate)}"
        if spec.evaluate
        else " (evaluations add more, e.g. --evaluate robustness: robustness.probe.<label>.pgd.<epsilon>)"
    )
    raise ValueError(
        f"--metric {metric!r} is not a metric of the sweep's runs; choose one of {', '.join(known)}{under}"
    )


def run_point(point: Point, out_dir, evaluate: dict | None = None, outputs=(write_outputs,)) -> dict:
    """Train (or resume / reuse) and evaluate one point in ``out_dir/runs/<key>`` (``outputs``: see
    :func:`train_point`).

    Returns:
        Flat metrics: ``test.<metric>`` of the run summary (nats per example etc., see
        :data:`vaekit.evaluation.UNITS`), ``training_time_s``, ``epochs_trained`` and
        ``<evaluation>.<...>`` of each evaluation. Also written to ``RUN/sweep-point.json``.
    """
    run_dir = Path(out_dir) / "runs" / point.key
    summary = train_point(point, run_dir, outputs)
    metrics = flatten({"test": summary["test"]})
    metrics.update(training_time_s=float(summary["training_time_s"]), epochs_trained=float(summary["epochs_trained"]))
    for name, settings in (evaluate or {}).items():
        metrics.update(flatten(evaluate_point(run_dir, name, settings), name + "."))
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    io.write_json(run_dir / POINT_FILE, {"arm": point.arm, "seed": point.seed, "key": point.key, "metrics": metrics})
    return metrics
