"""Split-conformal p-values and thresholds for anomaly scores.

A detector holds out a calibration set of normal rows at fit time (never trained on) and keeps
their normality scores s_1..s_n. For a new row with score s, the conformal p-value is

    p(s) = (1 + #{i : s_i <= s}) / (n + 1)

(inductive conformal anomaly detection: Laxhammar & Falkman 2015, "Inductive conformal anomaly
detection for sequential detection of anomalous sub-trajectories", Ann. Math. Artif. Intell. 74;
the marginal conformal p-value of Bates, Candès, Lei, Romano & Sesia 2023, "Testing for outliers
with conformal p-values", Ann. Statist. 51, sec. 2; low normality = extreme). If the new row
and the calibration rows are exchangeable (the row is normal), P(p <= α) <= α for every α, the
probability taken over the calibration set and the row (marginal validity, Bates et al. sec. 2).
Flagging p <= α is the same as flagging s < s_(k) with k = floor(α (n + 1)), the k-th smallest
calibration score: that is the threshold :func:`conformal_offset` returns.

Conditionally on one calibration set the false-alarm rate is random: it follows
Beta(k, n + 1 − k) (Bates et al. 2023, sec. 3.1, after Vovk 2012), so its spread shrinks like
1/sqrt(n). :func:`false_alarm_interval` gives the interval a test of calibration should use.
"""

from __future__ import annotations

import math

import numpy as np


def _sorted_scores(calibration_scores) -> np.ndarray:
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    if len(cal) == 0 or not np.isfinite(cal).all():
        raise ValueError(
            f"calibration scores must be a non-empty set of finite numbers, got {len(cal)} value(s)"
            + ("" if len(cal) == 0 else f" with {int((~np.isfinite(cal)).sum())} non-finite")
        )
    return cal


def conformal_pvalues(calibration_scores, scores) -> np.ndarray:
    """Conformal p-values ``(1 + #{i: s_i <= s}) / (n + 1)`` of normality ``scores`` (higher = more normal).

    Args:
        calibration_scores: ``(n,)`` normality scores of held-out normal rows.
        scores: ``(m,)`` normality scores of the rows to test.

    Returns:
        float64 ``(m,)`` in [1/(n+1), 1]; small = anomalous. A non-finite score (NaN, ±Inf: the
        model could not score the row) gets p = 0, an outlier at every ``fpr``.

    Raises:
        ValueError: an empty or non-finite calibration set.
    """
    cal = _sorted_scores(calibration_scores)
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.searchsorted(cal, scores, side="right")
    return np.where(np.isfinite(scores), (1.0 + counts) / (len(cal) + 1.0), 0.0)


def decision(scores, offset: float) -> np.ndarray:
    """scikit-learn's ``decision_function``: ``scores − offset``, float64, negative = outlier; a
    non-finite score (NaN, ±Inf) gives −Inf: a row the model cannot score is an outlier."""
    scores = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(scores), scores - offset, -np.inf)


def conformal_rank(n_calibration: int, fpr: float) -> int:
    """k = floor(fpr (n + 1)): the rank of the calibration score that is the threshold (0: none possible)."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr!r}")
    return int(math.floor(fpr * (n_calibration + 1) + 1e-12))


def conformal_offset(calibration_scores, fpr: float) -> float:
    """The score threshold that flags exactly the rows with p-value <= ``fpr``.

    A row is an outlier iff its score is below the returned value (scikit-learn's ``offset_``:
    ``decision_function = score_samples − offset_ < 0``). It is the k-th smallest calibration
    score, k = floor(fpr (n + 1)); when k = 0 the calibration set is too small to reach ``fpr``
    and the threshold is −inf (nothing is flagged).
    """
    cal = _sorted_scores(calibration_scores)
    k = conformal_rank(len(cal), fpr)
    return float(cal[k - 1]) if k >= 1 else -math.inf


def false_alarm_interval(n_calibration: int, n_test: int, fpr: float, level: float = 0.99) -> tuple[int, int]:
    """Central ``level`` interval of the number of false alarms among ``n_test`` normal rows.

    With one calibration set of n rows and threshold rank k, the false-alarm rate is
    Beta(k, n + 1 − k) and the count among m test rows is beta-binomial(m, k, n + 1 − k)
    (Bates et al. 2023, sec. 3.1). Returns the (low, high) counts, inclusive.
    """
    from scipy.stats import betabinom

    k = conformal_rank(n_calibration, fpr)
    if k == 0:
        return 0, 0
    dist = betabinom(n_test, k, n_calibration + 1 - k)
    return int(dist.ppf((1 - level) / 2)), int(dist.ppf(1 - (1 - level) / 2))
