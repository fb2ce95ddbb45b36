"""Disentanglement metrics on encoder means, with disentanglement_lib's default protocols
(Locatello et al. 2019): BetaVAE score, FactorVAE score, MIG, DCI and SAP.

Every metric is a function ``metric(dataset, representation, seed, num_train, ...) -> dict``
of a dataset with ground-truth factors (``factor_sizes``, ``sample_factors``) and a
representation ``factors (n, K) -> codes (n, D)``; :func:`evaluate_disentanglement` runs them
on a trained model through :func:`~.common.grid_representation`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from .beta_vae import beta_vae_score
from .common import grid_codes, grid_representation
from .dci import dci_from_importance, dci_score
from .factor_vae import factor_vae_score
from .mig import mig_score
from .sap import sap_score


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric function, the key of its headline number, and the name of its held-out-points argument."""

    score: Callable
    headline: tuple[str, ...]
    eval_arg: str | None
    source: str


#: metric name -> Metric
METRICS: dict[str, Metric] = {
    "beta_vae": Metric(beta_vae_score, ("eval_accuracy",), "num_eval", "Higgins et al. 2017, sec. 3"),
    "factor_vae": Metric(factor_vae_score, ("eval_accuracy",), "num_eval", "Kim & Mnih 2018, sec. 4"),
    "mig": Metric(mig_score, ("mig",), None, "Chen et al. 2018, sec. 5"),
    "dci": Metric(
        dci_score,
        ("disentanglement", "completeness", "informativeness_test"),
        "num_test",
        "Eastwood & Williams 2018, sec. 2",
    ),
    "sap": Metric(sap_score, ("sap",), "num_test", "Kumar et al. 2018, sec. 3"),
}


def evaluate_disentanglement(
    model,
    dataset,
    metrics=tuple(METRICS),
    seed: int = 0,
    num_train: int | None = None,
    num_eval: int | None = None,
    overrides: dict[str, dict] | None = None,
    codes=None,
) -> dict:
    """Run ``metrics`` on ``model``'s encoder means over ``dataset``'s factor grid.

    Args:
        model: a trained AE/VAE.
        dataset: a :class:`~vaekit.data.factors.FactorDataset` (dsprites, dsprites-synthetic).
        metrics: names from :data:`METRICS`.
        seed: seed of each metric's factor draws (each metric starts from it).
        num_train, num_eval: override every metric's training / held-out points (default: the
            reference's 10,000 / 5,000).
        overrides: metric name -> keyword arguments of that metric, applied last, e.g.
            ``{"dci": {"num_train": 1000, "num_test": 500}}``.
        codes: the :func:`~.common.grid_codes` table if already computed.

    Returns:
        metric name -> its result dict, plus ``time_s`` (seconds) and ``source`` per metric.

    Raises:
        ValueError: unknown metric names or a dataset without factors.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    representation = grid_representation(dataset, grid_codes(model, dataset) if codes is None else codes)
    results = {}
    for name in metrics:
        metric = METRICS[name]
        kwargs = {"seed": seed, **({"num_train": num_train} if num_train else {})}
        if num_eval and metric.eval_arg:
            kwargs[metric.eval_arg] = num_eval
        kwargs.update((overrides or {}).get(name, {}))
        start = time.perf_counter()
        results[name] = {
            **metric.score(dataset, representation, **kwargs),
            "arguments": kwargs,
            "time_s": time.perf_counter() - start,
            "source": metric.source,
        }
    return results


def headline(results: dict) -> dict[str, float]:
    """The headline numbers of :func:`evaluate_disentanglement` results: "metric.key" -> value."""
    return {
        f"{name}.{key}": results[name][key] for name in results if name in METRICS for key in METRICS[name].headline
    }


__all__ = [
    "METRICS",
    "Metric",
    "beta_vae_score",
    "dci_from_importance",
    "dci_score",
    "evaluate_disentanglement",
    "factor_vae_score",
    "grid_codes",
    "grid_representation",
    "headline",
    "mig_score",
    "sap_score",
]
