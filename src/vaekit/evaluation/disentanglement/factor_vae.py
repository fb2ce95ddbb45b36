"""FactorVAE score (Kim & Mnih 2018, sec. 4; disentanglement_lib ``factor_vae.py`` defaults).

Protocol: each code dimension is divided by its standard deviation over 10,000 random
observations; dimensions with a standard deviation below 0.05 (collapsed) are pruned. A vote
draws 64 observations sharing one factor k and takes the (unpruned) code dimension of least
normalised variance; a majority-vote classifier maps each dimension to the factor it most often
votes for. 10,000 training votes build it, 5,000 evaluation votes score it. The vote is recorded
at the dimension's index in the full code (the reference code records the index among the kept
dimensions, which names the wrong dimension once some are pruned).
"""

from __future__ import annotations

import numpy as np

from .common import CHUNK, Representation, batch_codes, check_points, sample_codes, varying_factors


def _votes(dataset, representation, n, batch_size, rng, scale, active):
    factors, k = varying_factors(dataset, n, batch_size, rng, fixed_rows="batch")
    ratio = (
        np.concatenate(
            [
                batch_codes(representation, factors[i : i + CHUNK])[:, :, active].var(axis=1, ddof=1)
                for i in range(0, n, CHUNK)
            ]
        )
        / scale[active] ** 2
    )
    dims = np.flatnonzero(active)[ratio.argmin(axis=1)]
    votes = np.zeros((len(dataset.factor_sizes), len(active)), dtype=np.int64)
    np.add.at(votes, (k, dims), 1)
    return votes


def factor_vae_score(
    dataset,
    representation: Representation,
    seed: int = 0,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    batch_size: int = 64,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict:
    """FactorVAE score of ``representation`` on ``dataset`` (arguments as in the BetaVAE score).

    Returns:
        ``train_accuracy``, ``eval_accuracy`` (the score) in [0, 1], ``num_active_dims``, and
        ``votes``: the training votes ``(K, D)`` as lists. With no active dimension every
        accuracy is 0 (as in the reference).
    """
    check_points(
        num_train=num_train, num_eval=num_eval, batch_size=batch_size, num_variance_estimate=num_variance_estimate
    )
    rng = np.random.default_rng(seed)
    codes, _ = sample_codes(dataset, representation, num_variance_estimate, rng)
    scale = codes.std(axis=0, ddof=1)
    active = scale >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0, "votes": []}
    train = _votes(dataset, representation, num_train, batch_size, rng, scale, active)
    evaluation = _votes(dataset, representation, num_eval, batch_size, rng, scale, active)
    classifier = train.argmax(axis=0)  # factor predicted for each code dimension
    return {
        "train_accuracy": float(train.max(axis=0).sum() / train.sum()),
        "eval_accuracy": float(evaluation[classifier, np.arange(len(active))].sum() / evaluation.sum()),
        "num_active_dims": int(active.sum()),
        "votes": train.tolist(),
    }
