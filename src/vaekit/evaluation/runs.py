"""Evaluations of a trained run (its model, config and history, as :func:`vaekit.io.load_run` reads
a run folder) on its dataset's test split: every robustness metric (``vaekit evaluate robustness``)
and the disentanglement metrics (``vaekit evaluate disentanglement``). The benchmark protocols
(:mod:`vaekit.benchmarks`) train runs and call these; nothing here knows about them, nor about
files: the caller loads the run and writes the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..data import splits
from .consistency import consistency
from .reconstruction import MSE_UNITS, reconstruction_mse
from .robustness import probe_labels, robustness, smoothness


def seeded_subset(dataset, size: int | None, seed: int):
    """A seeded random subset of ``size`` examples of ``dataset`` (all of it for None or a larger size)."""
    if size is None or size >= len(dataset):
        return dataset
    return dataset.subset(torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size])


def robustness_of_run(
    model,
    config,
    history: Sequence[dict] = (),
    epsilons=(0.0, 0.1, 0.2),
    num_steps: int = 20,
    norm: str = "linf",
    labels=None,
    feature_net=None,
    consistency_steps: int = 10,
    standardize: bool = False,
    max_test: int | None = None,
    seed: int = 0,
    attacks=("pgd", "fgsm", "latent"),
    with_fid: bool = True,
    fid_epochs: int = 5,
    with_smoothness: bool = True,
) -> dict:
    """Every robustness metric of one trained run, on its dataset's test split (Cemgil et al. 2020, sec. 6).

    Args:
        model, config: a VAE-family model trained on labelled image data, and its run's
            :class:`~vaekit.config.Config` (which names the dataset).
        history: the run's per-epoch metrics (``metrics.jsonl``), for its training time.
        epsilons: attack radii in [0, 1] pixel units.
        labels: label names to probe (default: all the dataset's labels).
        feature_net: FID feature net (trained on the training split when None).
        with_fid: compute the FID (image data only).
        fid_epochs: training epochs of the FID feature net when ``feature_net`` is None.
        max_test: evaluate on a seeded random subset of this many test images (None = all).
        attacks: subset of :data:`vaekit.evaluation.robustness.ATTACKS` ("pgd": cross-entropy
            PGD-``num_steps``; "fgsm"; "latent": label-free PGD on the encoder-mean displacement).
        with_smoothness: add :func:`vaekit.evaluation.robustness.smoothness` at every ε > 0.

    Returns:
        JSON-ready dict: ``probe`` (per label: clean, pgd and fgsm accuracies in [0, 1] per ε),
        ``consistency`` (per label: accuracy after 0..T iterations), ``mse_per_pixel`` and
        ``mse_per_example`` (:func:`vaekit.evaluation.reconstruction_mse`, the MSE that
        ``vaekit evaluate`` reports; ``units`` says it), ``fid`` (classifier features), ``training_time_s`` (wall clock) and
        ``training_cpu_time_s`` (CPU seconds of the training loop, validation included).

    Raises:
        ValueError: a dataset without labels or with unknown ``labels``.
    """
    train_set = splits.load_dataset(config, "train")
    test_set = seeded_subset(splits.load_dataset(config, "test"), max_test, seed)
    names = probe_labels(test_set, labels)
    rob = robustness(
        model,
        train_set.x,
        {n: train_set.labels[n] for n in names},
        test_set.x,
        {n: test_set.labels[n] for n in names},
        epsilons,
        num_steps,
        norm,
        attacks,
        standardize,
        seed,
    )
    probes = rob.pop("_probes")
    mse = reconstruction_mse(model, test_set.x, splits.condition_labels(config, test_set))
    result = {"probe": rob, **mse, "units": dict(MSE_UNITS)}
    radii = [e for e in epsilons if e > 0]
    if with_smoothness and radii:
        result["smoothness"] = smoothness(
            model, test_set.x, {n: test_set.labels[n] for n in names}, radii, num_steps, norm, seed=seed
        )
    if consistency_steps > 0:
        result["consistency"] = {
            n: consistency(model, probes[n], test_set.x, test_set.labels[n], consistency_steps) for n in names
        }
    if with_fid and test_set.is_image:
        from .fid import fid, fit_feature_net  # SciPy, only for the FID

        net = feature_net or fit_feature_net(train_set.x, train_set.labels, epochs=fid_epochs, seed=seed)
        samples = model.sample(len(test_set), generator=torch.Generator().manual_seed(seed))
        result["fid"] = fid(net, test_set.x, samples)
    epochs = list(history)
    result["training_time_s"] = sum(h["time"] for h in epochs) if epochs else math.nan
    result["training_cpu_time_s"] = sum(h.get("cpu_time", math.nan) for h in epochs) if epochs else math.nan
    result.update(
        num_test_examples=len(test_set),
        epsilons=list(epsilons),
        num_steps=num_steps,
        norm=norm,
        attacks=list(attacks),
        standardize=standardize,
    )
    return result


def disentanglement_report(
    model,
    config,
    dataset,
    metrics=None,
    seed: int = 0,
    num_train: int | None = None,
    num_eval: int | None = None,
    overrides: dict | None = None,
    codes=None,
) -> dict:
    """Disentanglement metrics of ``model`` on the factor dataset ``dataset`` (a test split), and
    the KL decomposition of its posterior (Chen et al. 2018, eq. 2: index-code MI, total
    correlation, dimension-wise KL; nats per example).

    Args:
        metrics: names from :data:`vaekit.evaluation.disentanglement.METRICS` (default all).
        num_train / num_eval / overrides: metric sizes (see
            :func:`vaekit.evaluation.disentanglement.evaluate_disentanglement`).
        codes: the grid's codes when already computed (:func:`~vaekit.evaluation.disentanglement.grid_codes`).

    Returns:
        ``{"data", "factor_sizes", "factor_names", "seed", "metrics", "headline"}`` plus ``"kl"``
        for a stochastic model (over the first ``DIAGNOSTIC_POINTS`` test images, ``"points"``).

    Raises:
        ValueError: a dataset without ground-truth factors.
    """
    from .disentanglement import METRICS, evaluate_disentanglement, headline
    from .kl import DIAGNOSTIC_POINTS, kl_decomposition

    results = evaluate_disentanglement(
        model, dataset, tuple(metrics or METRICS), seed, num_train, num_eval, overrides, codes=codes
    )
    report = {
        "data": config.data.name,
        "factor_sizes": list(dataset.factor_sizes),
        "factor_names": list(dataset.factor_names),
        "seed": seed,
        "metrics": results,
        "headline": headline(results),
    }
    if model.stochastic:
        report["kl"] = kl_decomposition(model, dataset.x[:DIAGNOSTIC_POINTS], seed=seed)
        report["kl"]["points"] = min(len(dataset.x), DIAGNOSTIC_POINTS)
    return report


def disentanglement_of_run(
    model,
    config,
    metrics=None,
    seed: int = 0,
    num_train: int | None = None,
    num_eval: int | None = None,
    overrides: dict | None = None,
    figures: Callable | None = None,
) -> dict:
    """Disentanglement metrics of a trained run on its dataset's factor grid (:func:`disentanglement_report`
    of its test split).

    ``figures``: called as ``figures(model, dataset, codes, kl_per_dim)`` for a stochastic model,
    returns the paths it wrote (``vaekit evaluate disentanglement`` passes
    :func:`vaekit.reporting.gallery.disentanglement_figures` into the run folder); they are listed
    under ``"figures"``.

    Raises:
        ValueError: the run was not trained on a dataset with ground-truth factors.
    """
    from .disentanglement import grid_codes

    dataset = splits.load_dataset(config, "test")
    codes = grid_codes(model, dataset)
    report = disentanglement_report(model, config, dataset, metrics, seed, num_train, num_eval, overrides, codes=codes)
    if "kl" in report and figures is not None:
        report["figures"] = [str(p) for p in figures(model, dataset, codes, report["kl"]["kl_per_dim"])]
    return report
