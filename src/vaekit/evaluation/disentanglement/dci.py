"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018, sec. 2;
disentanglement_lib ``dci.py`` defaults).

Protocol: 10,000 training and 5,000 test observations; per factor a scikit-learn
GradientBoostingClassifier (default settings) predicts the factor class from the encoder means;
its feature importances form the importance matrix R (D codes x K factors). Disentanglement:
Σ_d ρ_d (1 − H_K(P_d·)), with P_d· the normalised row of code d, H_K the entropy in base K and
ρ_d the code's share of the total importance. Completeness: Σ_k ρ_k (1 − H_D(P_·k)) over the
normalised columns, base D. Informativeness: the mean classification accuracy (train and test).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier

from .common import Representation, check_points, sample_codes


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix ``(D, K)`` of non-negative values.

    Code and factor weights are their shares of the total importance; all-zero importance gives
    uniform weights (as in the reference).
    """
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = importance.shape
    total = importance.sum()
    code_weight = importance.sum(1) / total if total > 0 else np.full(d, 1 / d)
    factor_weight = importance.sum(0) / total if total > 0 else np.full(k, 1 / k)
    per_code = 1 - entropy(importance.T + 1e-11, base=k) if k > 1 else np.ones(d)
    per_factor = 1 - entropy(importance + 1e-11, base=d) if d > 1 else np.ones(k)
    return float(per_code @ code_weight), float(per_factor @ factor_weight)


def dci_score(
    dataset, representation: Representation, seed: int = 0, num_train: int = 10_000, num_test: int = 5_000
) -> dict:
    """DCI scores of ``representation`` on ``dataset``.

    Returns:
        ``disentanglement``, ``completeness`` in [0, 1]; ``informativeness_train`` and
        ``informativeness_test``: mean accuracy over factors in [0, 1]; ``importance``: (D, K).
    """
    check_points(num_train=num_train, num_test=num_test)
    rng = np.random.default_rng(seed)
    x_train, y_train = sample_codes(dataset, representation, num_train, rng)
    x_test, y_test = sample_codes(dataset, representation, num_test, rng)
    importance = np.zeros((x_train.shape[1], y_train.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(y_train.shape[1]):
        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_accuracy.append(model.score(x_train, y_train[:, k]))
        test_accuracy.append(model.score(x_test, y_test[:, k]))
    disentanglement, completeness = dci_from_importance(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean(train_accuracy)),
        "informativeness_test": float(np.mean(test_accuracy)),
        "importance": importance.tolist(),
    }
