"""Feature standardisation of tabular data, stored as JSON (never pickled).

The statistics come from scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`
(``mean_``, ``scale_``; a constant feature gets scale 1); :class:`Standardizer` keeps only those two
vectors so that a run folder or a saved detector can write them to JSON and apply them again.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """x -> (x − mean) / scale per feature.

    Attributes:
        mean: float64 ``(D,)`` feature means of the training data.
        scale: float64 ``(D,)`` feature standard deviations (population std; 1 for constant features).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x) -> Standardizer:
        """Statistics of ``x`` ``(N, D)`` (tensor or array), computed by sklearn's StandardScaler.

        Raises:
            ValueError: ``x`` is not 2-D ``(N, D)`` with N >= 1.
        """
        x = np.asarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"standardisation needs tabular data (N, D) with N >= 1, got shape {x.shape}")
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        return cls(scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64))

    @property
    def n_features(self) -> int:
        """Number of features D."""
        return len(self.mean)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"the scaler was fitted on {self.n_features} features; got data of shape {tuple(x.shape)}")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` tensor -> standardised ``(N, D)`` tensor of the same dtype (computed in float64)."""
        self._check(x)
        mean, scale = (torch.as_tensor(v, device=x.device) for v in (self.mean, self.scale))
        return ((x.double() - mean) / scale).to(x.dtype)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``(N, D)`` -> original units ``(N, D)``, same dtype."""
        self._check(x)
        mean, scale = (torch.as_tensor(v, device=x.device) for v in (self.mean, self.scale))
        return (x.double() * scale + mean).to(x.dtype)

    def to_dict(self) -> dict:
        """JSON-ready ``{"mean": [...], "scale": [...]}`` (float64 values round-trip exactly)."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> Standardizer:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: missing keys, lengths that differ, or a non-positive or non-finite scale
                (or a non-finite mean): the message names the features.
        """
        if not isinstance(values, dict) or not {"mean", "scale"} <= set(values):
            raise ValueError(f"a scaler record needs 'mean' and 'scale' lists, got {values!r:.80}")
        try:
            mean, scale = (np.asarray(values[k], dtype=np.float64) for k in ("mean", "scale"))
        except (TypeError, ValueError):
            raise ValueError("a scaler record's 'mean' and 'scale' must be lists of numbers") from None
        if mean.ndim != 1 or scale.ndim != 1:
            raise ValueError(
                f"a scaler record's 'mean' and 'scale' must be flat lists, got shapes {mean.shape} and {scale.shape}"
            )
        if mean.shape != scale.shape:
            raise ValueError(
                f"a scaler record's 'mean' has {len(mean)} values but 'scale' has {len(scale)}; one of each per feature"
            )
        bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)) | ~np.isfinite(mean))
        if len(bad):
            shown = ", ".join(f"{j} (mean {mean[j]:g}, scale {scale[j]:g})" for j in bad[:5])
            raise ValueError(
                f"a scaler record needs a finite mean and a positive finite scale for every feature; "
                f"{len(bad)} feature(s) have not: {shown}{', ...' if len(bad) > 5 else ''}"
            )
        return cls(mean, scale)


STANDARDIZE_MODES = ("auto", "yes", "no")


def in_unit_interval(x) -> bool:
    """True when every value of ``x`` (tensor or array, any shape) lies in [0, 1]."""
    x = x.detach() if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    return bool(x.numel() > 0 and x.min() >= 0 and x.max() <= 1)


def wants_standardization(mode: str, data_shape, likelihood: str, x=None) -> bool:
    """Whether data of ``data_shape`` are standardised under ``Config.standardize = mode``.

    "auto": yes for tabular examples ``(D,)`` modelled with the gaussian likelihood (the Bernoulli
    likelihoods need data in [0, 1], which standardising would break), except when the training
    data ``x`` are given and every value lies in [0, 1] (min >= 0 and max <= 1, e.g. flattened
    images such as scikit-learn's digits / 16): data already bounded in [0, 1] are kept as they
    are, like images (issue 21: standardising flat digits cost :class:`vaekit.AnomalyDetector`
    0.04 AUROC). Without ``x`` (``vaekit train``, whose default likelihood scale 1.0 belongs to
    standardised features) the bound is not checked. "yes": always (tabular only); "no": never.

    Raises:
        ValueError: an unknown mode, or "yes" for non-tabular (image) data.
    """
    if mode not in STANDARDIZE_MODES:
        raise ValueError(f"standardize must be one of {', '.join(STANDARDIZE_MODES)}, got {mode!r}")
    tabular = len(tuple(data_shape)) == 1
    if mode == "yes" and not tabular:
        raise ValueError(f"standardize='yes' needs tabular examples (D,), got examples of shape {tuple(data_shape)}")
    if mode == "auto":
        return tabular and likelihood == "gaussian" and (x is None or not in_unit_interval(x))
    return mode == "yes"
