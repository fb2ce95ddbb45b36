"""A scikit-learn-style anomaly detector: a VAE trained on normal data, scored per example.

``AnomalyDetector`` follows scikit-learn's outlier-detection conventions (IsolationForest,
LocalOutlierFactor(novelty=True)): ``fit(X)`` on presumed-normal data, ``score_samples(X)``
(higher = more normal), ``decision_function(X) = score_samples(X) − offset_`` (negative =
outlier), ``predict(X)`` (+1 inlier, −1 outlier) with ``offset_`` the ``contamination`` quantile
of the training scores. The default score is An & Cho's (2015) reconstruction probability under
a Gaussian likelihood with learned variance (:mod:`vaekit.evaluation.anomaly`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from .. import io, pipeline
from ..config import Config
from ..data.base import check_finite
from ..data.scaling import Standardizer, wants_standardization
from ..evaluation.anomaly import DEFAULT_NUM_SAMPLES, check_score, score_samples
from ..models import build_model
from ..training import Progress
from ..training import fit as fit_model

#: The detector's own saved state, beside the model's config.json and model.safetensors.
DETECTOR = "detector.json"
FORMAT_VERSION = 1
#: Examples per scoring batch (the Monte Carlo draws are seeded per call, batch by batch).
SCORE_BATCH_SIZE = 1024
#: Config fields that name a data source: the detector gets its data from fit(X), not from them.
DATA_SOURCE_FIELDS = ("data", "data_dir", "path", "label_column")
#: Model options that differ from Config's defaults: tabular anomaly detection wants a real density.
MODEL_DEFAULTS = {"likelihood": "gaussian", "likelihood_scale": "learned", "data": "array"}
_PARAMS = ("score", "contamination", "score_num_samples", "verbose")


def model_option_names() -> list[str]:
    """Config fields accepted as model options (every field but the data-source ones)."""
    return [name for name in Config().to_flat() if name not in DATA_SOURCE_FIELDS]


def as_array(X, name: str = "X") -> np.ndarray:
    """``X`` (array-like or tensor) as a checked float64 array ``(N, D)`` or images ``(N, C, H, W)``.

    Raises:
        ValueError: non-numeric values, 1-D/3-D/5-D input, no rows, or NaN/Inf (naming the rows).
    """
    raw = X.detach().cpu().numpy() if torch.is_tensor(X) else X
    try:
        x = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers only; got values of type {np.asarray(raw).dtype}") from None
    if x.ndim not in (2, 4):
        raise ValueError(f"{name} must be 2-D (n_samples, n_features) or images (n_samples, C, H, W), "
                         f"got shape {x.shape}")
    if len(x) == 0 or x[0].size == 0:
        raise ValueError(f"{name} is empty: got shape {x.shape}, expected at least one row and one feature")
    check_finite(x.reshape(len(x), -1), name)
    return x


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Anomaly detection with a VAE (An & Cho 2015), scikit-learn style.

    Args:
        score: a name in :data:`vaekit.evaluation.anomaly.SCORES`: "reconstruction_probability"
            (An & Cho, L = ``score_num_samples``), "elbo", "log_likelihood" (importance sampled,
            K = ``score_num_samples``) or "reconstruction_error".
        contamination: expected fraction of outliers in the training data, in (0, 0.5]; sets
            ``offset_`` to that quantile of the training scores.
        score_num_samples: Monte Carlo samples L (or K) per example when scoring.
        verbose: show training and scoring progress bars.
        **model_options: any :class:`~vaekit.config.Config` field except data, data_dir, path and
            label_column, e.g. ``latent_dim=4, hidden=(64, 64), epochs=50, beta=1.0, seed=0``.
            Defaults: Config's, except ``likelihood="gaussian"``, ``likelihood_scale="learned"``.
            ``standardize`` ("auto": tabular data with the Gaussian likelihood) standardises
            features with the training data's mean/std; the scaler is kept with the model.

    Every argument is stored verbatim (``get_params``/``set_params``/``clone`` work) and
    validated in :meth:`fit`.

    Attributes (after fit):
        model_: the trained VAE; ``config_``: its Config; ``scaler_``: Standardizer or None;
        ``offset_``: float threshold on ``score_samples``; ``n_features_in_``: values per example;
        ``history_``: per-epoch training metrics.
    """

    def __init__(self, score: str = "reconstruction_probability", contamination: float = 0.05,
                 score_num_samples: int = DEFAULT_NUM_SAMPLES, verbose: bool = False, **model_options):
        self.score = score
        self.contamination = contamination
        self.score_num_samples = score_num_samples
        self.verbose = verbose
        self._model_options = tuple(model_options)
        for key, value in model_options.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ parameters

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments (explicit ones and model options), as given."""
        return {key: getattr(self, key) for key in (*_PARAMS, *self._model_options)}

    def set_params(self, **params) -> "AnomalyDetector":
        """Set constructor arguments; a Config field not given before becomes a model option.

        Raises:
            ValueError: a name that is neither a parameter nor a model option.
        """
        valid = set(_PARAMS) | set(model_option_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for AnomalyDetector; valid: {', '.join(sorted(valid))}")
            if key not in _PARAMS and key not in self._model_options:
                self._model_options = (*self._model_options, key)
            setattr(self, key, value)
        return self

    def _config(self) -> Config:
        options = {key: getattr(self, key) for key in self._model_options}
        bad = sorted(set(options) - set(model_option_names()))
        if bad:
            raise ValueError(f"unknown model option(s) {', '.join(bad)}; valid: {', '.join(model_option_names())}")
        return Config.from_flat(**{**MODEL_DEFAULTS, **options})

    def _check_params(self) -> None:
        check_score(self.score)
        if not isinstance(self.contamination, (int, float)) or not 0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be a number in (0, 0.5], got {self.contamination!r}")
        if not isinstance(self.score_num_samples, int) or self.score_num_samples < 1:
            raise ValueError(f"score_num_samples must be a positive integer, got {self.score_num_samples!r}")

    # ------------------------------------------------------------------ fit / score

    def fit(self, X, y=None) -> "AnomalyDetector":
        """Train a VAE on ``X`` (presumed normal) with :func:`vaekit.training.fit` and set ``offset_``.

        Args:
            X: ``(n_samples, n_features)`` or images ``(n_samples, C, H, W)``, numpy or tensor.
            y: ignored (scikit-learn convention).

        Raises:
            ValueError: bad parameters or data (see :func:`as_array`), or data outside [0, 1]
                for a Bernoulli likelihood.
        """
        self._check_params()
        config = self._config()
        x = torch.from_numpy(as_array(X)).float()
        scaler = Standardizer.fit(x) if wants_standardization(config.data.standardize, x.shape[1:],
                                                              config.model.likelihood) else None
        xs = scaler.transform(x) if scaler is not None else x
        model = build_model(config.model, tuple(xs.shape[1:]), unit_interval=bool(((xs >= 0) & (xs <= 1)).all()),
                            seed=config.train.seed)
        check_score(self.score, model)
        model.likelihood.check_support(xs)
        config = dataclasses.replace(config, model=model.config)
        train_x, val_x = xs, None
        if config.train.patience > 0 and config.data.val_fraction > 0:
            train_x, val_x = pipeline.split_validation(xs, config)
            val_x = pipeline.prepare(val_x, config)
        hooks = [Progress(config.train.epochs)] if self.verbose else []
        self.history_ = fit_model(model, pipeline.prepare(train_x, config, training=True), config, val=val_x,
                                  hooks=hooks)
        self._set_fitted(model, config, scaler)
        self.offset_ = float(np.percentile(self.score_samples(X), 100.0 * self.contamination))
        return self

    def _set_fitted(self, model, config: Config, scaler: Standardizer | None) -> None:
        self.model_, self.config_, self.scaler_ = model.eval(), config, scaler
        self.n_features_in_ = int(np.prod(model.data_shape))

    def _transform_input(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        x = as_array(X)
        shape = tuple(self.model_.data_shape)
        if x.shape[1:] != shape:
            if int(np.prod(x.shape[1:])) != self.n_features_in_:
                raise ValueError(f"X has {int(np.prod(x.shape[1:]))} features per row, but this AnomalyDetector "
                                 f"was fitted on {self.n_features_in_} (examples of shape {shape})")
            x = x.reshape(len(x), *shape)
        x = torch.from_numpy(x).float()
        return self.scaler_.transform(x) if self.scaler_ is not None else x

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: higher = more normal (scikit-learn convention).

        The chosen ``score`` with its registered sign: nats per example for the likelihood
        scores, minus the squared error for "reconstruction_error". The Monte Carlo draws are
        seeded with the model's ``seed``, so the same ``X`` always gets the same scores.

        Returns:
            float64 ``(n_samples,)``.

        Raises:
            NotFittedError: before fit. ValueError: bad data or a feature count that does not
                match the fitted one.
        """
        x = self._transform_input(X)
        scores = score_samples(self.model_, x, self.score, self.score_num_samples, SCORE_BATCH_SIZE,
                               seed=self.config_.train.seed, progress=self.verbose)
        return scores.double().numpy()

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) − offset_``, ``(n_samples,)``: negative for outliers."""
        check_is_fitted(self, "offset_")
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, −1 for outliers (``decision_function(X) < 0``), int ``(n_samples,)``."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    # ------------------------------------------------------------------ save / load

    def save(self, path) -> Path:
        """Write the fitted detector to the folder ``path``: model.safetensors + config.json (as
        :func:`vaekit.io.save`) + detector.json (parameters, ``offset_``, ``n_features_in_`` and
        the scaler's mean/scale). No pickle. Returns the folder."""
        check_is_fitted(self, "offset_")
        folder = io.save(self.model_, path, self.config_)
        record = {"format_version": FORMAT_VERSION, "params": self.get_params(), "offset_": self.offset_,
                  "n_features_in_": self.n_features_in_,
                  "scaler": self.scaler_.to_dict() if self.scaler_ is not None else None}
        io.write_json(folder / DETECTOR, record)
        return folder

    @classmethod
    def load(cls, path) -> "AnomalyDetector":
        """Rebuild a detector written by :meth:`save`; it scores exactly as the saved one.

        Raises:
            FileNotFoundError: no detector.json / config.json / weights in ``path``.
            ValueError: corrupt files.
        """
        record = io.read_json(Path(path) / DETECTOR)
        if not isinstance(record, dict) or not {"params", "offset_", "scaler"} <= set(record):
            raise ValueError(f"{Path(path) / DETECTOR} is not a vaekit detector record")
        tuples = {k for k, v in Config().to_flat().items() if isinstance(v, tuple)}
        params = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in record["params"].items()}
        detector = cls(**params)
        scaler = Standardizer.from_dict(record["scaler"]) if record["scaler"] is not None else None
        detector._set_fitted(io.load(path), io.load_config(path), scaler)
        detector.offset_ = float(record["offset_"])
        return detector

    @classmethod
    def from_run(cls, run_dir, score: str = "reconstruction_probability", contamination: float = 0.05,
                 score_num_samples: int = DEFAULT_NUM_SAMPLES, verbose: bool = False,
                 offset: float | None = None) -> "AnomalyDetector":
        """A detector from a ``vaekit train`` run folder: its model and scaler, with ``offset_`` the
        ``contamination`` quantile of the scores of the run's whole training split (standardised
        like in training, not binarized), or ``offset`` when given (the training data are then not read).

        Raises:
            FileNotFoundError, ValueError: not a run folder, or its training data cannot be loaded.
        """
        model, config = io.load(run_dir), io.load_config(run_dir)
        options = {k: v for k, v in config.to_flat().items() if k not in DATA_SOURCE_FIELDS}
        detector = cls(score, contamination, score_num_samples, verbose, **options)
        detector._check_params()
        check_score(score, model)
        detector._set_fitted(model, config, pipeline.load_scaler(run_dir))
        if offset is not None:
            detector.offset_ = float(offset)
            return detector
        try:
            train_x = pipeline.load_dataset(config, "train").x
        except (OSError, ValueError) as e:
            raise ValueError(f"the outlier threshold is a quantile of the run's training scores, but its training "
                             f"data cannot be read ({e}); run from the folder it was trained in, or give a threshold (--threshold)") from None
        detector.offset_ = float(np.percentile(detector.score_samples(train_x), 100.0 * contamination))
        return detector


