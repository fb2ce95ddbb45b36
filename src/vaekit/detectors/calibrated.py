"""What every vaekit detector shares: scikit-learn input checks, the calibration split, conformal
p-values and the threshold.

A detector subclass of :class:`CalibratedDetector` implements two methods:
``_fit_density(x, seed)`` (train on the proper training rows ``(n, D)`` float64) and
``_score_rows(x)`` (normality scores of validated rows, ``(m,)`` float64, higher = more normal,
a function of each row alone). ``fit`` holds out ``calibration_fraction`` of the rows, trains
on the rest and keeps the sorted scores of the held-out rows: the split-conformal recipe of
:mod:`vaekit.evaluation.conformal` (Laxhammar & Falkman 2015; Bates et al. 2023).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..evaluation.conformal import conformal_offset, conformal_pvalues, conformal_rank, decision


def _as_numpy(X):
    """Tensors to numpy; image batches ``(n, *shape)`` flattened to rows. Returns (rows, shape or None)."""
    if torch.is_tensor(X):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.ndim > 2:
        return X.reshape(len(X), -1), tuple(X.shape[1:])
    return X, None


class CalibratedDetector(OutlierMixin, BaseEstimator):
    """Base of the vaekit detectors (not used directly).

    Conventions (scikit-learn's outlier detectors, e.g. IsolationForest): ``score_samples``
    higher = more normal; ``decision_function = score_samples − offset_``, negative = outlier;
    ``predict`` +1 inlier / −1 outlier. Here ``offset_`` is the conformal threshold: on normal
    data exchangeable with the calibration rows, ``predict`` flags at most a fraction ``fpr``
    (in expectation over the calibration split), and ``pvalues`` are valid p-values.

    Input: ``(n_samples, n_features)`` array-like (numpy, pandas, lists, a torch tensor), or a batch
    of images ``(n_samples, *shape)`` (flattened; ``data_shape_`` remembers the shape).

    Fitted attributes: ``n_features_in_``, ``data_shape_`` (one example's shape as the model
    sees it), ``calibration_scores_`` (sorted ``(n_cal,)`` normality scores of the held-out rows),
    ``offset_``.
    """

    def _validate_rows(self, X, reset: bool) -> tuple[np.ndarray, tuple | None]:
        """Rows ``(n, D)`` float64 (C-contiguous, own memory) and the image shape of ``X`` if it had one."""
        rows, shape = _as_numpy(X)
        rows = validate_data(self, rows, reset=reset, dtype=np.float64, ensure_min_samples=2 if reset else 1)
        if not reset and shape is not None and shape != tuple(self.data_shape_):
            raise ValueError(
                f"X has examples of shape {shape}, but {type(self).__name__} was fitted on examples "
                f"of shape {tuple(self.data_shape_)}"
            )
        return np.array(rows, dtype=np.float64, order="C", copy=True), shape

    def _resolve_data_shape(self, shape: tuple | None, n_features: int) -> tuple[int, ...]:
        """The example shape the model sees: the ``data_shape`` parameter, else the input's, else ``(D,)``."""
        wanted = getattr(self, "data_shape", None)
        if wanted is not None:
            wanted = tuple(int(s) for s in wanted)
            if int(np.prod(wanted)) != n_features:
                raise ValueError(
                    f"data_shape={wanted} holds {int(np.prod(wanted))} values, but X has {n_features} "
                    f"features per row; give a shape whose product is {n_features}, or None"
                )
            return wanted
        return shape if shape is not None else (n_features,)

    def fit(self, X, y=None):
        """Hold out ``calibration_fraction`` of ``X`` (presumed normal), train on the rest, calibrate.

        Args:
            X: ``(n_samples, n_features)`` or images ``(n_samples, *shape)``; at least 2 rows.
            y: ignored (scikit-learn convention).

        Returns:
            self.

        Raises:
            ValueError: bad parameters (scikit-learn's messages) or data (NaN/Inf, fewer than 2
                rows, no features, sparse or complex input).
        """
        self._validate_params()
        rows, shape = self._validate_rows(X, reset=True)
        self.data_shape_ = self._resolve_data_shape(shape, rows.shape[1])
        rng = check_random_state(self.random_state)
        order = rng.permutation(len(rows))
        n_cal = min(len(rows) - 1, max(1, int(round(self.calibration_fraction * len(rows)))))
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self._fit_density(rows[np.sort(order[n_cal:])], seed)
        self._calibrate(self._score_rows(rows[np.sort(order[:n_cal])]))
        return self

    def _calibrate(self, scores: np.ndarray) -> None:
        """Keep the calibration scores and set ``offset_`` for ``fpr`` (warns when it cannot be reached)."""
        self.calibration_scores_ = np.sort(np.asarray(scores, dtype=np.float64))
        n = len(self.calibration_scores_)
        if conformal_rank(n, self.fpr) == 0:
            warnings.warn(
                f"{n} calibration rows cannot reach fpr={self.fpr}: the smallest p-value is 1/{n + 1}, so "
                f"nothing will be flagged; give at least {int(np.ceil(1 / self.fpr)) - 1} calibration rows "
                f"(more data or a larger calibration_fraction)",
                UserWarning,
                stacklevel=3,
            )
        self.offset_ = conformal_offset(self.calibration_scores_, self.fpr)

    def _checked_rows(self, X) -> np.ndarray:
        check_is_fitted(self, "calibration_scores_")
        return self._validate_rows(X, reset=False)[0]

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row, higher = more normal: float64 ``(n_samples,)``.

        A function of the row and the fitted detector only: permuting, splitting or batching
        ``X`` gives bit-identical scores.

        Raises:
            NotFittedError: before fit. ValueError: bad data or a feature count that does not match.
        """
        return self._score_rows(self._checked_rows(X))

    def pvalues(self, X) -> np.ndarray:
        """Split-conformal p-values ``(1 + #{calibration scores <= s(x)}) / (n_cal + 1)``, float64 ``(n_samples,)``.

        For a normal row (exchangeable with the calibration rows) P(p <= α) <= α for every α
        (Bates et al. 2023, sec. 2). A small p-value is evidence of an anomaly; it is not the
        probability that the row is normal.
        """
        return conformal_pvalues(self.calibration_scores_, self.score_samples(X))

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) − offset_``, float64 ``(n_samples,)``: negative exactly when the p-value is <= ``fpr``
        (−Inf for a non-finite score: :func:`vaekit.evaluation.conformal.decision`)."""
        return decision(self.score_samples(X), self.offset_)

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, −1 for outliers (p-value <= ``fpr``), int ``(n_samples,)``."""
        return np.where(self.decision_function(X) < 0, -1, 1)
