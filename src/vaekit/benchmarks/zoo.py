"""``vaekit benchmark zoo``: every registered model on Fashion-MNIST with one MLP encoder/decoder,
one budget and 3 seeds, and pythae's implementation of each model it shares with vaekit trained
on the same networks, data, epochs, batch size and optimiser in the same process.

Protocol (:data:`BASE`): the Debian Fashion-MNIST files, a fixed 10,000-image training subset
(``train_size``; 9,000 train / 1,000 validation), static binarization (pythae has no dynamic one),
a Bernoulli decoder (pythae: "bce"), an MLP of :data:`HIDDEN` units, 16 latent dimensions, Adam at
1e-3, batches of 100. Every (arm, seed) is a sweep point (:func:`vaekit.benchmarks.sweeps.points.run_point`),
trained seed-first (seed 0 of every arm, then seed 1, ...) so that a stopped run still has every
model; re-running skips finished points and evaluations. Each point's ``zoo`` evaluation
(:func:`evaluate_run`) measures, on a fixed subset of the official test images, with vaekit's
estimators, for vaekit's trained model and (where pythae has the model, :data:`~.pythae_adapter.PYTHAE`)
for pythae's trained networks:

* ``log_likelihood``: importance-sampled log p(x), K = ``num_samples``, nats per example
  (:func:`vaekit.evaluation.log_likelihood`; models with a tractable likelihood only);
* ``mse_per_pixel``: reconstruction error g(μ(x)) against the grey-level test images;
* ``fid.<sampler>``: the classifier-feature FID* (:mod:`vaekit.evaluation.fid`, not Inception
  FID) of decoded draws of each sampler (:data:`SAMPLERS`) against the test images;
* ``active_units`` (Burda et al. 2015, sec. 5.2) and ``epoch_time_s`` (wall seconds per epoch,
  validation included, in both libraries' own training loops).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..config import Config
from ..registry import MODELS
from .sweeps.points import EVALUATIONS, run_point
from .sweeps.spec import SweepSpec

HIDDEN = (256, 256)
BASE = {
    "data": "fashion-mnist",
    "data_dir": "/usr/share/datasets",
    "train_size": 10_000,
    "binarize": "static",
    "likelihood": "bernoulli",
    "net": "mlp",
    "hidden": list(HIDDEN),
    "latent_dim": 16,
    "epochs": 5,
    "batch_size": 100,
    "lr": 1e-3,
    "eval_num_samples": 1,  # the run's own 10,000-image summary: ELBO only; the IS estimate is the evaluation's
}

#: Arms beside one per registered model: variants that are settings of a registered model.
VARIANTS: dict[str, dict[str, Any]] = {
    "beta-vae": {"model": "vae", "beta": 4.0},
    "iwae": {"model": "vae", "objective": "iwae", "num_samples": 5},
}
#: Settings of registered models that differ from their defaults (matched in pythae's config).
SETTINGS: dict[str, dict[str, Any]] = {
    "betatc": {"beta": 6.0},
    "vampprior": {"options": {"num_components": 50}},
    # M = 2 bounds of K = 4 particles (the registry's default M = K = 8 costs 64 decoder passes per
    # example and step: 20x the VAE's epoch on one core, in both libraries)
    "miwae": {"options": {"num_bounds": 2, "num_particles": 4}},
    "piwae": {"options": {"num_bounds": 2, "num_particles": 4}},
}
#: Samplers whose draws get an FID* (``vaekit sample --sampler``).
SAMPLERS = ("prior", "gmm")
SEEDS = (0, 1, 2)
#: pythae's published reproduction (examples/scripts/reproducibility, README table): test
#: log-likelihood in nats on dynamically binarized MNIST, K = 5000 (VAE with 1000), their nets.
PYTHAE_PUBLISHED = {"vae": -89.78, "iwae": -86.82, "vampprior": -85.79, "hvae": -86.21}


def skipped() -> dict[str, str]:
    """Registered models the zoo leaves out, with why."""
    out = {}
    for name, entry in MODELS.items():
        if entry.needs_labels or entry.conditional:
            out[name] = "needs labels (a conditional model)"
        elif entry.needs_init:
            out[name] = "refines a trained run (--init), not trained from scratch"
    return out


def arms(models=None) -> dict[str, dict]:
    """Arm name -> config changes: every registered model not in :func:`skipped`, plus :data:`VARIANTS`."""
    table = {n: {"model": n, **SETTINGS.get(n, {})} for n in MODELS if n not in skipped()}
    table.update(VARIANTS)
    if models:
        unknown = sorted(set(models) - set(table))
        if unknown:
            raise ValueError(f"unknown zoo model(s) {unknown}; choose from {', '.join(table)}")
        table = {n: table[n] for n in models}
    return table


def arm_of(config: Config) -> str:
    """The zoo arm a run's config trains (variants first: ``beta-vae`` is also a ``vae``).

    Raises:
        ValueError: a config of no arm.
    """
    flat = json.loads(json.dumps(config.to_flat()))
    table = arms()
    for name in [*VARIANTS, *(n for n in table if n not in VARIANTS)]:
        changes = json.loads(json.dumps(table[name]))
        if all(
            flat.get(k) == v or (k == "options" and all((flat.get(k) or {}).get(o) == w for o, w in v.items()))
            for k, v in changes.items()
        ):
            if name == "vae" and (flat.get("beta") != 1.0 or flat.get("objective") not in (None, "auto", "elbo")):
                continue
            return name
    raise ValueError(f"a run of model {config.model.name!r} is no arm of the zoo")


def spec(models=None, seeds=SEEDS, evaluate: dict | None = None, **base) -> SweepSpec:
    """The zoo as a sweep: :data:`BASE` (with ``base`` changes), one arm per model, ``seeds``."""
    return SweepSpec({**BASE, **base}, arms(models), tuple(seeds), {"zoo": evaluate or {}})


def _feature_net(path: Path, config: Config, epochs: int = 3):
    """The FID* feature net, trained once on the training subset (seed 0) and saved to ``path``."""
    from safetensors.torch import load_file, save_file

    from ..data.splits import load_dataset
    from ..evaluation.fid import FeatureNet, fit_feature_net

    train = load_dataset(config, "train")
    classes = {k: int(v.max()) + 1 for k, v in train.labels.items()}
    if path.is_file():
        net = FeatureNet(train.x.shape[1:], classes)
        net.load_state_dict(load_file(str(path)))
        return net.eval()
    with torch.random.fork_rng(devices=[]):
        net = fit_feature_net(train.x, train.labels, epochs=epochs, seed=0)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return net


@torch.no_grad()
def measure(model, tractable: bool, data: dict, feature_net, num_samples: int, seed: int) -> tuple[dict, dict]:
    """vaekit's estimators on one trained model: ``(metrics, {"samples": (16, *data_shape)})``.

    ``data``: ``test`` (binarized test subset), ``test_images`` (the same, grey levels) and ``train``
    (binarized training subset, for the fitted samplers).
    """
    from ..evaluation import log_likelihood, reconstruction_mse
    from ..evaluation.fid import fid
    from ..evaluation.likelihood import evaluate
    from ..evaluation.samplers import fit_sampler, generate

    model = model.cpu().eval()
    out: dict = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if tractable:
            out["log_likelihood"] = log_likelihood(model, data["test"], num_samples).mean().item()
        out["active_units"] = float(evaluate(model, data["test"], num_samples=1, seed=seed)["active_units"])
        out["mse_per_pixel"] = reconstruction_mse(model, data["test_images"])["mse_per_pixel"]
    samples = {}
    for name in SAMPLERS:
        try:
            sampler = fit_sampler(name, model, data["train"])
            drawn = generate(model, sampler, len(data["test"]), torch.Generator().manual_seed(seed))
            out[f"fid.{name}"] = fid(feature_net, data["test_images"], drawn.clamp(0, 1))
            samples[name] = drawn[:16].contiguous()
        except (ValueError, RuntimeError, NotImplementedError) as error:
            out[f"fid.{name}.error"] = f"{type(error).__name__}: {error}"
    return out, samples


def evaluate_run(
    run_dir,
    num_test: int = 1000,
    num_samples: int = 100,
    fid_net: str | None = None,
    pythae: bool = True,
) -> dict:
    """The ``zoo`` sweep evaluation of a trained run folder: :func:`measure` of vaekit's model, and
    (with ``pythae``, where pythae has the arm and imports) pythae's implementation trained on the same
    initial networks, data, epochs, batch size and optimiser, measured the same way.

    Returns:
        ``{"vaekit": metrics, "pythae": metrics | {"skipped": why}}``; samples in ``RUN/zoo-samples.safetensors``.
    """
    from safetensors.torch import save_file

    from ..data.splits import load_dataset, prepare, split_validation
    from ..models import build_model
    from . import pythae_adapter as adapter

    run_dir = Path(run_dir)
    config = io.load_config(run_dir)
    arm = arm_of(config)
    model = io.load(run_dir)
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    n = min(num_test, len(test_set))
    data = {
        "test": prepare(test_set.x[:n], config),
        "test_images": test_set.x[:n],
        "train": prepare(train_set.x, config, training=True),
    }
    net = _feature_net(Path(fid_net) if fid_net else run_dir.parent.parent / "fid_net.safetensors", config)
    tractable = MODELS[config.model.name].tractable_likelihood
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    vaekit, samples = measure(model, tractable, data, net, num_samples, config.train.seed)
    vaekit["epoch_time_s"] = sum(h["time"] for h in history) / max(1, len(history))
    result: dict = {"arm": arm, "num_test": n, "num_samples": num_samples, "vaekit": vaekit}
    tensors = {f"vaekit.{k}": v for k, v in samples.items()}
    why = adapter.available() if pythae else "not requested (--no-pythae)"
    if why is None and arm not in adapter.PYTHAE:
        why = adapter.NOT_WIRED.get(arm, "pythae has no implementation of this model")
    if why is None:
        initial = build_model(config.model, train_set.data_shape, train_set.unit_interval, seed=config.train.seed)
        holder_name = adapter.PYTHAE[arm][4]
        holder = (
            initial
            if holder_name == config.model.name
            else build_model(
                config.replace(model=holder_name, options=None).model,
                train_set.data_shape,
                train_set.unit_interval,
                seed=0,
            )
        )
        train_x, val_x = split_validation(data["train"], config)
        pmodel = adapter.to_pythae(arm, initial)
        with torch.random.fork_rng(devices=[]):
            seconds = adapter.train_pythae(
                arm,
                pmodel,
                train_x,
                val_x,
                config.train.epochs,
                config.train.batch_size,
                config.train.lr,
                config.train.seed,
            )
        trained = adapter.from_pythae(
            arm,
            pmodel.cpu(),
            holder,
            train_x=train_x,
            epochs=config.train.epochs,
            batch_size=config.train.batch_size,
            lr=config.train.lr,
            seed=config.train.seed,
        )
        theirs, samples = measure(
            trained, tractable and holder_name != "msssim-vae", data, net, num_samples, config.train.seed
        )
        theirs["epoch_time_s"] = adapter.per_epoch(seconds, config.train.epochs)
        theirs["holder"] = holder_name
        result["pythae"] = theirs
        tensors.update({f"pythae.{k}": v for k, v in samples.items()})
    else:
        result["pythae"] = {"skipped": why}
    if tensors:
        save_file(tensors, str(run_dir / "zoo-samples.safetensors"))
    return result


def run_benchmark(
    output,
    models=None,
    seeds=SEEDS,
    epochs: int = 5,
    num_test: int = 1000,
    num_samples: int = 100,
    pythae: bool = True,
    collect_only: bool = False,
    command: str = "",
    log=print,
    **base,
) -> dict:
    """Run (or resume) the zoo seed-first, writing ``results.json``, ``results.md`` and
    ``samples.png`` in ``output`` after every point; returns the results."""
    from .zoo_report import write_results

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "num_test": num_test,
        "num_samples": num_samples,
        "fid_net": str(out / "fid_net.safetensors"),
        "pythae": pythae,
    }
    sweep = spec(models, seeds, settings, epochs=epochs, **base)
    protocol = {"skipped": skipped(), "pythae_published_nats_binary_mnist": PYTHAE_PUBLISHED}
    started = time.perf_counter()
    if not collect_only:
        for point in sweep.points():
            run_dir = out / "runs" / point.key
            t0 = time.perf_counter()
            try:
                run_point(point, out, sweep.evaluate, outputs=())
            except Exception as error:  # one model's failure is a row of the table, not the end of the run
                run_dir.mkdir(parents=True, exist_ok=True)
                io.write_json(run_dir / "zoo-error.json", {"error": f"{type(error).__name__}: {error}"})
                log(f"zoo: {point.key} failed: {type(error).__name__}: {error}")
                continue
            log(f"zoo: {point.key} done in {time.perf_counter() - t0:.0f} s")
            write_results(out, sweep, command, time.perf_counter() - started, protocol)
    return write_results(out, sweep, command, None if collect_only else time.perf_counter() - started, protocol)


EVALUATIONS["zoo"] = evaluate_run  # a sweep point's "zoo" evaluation (the sweep engine sits below this module)
