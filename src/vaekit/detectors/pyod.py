"""PyOD adapter: any vaekit detector as a ``pyod.models.base.BaseDetector`` (``pip install vaekit[pyod]``).

PyOD's conventions differ from scikit-learn's: ``decision_function`` is an *outlier* score
(higher = more anomalous), ``fit`` sets ``decision_scores_`` (the training rows' outlier
scores), ``threshold_`` and ``labels_`` (0 inlier, 1 outlier), and ``predict`` returns 0/1. The
adapter keeps PyOD's contract, including its threshold: the ``1 − contamination`` quantile of the
training scores (in-sample, so not a calibrated false-alarm rate). ``threshold="conformal"``
replaces it with the wrapped detector's conformal threshold (``fpr`` on held-out normal rows,
:mod:`vaekit.evaluation.conformal`); ``pvalues(X)`` gives the conformal p-values either way.

This module imports PyOD at import time (it subclasses ``BaseDetector``); ``import vaekit`` does not import it.
"""

from __future__ import annotations

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted


class PyODAdapter(BaseDetector):
    """A vaekit detector (:class:`vaekit.AnomalyDetector`, :class:`~vaekit.detectors.flows.FlowDetector`) for PyOD.

    Args:
        detector: an unfitted vaekit detector (cloned at fit); None = ``AnomalyDetector()``.
        contamination: PyOD's contamination in (0, 0.5]: the fraction of training rows labelled
            outliers when ``threshold="contamination"``.
        threshold: "contamination" (PyOD's in-sample quantile) or "conformal" (the detector's
            ``offset_``: ``predict`` flags a row iff its conformal p-value is <= the detector's ``fpr``).

    Attributes (after fit): ``detector_`` (the fitted vaekit detector), ``decision_scores_``
    (``(n_samples,)`` outlier scores of the training rows: minus ``score_samples``),
    ``threshold_``, ``labels_`` (0/1 per training row).
    """

    def __init__(self, detector=None, contamination: float = 0.1, threshold: str = "contamination"):
        super().__init__(contamination=contamination)
        self.detector = detector
        self.threshold = threshold

    def fit(self, X, y=None):
        """Fit the wrapped detector on ``X`` (presumed normal) and set PyOD's fitted attributes.

        Raises:
            ValueError: ``threshold`` not "contamination"/"conformal", or the detector's own errors.
        """
        if self.threshold not in ("contamination", "conformal"):
            raise ValueError(f"threshold must be 'contamination' or 'conformal', got {self.threshold!r}")
        from .anomaly import AnomalyDetector

        self._set_n_classes(y)
        self.detector_ = clone(self.detector if self.detector is not None else AnomalyDetector()).fit(X)
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        if self.threshold == "conformal":
            self.threshold_ = -float(self.detector_.offset_)
            self.labels_ = (self.decision_scores_ > self.threshold_).astype(int).ravel()
        return self

    def decision_function(self, X) -> np.ndarray:
        """Outlier score of each row (PyOD convention, higher = more anomalous): ``−score_samples(X)``, ``(n_samples,)``;
        +Inf for a row the model cannot score (a non-finite score is an outlier)."""
        check_is_fitted(self, ["detector_"])
        scores = self.detector_.score_samples(X)
        return np.where(np.isfinite(scores), -scores, np.inf)

    def pvalues(self, X) -> np.ndarray:
        """The wrapped detector's conformal p-values, ``(n_samples,)``; small = anomalous."""
        check_is_fitted(self, ["detector_"])
        return self.detector_.pvalues(X)
