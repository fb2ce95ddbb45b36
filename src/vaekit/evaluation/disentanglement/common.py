"""What every disentanglement metric shares: representations of factor classes, sampling of
(code, factor) pairs, histogram discretisation and mutual information.

A *representation* here is a function ``factors (n, K) int -> codes (n, D) float``: the
encoder mean of the observation with those factor classes (:func:`grid_representation`), or in
tests the factors themselves. A *dataset* is anything with ``factor_sizes`` and
``sample_factors(n, rng)``, e.g. :class:`vaekit.data.factors.FactorDataset`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from ...data.factors import grid_classes

Representation = Callable[[np.ndarray], np.ndarray]


def check_points(**counts: int) -> None:
    """Raise ValueError unless every named count is an integer >= 2."""
    for key, value in counts.items():
        if not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"{key} must be an integer >= 2, got {value!r}")


@torch.no_grad()
def grid_codes(model, dataset, batch_size: int = 1024) -> np.ndarray:
    """Encoder means of every cell of ``dataset``'s factor grid, in grid order: float64 ``(G, latent_dim)``.

    Raises:
        ValueError: a dataset without ground-truth factors.
    """
    if not hasattr(dataset, "observations_from_factors"):
        raise ValueError(
            f"the disentanglement metrics need a dataset with ground-truth factors "
            f"(dsprites, dsprites-synthetic); got {getattr(dataset, 'name', type(dataset).__name__)!r}"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cells = grid_classes(dataset.factor_sizes)
    table = np.concatenate(
        [
            model.transform(dataset.observations_from_factors(cells[start : start + batch_size]).to(device))
            .double()
            .cpu()
            .numpy()
            for start in range(0, len(cells), batch_size)
        ]
    )
    model.train(was_training)
    return table


def grid_representation(dataset, codes: np.ndarray) -> Representation:
    """``factors (n, K) -> codes (n, D)`` looked up in the table of :func:`grid_codes`.

    The encoder mean is a deterministic function of the image and a factor grid has one image
    per cell, so one table answers every query of every metric exactly (the metrics draw ~2
    million observations; the dSprites grid has 737,280 cells).
    """
    return lambda factors: codes[dataset.grid_index(factors)]


def sample_codes(dataset, representation: Representation, n: int, rng: np.random.Generator):
    """``n`` random observations: codes ``(n, D)`` and their factor classes ``(n, K)``."""
    factors = dataset.sample_factors(n, rng)
    return np.asarray(representation(factors), dtype=np.float64), factors


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each code dimension cut into ``num_bins`` equal-width bins over its range: int ``(n, D)``
    (disentanglement_lib ``utils._histogram_discretize``)."""
    edges = [np.histogram(column, num_bins)[1][:-1] for column in codes.T]
    return np.stack([np.digitize(column, e) for column, e in zip(codes.T, edges)], axis=1)


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Empirical I(code_d; factor_k) in nats for every pair: ``(D, K)``."""
    return np.array([[mutual_info_score(f, c) for f in factors.T] for c in discrete_codes.T])


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy H(factor_k) in nats: ``(K,)``."""
    return np.array([mutual_info_score(f, f) for f in factors.T])


def varying_factors(dataset, n: int, batch_size: int, rng: np.random.Generator, fixed_rows: str):
    """Factor classes of ``n`` batches of ``batch_size`` observations, each with one factor k held fixed.

    ``fixed_rows="pairs"``: two batches per point, the second sharing factor k with the first row
    by row (BetaVAE score); ``"batch"``: one batch whose rows all share the first row's factor k
    (FactorVAE score). Returns (int ``(n, batch_size, K)`` or a pair of them, k ``(n,)``); the
    codes come from :func:`batch_codes`, a chunk of points at a time.
    """
    k = rng.integers(0, len(dataset.factor_sizes), n)
    points = np.arange(n)
    first = dataset.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
    if fixed_rows == "batch":
        first[points, :, k] = first[points, 0, k][:, None]
        return first, k
    second = dataset.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
    second[points, :, k] = first[points, :, k]
    return (first, second), k


#: Points whose codes are looked up at once by the batch metrics: bounds their memory at
#: CHUNK × batch_size × D × 8 bytes (134 MB for 64 observations of a 1,024-pixel code).
CHUNK = 256


def batch_codes(representation: Representation, factors: np.ndarray) -> np.ndarray:
    """Codes of factor batches ``(n, batch, K)``: float64 ``(n, batch, D)``."""
    n, batch, k = factors.shape
    return np.asarray(representation(factors.reshape(-1, k)), dtype=np.float64).reshape(n, batch, -1)


def varying_factor_batches(
    dataset, representation: Representation, n: int, batch_size: int, rng: np.random.Generator, fixed_rows: str
):
    """:func:`varying_factors` with their codes: (codes ``(n, batch_size, D)`` or a pair of them, k ``(n,)``).
    All ``n`` batches are held at once; the metrics use :func:`varying_factors` and :data:`CHUNK`."""
    factors, k = varying_factors(dataset, n, batch_size, rng, fixed_rows)
    if fixed_rows == "batch":
        return batch_codes(representation, factors), k
    return (batch_codes(representation, factors[0]), batch_codes(representation, factors[1])), k
