"""Mutual information gap (Chen et al. 2018, sec. 5, eq. 6; disentanglement_lib ``mig.py`` defaults).

Protocol: encoder means of 10,000 random observations, each code dimension discretised into 20
equal-width bins; I(code_d; factor_k) estimated from the joint histogram; for each factor the gap
between its two most informative codes divided by the factor's entropy; MIG is the mean over
factors. 1 = each factor captured by one code alone; a duplicated code gives a gap of 0.
"""

from __future__ import annotations

import numpy as np

from .common import Representation, check_points, factor_entropy, histogram_discretize, mutual_information, sample_codes


def mig_score(
    dataset, representation: Representation, seed: int = 0, num_train: int = 10_000, num_bins: int = 20
) -> dict:
    """MIG of ``representation`` on ``dataset``.

    Returns:
        ``mig`` in [0, 1], ``mig_per_factor`` (list of K), ``mutual_information``: (D, K) nats.

    Raises:
        ValueError: a representation of fewer than 2 dimensions (no gap to take).
    """
    check_points(num_train=num_train, num_bins=num_bins)
    codes, factors = sample_codes(dataset, representation, num_train, np.random.default_rng(seed))
    if codes.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 code dimensions, got {codes.shape[1]}")
    mi = mutual_information(histogram_discretize(codes, num_bins), factors)
    top = -np.sort(-mi, axis=0)
    per_factor = (top[0] - top[1]) / factor_entropy(factors)
    return {"mig": float(per_factor.mean()), "mig_per_factor": per_factor.tolist(), "mutual_information": mi.tolist()}
