"""Separated attribute predictability (Kumar et al. 2018, sec. 3; disentanglement_lib
``sap_score.py`` defaults, discrete factors).

Protocol: 10,000 training and 5,000 test observations; for every (code d, factor k) a linear SVM
(scikit-learn ``LinearSVC(C=0.01, class_weight="balanced")``) predicts factor k from code d alone;
its test accuracy fills the score matrix S (D x K). SAP is the mean over factors of the gap
between the two best codes' accuracies. The second-best code of a perfectly disentangled
representation still predicts at chance (1/size of the factor with balanced classes), so even
the ground-truth factors score about mean_k (1 − 1/size_k), not 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from .common import Representation, check_points, sample_codes


def sap_score(
    dataset, representation: Representation, seed: int = 0, num_train: int = 10_000, num_test: int = 5_000
) -> dict:
    """SAP score of ``representation`` on ``dataset``.

    Returns:
        ``sap`` in [0, 1] and ``score_matrix``: (D, K) test accuracies.

    Raises:
        ValueError: a representation of fewer than 2 dimensions.
    """
    check_points(num_train=num_train, num_test=num_test)
    rng = np.random.default_rng(seed)
    x_train, y_train = sample_codes(dataset, representation, num_train, rng)
    x_test, y_test = sample_codes(dataset, representation, num_test, rng)
    if x_train.shape[1] < 2:
        raise ValueError(f"SAP needs at least 2 code dimensions, got {x_train.shape[1]}")
    matrix = np.zeros((x_train.shape[1], y_train.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for d in range(x_train.shape[1]):
            for k in range(y_train.shape[1]):
                svm = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                svm.fit(x_train[:, d : d + 1], y_train[:, k])
                matrix[d, k] = np.mean(svm.predict(x_test[:, d : d + 1]) == y_test[:, k])
    top = np.sort(matrix, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2])), "score_matrix": matrix.tolist()}