def load_detector(path, score: str | None = None, contamination: float | None = None,
                  score_num_samples: int | None = None, verbose: bool = False,
                  threshold: float | None = None) -> AnomalyDetector:
    """A fitted detector from a folder: a saved :class:`AnomalyDetector` (it has detector.json) or
    a ``vaekit train`` run folder (:meth:`AnomalyDetector.from_run`; defaults: the
    reconstruction probability, contamination 0.05, L = 10). A ``threshold`` becomes ``offset_``.

    Raises:
        ValueError: for a saved detector, a ``score``/``contamination``/``score_num_samples``
            different from the fitted one (its threshold belongs to those settings).
        FileNotFoundError: ``path`` is neither.
    """
    if (Path(path) / DETECTOR).is_file():
        detector = AnomalyDetector.load(path)
        asked = {"score": score, "contamination": contamination, "score_num_samples": score_num_samples}
        for key, value in asked.items():
            if value is not None and value != getattr(detector, key):
                raise ValueError(f"{path} is a detector fitted with {key}={getattr(detector, key)!r}, and its "
                                 f"threshold belongs to that setting; got {key}={value!r}: omit it or refit")
        detector.set_params(verbose=verbose)
        detector.offset_ = detector.offset_ if threshold is None else float(threshold)
        return detector
    return AnomalyDetector.from_run(path, score or "reconstruction_probability",
                                    0.05 if contamination is None else contamination,
                                    score_num_samples or DEFAULT_NUM_SAMPLES, verbose, offset=threshold)
