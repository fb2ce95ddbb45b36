"""BetaVAE score (Higgins et al. 2017, sec. 3 "Disentanglement metric"; disentanglement_lib
``beta_vae.py`` defaults).

Protocol: a training point picks a factor k uniformly, draws 64 pairs of observations whose two
members share factor k (the other factors drawn independently), and takes as feature the mean
over the 64 pairs of |z1 − z2| (encoder means). A logistic-regression classifier (scikit-learn
defaults) learns k from the feature on 10,000 points and is scored on 5,000 fresh points. Chance
is 1/K; a representation where one code ignores all but factor k scores 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from .common import CHUNK, Representation, batch_codes, check_points, varying_factors


def _features(dataset, representation, n, batch_size, rng):
    (first, second), k = varying_factors(dataset, n, batch_size, rng, fixed_rows="pairs")
    features = [
        np.abs(
            batch_codes(representation, first[i : i + CHUNK]) - batch_codes(representation, second[i : i + CHUNK])
        ).mean(axis=1)
        for i in range(0, n, CHUNK)
    ]
    return np.concatenate(features), k


def beta_vae_score(
    dataset,
    representation: Representation,
    seed: int = 0,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    batch_size: int = 64,
) -> dict:
    """BetaVAE score of ``representation`` on ``dataset``.

    Args:
        dataset: has ``factor_sizes`` and ``sample_factors(n, rng)``.
        representation: ``factors (n, K) -> codes (n, D)``.
        seed: seed of the numpy generator drawing every factor.
        num_train, num_eval: classifier training and evaluation points.
        batch_size: pairs averaged per point.

    Returns:
        ``train_accuracy``, ``eval_accuracy`` in [0, 1] (the score is ``eval_accuracy``).
    """
    check_points(num_train=num_train, num_eval=num_eval, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    x_train, y_train = _features(dataset, representation, num_train, batch_size, rng)
    x_eval, y_eval = _features(dataset, representation, num_eval, batch_size, rng)
    classifier = LogisticRegression(random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    return {
        "train_accuracy": float(classifier.score(x_train, y_train)),
        "eval_accuracy": float(classifier.score(x_eval, y_eval)),
    }
