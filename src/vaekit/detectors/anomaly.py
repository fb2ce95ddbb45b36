"""A scikit-learn anomaly detector: a VAE trained on normal data, scored per row, calibrated by conformal p-values.

``AnomalyDetector`` follows scikit-learn's outlier-detection conventions (IsolationForest,
LocalOutlierFactor(novelty=True)) and passes ``sklearn.utils.estimator_checks``: ``fit(X)`` on
presumed-normal data, ``score_samples(X)`` (higher = more normal), ``decision_function(X) =
score_samples(X) − offset_`` (negative = outlier), ``predict(X)`` (+1 inlier, −1 outlier).

Three properties users rely on (issue 16):

* a row's score depends only on the row and the fitted model: the Monte Carlo draws are common
  random numbers fixed at fit time by ``random_state`` (:mod:`vaekit.evaluation.anomaly`);
* ``fpr`` is a false-alarm rate that holds on new normal data: ``fit`` holds out
  ``calibration_fraction`` of the rows and ``offset_`` is their split-conformal threshold
  (:mod:`vaekit.evaluation.conformal`); ``pvalues(X)`` gives the conformal p-values;
* the defaults are the settings the anomaly benchmark chose without its test data (docs/anomaly.md).

The default score is An & Cho's (2015) reconstruction probability.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import io
from ..config import Config
from ..data import splits
from ..data.base import check_finite
from ..data.scaling import Standardizer, wants_standardization
from ..evaluation.anomaly import (
    DEFAULT_NUM_SAMPLES,
    SCORES,
    all_scores,
    check_score,
    draw_noise,
    in_blocks,
    score_samples,
)
from ..io import checks as runcheck
from ..models import build_model
from ..training import Progress
from ..training import fit as fit_model
from .calibrated import CalibratedDetector

#: The detector's own saved state, beside the model's config.json and model.safetensors.
DETECTOR = "detector.json"
FORMAT_VERSION = 2
#: Config fields that name a data source or are set by the detector itself.
RESERVED_FIELDS = ("data", "data_dir", "path", "label_column", "seed")
#: Config fields that are explicit constructor parameters.
EXPLICIT_FIELDS = (
    "latent_dim",
    "hidden",
    "likelihood",
    "likelihood_scale",
    "epochs",
    "batch_size",
    "lr",
    "beta",
    "standardize",
)
#: Fixed Gaussian scale on [0, 1] data for ``likelihood_scale="auto"`` (benchmark study, docs/anomaly.md).
IMAGE_SCALE = 0.1


def model_option_names() -> list[str]:
    """Config fields accepted in ``model_options`` (every field but the explicit and reserved ones)."""
    return [name for name in Config().to_flat() if name not in (*RESERVED_FIELDS, *EXPLICIT_FIELDS)]


def as_array(X, name: str = "X") -> np.ndarray:
    """``X`` (array-like or tensor) as a checked float64 array ``(N, D)`` or images ``(N, C, H, W)``
    (the input check of :class:`vaekit.detectors.ood.OODDetector`; the detectors of this module use
    scikit-learn's ``validate_data``).

    Raises:
        ValueError: non-numeric values, 1-D/3-D/5-D input, no rows, or NaN/Inf (naming the rows).
    """
    raw = X.detach().cpu().numpy() if torch.is_tensor(X) else X
    try:
        x = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers only; got values of type {np.asarray(raw).dtype}") from None
    if x.ndim not in (2, 4):
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) or images (n_samples, C, H, W), got shape {x.shape}"
        )
    if len(x) == 0 or x[0].size == 0:
        raise ValueError(f"{name} is empty: got shape {x.shape}, expected at least one row and one feature")
    check_finite(x.reshape(len(x), -1), name)
    return x


class AnomalyDetector(CalibratedDetector):
    """Anomaly detection with a VAE (An & Cho 2015), scikit-learn style, with conformal thresholds.

    Args:
        score_type: a name in :data:`vaekit.evaluation.anomaly.SCORES`: "reconstruction_probability"
            (An & Cho, L = ``score_num_samples``), "elbo", "log_likelihood" (importance sampled,
            K = ``score_num_samples``) or "reconstruction_error".
        fpr: false-alarm rate in (0, 1): ``predict`` flags a row when its conformal p-value is
            <= ``fpr``, so on normal data at most this fraction is flagged (in expectation over
            the calibration split).
        calibration_fraction: fraction of the ``fit`` rows held out (not trained on) to calibrate.
        score_num_samples: Monte Carlo samples L (or K) per row when scoring.
        latent_dim, hidden, likelihood, epochs, batch_size, lr, beta: the
            :class:`~vaekit.config.Config` fields of the same names.
        standardize: "auto" (default): standardise tabular rows for the gaussian likelihood unless
            every value of the training rows lies in [0, 1] (min >= 0 and max <= 1: flattened
            images such as scikit-learn's ``load_digits().data / 16`` are modelled as they are,
            like image-shaped input, with the 0.1 likelihood scale of ``likelihood_scale="auto"``);
            "yes": always (tabular only); "no": never. See
            :func:`vaekit.data.scaling.wants_standardization`.
        likelihood_scale: Gaussian likelihood scale: a number, "learned" (one per feature), or
            "auto" = "learned" for standardised (tabular) data and 0.1 for data in [0, 1] (images,
            flattened or not).
        data_shape: shape of one example (e.g. ``(1, 8, 8)``) when rows of ``X`` are flattened
            images; None = as given (2-D: tabular; 4-D: images).
        model_options: other Config fields as a dict, e.g. ``{"model": "ae", "weight_decay": 1e-4}``.
        random_state: int, RandomState or None: the calibration split, initialisation, shuffling
            and the common random numbers of the scores.
        verbose: show training and scoring progress bars.

    Attributes (after fit):
        model_: the trained VAE; ``config_``: its Config; ``scaler_``: Standardizer or None;
        ``noise_seed_``: seed of the common random numbers; ``history_``: per-epoch metrics;
        ``calibration_scores_``, ``offset_``, ``n_features_in_``, ``data_shape_`` (see
        :class:`~vaekit.detectors.calibrated.CalibratedDetector`).
    """

    _parameter_constraints = {
        "score_type": [StrOptions(set(SCORES))],
        "fpr": [Interval(Real, 0, 1, closed="neither")],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither")],
        "score_num_samples": [Interval(Integral, 1, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "likelihood": [StrOptions({"gaussian", "bernoulli", "continuous-bernoulli"})],
        "likelihood_scale": [StrOptions({"auto", "learned"}), Interval(Real, 0, None, closed="neither")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "standardize": [StrOptions({"auto", "yes", "no"})],
        "data_shape": [tuple, list, None],
        "model_options": [dict, None],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        score_type: str = "reconstruction_probability",
        fpr: float = 0.05,
        calibration_fraction: float = 0.2,
        score_num_samples: int = DEFAULT_NUM_SAMPLES,
        latent_dim: int = 4,
        hidden: tuple = (256, 256),
        likelihood: str = "gaussian",
        likelihood_scale="auto",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        beta: float = 1.0,
        standardize: str = "auto",
        data_shape=None,
        model_options=None,
        random_state=None,
        verbose: bool = False,
    ):
        self.score_type = score_type
        self.fpr = fpr
        self.calibration_fraction = calibration_fraction
        self.score_num_samples = score_num_samples
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.likelihood = likelihood
        self.likelihood_scale = likelihood_scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.standardize = standardize
        self.data_shape = data_shape
        self.model_options = model_options
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    def _config(self, seed: int) -> Config:
        options = dict(self.model_options or {})
        bad = sorted(set(options) - set(model_option_names()))
        if bad:
            raise ValueError(
                f"model_options has unknown or reserved key(s) {', '.join(bad)}; valid keys: "
                f"{', '.join(model_option_names())} (the others are constructor parameters)"
            )
        explicit = {name: getattr(self, name) for name in EXPLICIT_FIELDS}
        explicit["hidden"] = tuple(int(h) for h in self.hidden)
        explicit["likelihood_scale"] = 1.0 if self.likelihood_scale == "auto" else self.likelihood_scale
        return Config.from_flat(**{**options, **explicit, "data": "array", "seed": seed})

    def _fit_density(self, rows: np.ndarray, seed: int) -> None:
        config = self._config(seed)
        x = torch.from_numpy(rows).float().reshape(len(rows), *self.data_shape_)
        standardize = wants_standardization(
            config.data.standardize, tuple(self.data_shape_), config.model.likelihood, x
        )
        scaler = Standardizer.fit(x) if standardize else None
        xs = scaler.transform(x) if scaler is not None else x
        unit = bool(((xs >= 0) & (xs <= 1)).all())
        if self.likelihood_scale == "auto":
            config = config.replace(likelihood_scale=IMAGE_SCALE if unit and scaler is None else "learned")
        with torch.random.fork_rng():
            model = build_model(config.model, tuple(self.data_shape_), unit_interval=unit, seed=config.train.seed)
            check_score(self.score_type, model)
            model.likelihood.check_support(xs)
            config = dataclasses.replace(config, model=model.config)
            train_x, val_x = xs, None
            if config.train.patience > 0 and config.data.val_fraction > 0:
                train_x, val_x = splits.split_validation(xs, config)
                val_x = splits.prepare(val_x, config)
            hooks = [Progress(config.train.epochs)] if self.verbose else []
            self.history_ = fit_model(
                model, splits.prepare(train_x, config, training=True), config, val=val_x, hooks=hooks
            )
        self._set_fitted(model, config, scaler, noise_seed=seed + 1)

    def _set_fitted(self, model, config: Config, scaler: Standardizer | None, noise_seed: int) -> None:
        self.model_, self.config_, self.scaler_ = model.eval(), config, scaler
        self.noise_seed_ = int(noise_seed)
        self.data_shape_ = tuple(model.data_shape)
        self.n_features_in_ = int(np.prod(model.data_shape))
        self._calibrated_for = (self.score_type, self.score_num_samples)

    # ------------------------------------------------------------------ scores

    @property
    def noise_(self) -> torch.Tensor:
        """The common random numbers ε ``(score_num_samples, latent_dim)`` shared by every scored row."""
        check_is_fitted(self, "noise_seed_")
        return draw_noise(self.score_num_samples, self.model_.latent_dim, self.noise_seed_)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(rows).float().reshape(len(rows), *self.data_shape_)
        x = self.scaler_.transform(x) if self.scaler_ is not None else x
        scores = score_samples(
            self.model_, x, self.score_type, self.score_num_samples, noise=self.noise_, progress=self.verbose
        )
        return scores.numpy()

    def score_samples_all(self, X) -> dict[str, np.ndarray]:
        """Every registered score of each row from one set of decoder passes (common random numbers):
        name -> float64 ``(n_samples,)`` normality scores (see :func:`vaekit.evaluation.anomaly.all_scores`)."""
        rows = self._checked_rows(X)
        x = torch.from_numpy(rows).float().reshape(len(rows), *self.data_shape_)
        x = self.scaler_.transform(x) if self.scaler_ is not None else x
        model, noise = self.model_.eval(), self.noise_
        table = in_blocks(
            lambda xb: all_scores(model, xb, self.score_num_samples, noise),
            x,
            next(model.parameters()).device,
            progress=self.verbose,
        )
        return {name: table[:, i].numpy() for i, name in enumerate(SCORES)}

    def _check_calibrated(self) -> None:
        check_is_fitted(self, "calibration_scores_")
        if self._calibrated_for != (self.score_type, self.score_num_samples):
            raise ValueError(
                f"this detector was calibrated for score_type={self._calibrated_for[0]!r} with "
                f"score_num_samples={self._calibrated_for[1]}, but now has {self.score_type!r} / "
                f"{self.score_num_samples}: its threshold and p-values belong to the fitted setting; "
                f"set it back or refit (score_samples works for any setting)"
            )

    def pvalues(self, X) -> np.ndarray:
        """Conformal p-values ``(n_samples,)`` as :meth:`CalibratedDetector.pvalues`, after checking
        that the score settings are still the ones the calibration set was scored with.

        Raises:
            ValueError: ``score_type`` or ``score_num_samples`` changed since fit.
        """
        self._check_calibrated()
        return super().pvalues(X)

    def decision_function(self, X) -> np.ndarray:
        """``(n_samples,)`` as :meth:`CalibratedDetector.decision_function` (negative = outlier at
        the ``fpr`` threshold), after the same check as :meth:`pvalues`.

        Raises:
            ValueError: ``score_type`` or ``score_num_samples`` changed since fit.
        """
        self._check_calibrated()
        return super().decision_function(X)

    # ------------------------------------------------------------------ save / load

    def save(self, path) -> Path:
        """Write the fitted detector to the folder ``path``: model.safetensors + config.json (as
        :func:`vaekit.io.save`) + detector.json (parameters, calibration scores, ``offset_``,
        the noise seed, shapes and the scaler's mean/scale). No pickle. Returns the folder."""
        self._check_calibrated()
        folder = io.save(self.model_, path, self.config_)
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        record = {
            "format_version": FORMAT_VERSION,
            "params": params,
            "offset_": self.offset_ if np.isfinite(self.offset_) else None,
            "calibration_scores_": self.calibration_scores_.tolist(),
            "noise_seed_": self.noise_seed_,
            "n_features_in_": self.n_features_in_,
            "data_shape_": list(self.data_shape_),
            "scaler": self.scaler_.to_dict() if self.scaler_ is not None else None,
        }
        io.write_json(folder / DETECTOR, record)
        return folder

    @classmethod
    def load(cls, path) -> AnomalyDetector:
        """Rebuild a detector written by :meth:`save`; it scores, thresholds and p-values exactly as the saved one.

        Raises:
            FileNotFoundError: no detector.json / config.json / weights in ``path``.
            ValueError: corrupt files, or a format-1 detector (vaekit before issue 16: no
                calibration set; refit it).
        """
        record = io.read_json(Path(path) / DETECTOR)
        keys = {"params", "calibration_scores_", "noise_seed_", "scaler"}
        if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION or not keys <= set(record):
            version = record.get("format_version") if isinstance(record, dict) else None
            raise ValueError(
                f"{Path(path) / DETECTOR} is not a vaekit detector record of format {FORMAT_VERSION} "
                f"(got format {version!r}); a format-1 detector has no calibration set: refit it"
            )
        params = {
            k: tuple(v) if k in ("hidden", "data_shape") and isinstance(v, list) else v
            for k, v in record["params"].items()
        }
        if params.get("model_options"):
            params["model_options"] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in params["model_options"].items()
            }
        detector = cls(**params)
        scaler = Standardizer.from_dict(record["scaler"]) if record["scaler"] is not None else None
        detector._set_fitted(io.load(path), io.load_config(path), scaler, record["noise_seed_"])
        detector.calibration_scores_ = np.asarray(record["calibration_scores_"], dtype=np.float64)
        detector.offset_ = -np.inf if record["offset_"] is None else float(record["offset_"])
        return detector

    @classmethod
    def from_run(
        cls,
        run_dir,
        score_type: str = "reconstruction_probability",
        fpr: float = 0.05,
        score_num_samples: int = DEFAULT_NUM_SAMPLES,
        verbose: bool = False,
        offset: float | None = None,
    ) -> AnomalyDetector:
        """A detector from a ``vaekit train`` run folder, calibrated on the run's validation split.

        ``vaekit train`` holds out ``val_fraction`` of the training split (seeded by the run's
        seed) and never takes a gradient on it; those rows (standardised like in training) are
        the calibration set, so ``fpr`` and the p-values are conformal (with ``patience > 0`` the
        rows chose the stopping epoch, a mild dependence). ``offset`` replaces the threshold.

        Raises:
            FileNotFoundError, ValueError: not a run folder, or its training data cannot be read.
        """
        model, config = io.load(run_dir), io.load_config(run_dir)
        flat, default = config.to_flat(), Config().to_flat()
        explicit = {name: flat[name] for name in EXPLICIT_FIELDS}
        options = {
            k: v for k, v in flat.items() if k not in (*RESERVED_FIELDS, *EXPLICIT_FIELDS) and v != default.get(k)
        }
        detector = cls(
            score_type=score_type,
            fpr=fpr,
            score_num_samples=score_num_samples,
            model_options=options,
            random_state=config.train.seed,
            verbose=verbose,
            **explicit,
        )
        detector._validate_params()
        check_score(score_type, model)
        detector._set_fitted(model, config, io.load_scaler(run_dir), noise_seed=config.train.seed + 1)
        if offset is not None:
            detector.calibration_scores_ = np.zeros(0)
            detector.offset_ = float(offset)
            return detector
        try:
            train_x = splits.load_dataset(runcheck.checked_data(run_dir, config), "train").x
        except (OSError, ValueError) as e:
            raise ValueError(
                f"the outlier threshold is calibrated on the run's validation split, but its training "
                f"data cannot be read ({e}); run from the folder it was trained in, or give a threshold "
                f"(--threshold)"
            ) from None
        scaled = detector.scaler_.transform(train_x) if detector.scaler_ is not None else train_x
        _, val_x = splits.split_validation(scaled, config)
        if len(val_x) == 0:
            raise ValueError(
                f"the run in {run_dir} held out no validation rows (val_fraction=0), so it cannot be "
                f"calibrated; give a threshold (--threshold)"
            )
        x = val_x if detector.scaler_ is None else detector.scaler_.inverse_transform(val_x)
        detector._calibrate(detector._score_rows(x.reshape(len(x), -1).double().numpy()))
        return detector


def load_detector(
    path,
    score_type: str | None = None,
    fpr: float | None = None,
    score_num_samples: int | None = None,
    verbose: bool = False,
    threshold: float | None = None,
) -> AnomalyDetector:
    """A fitted detector from a folder: a saved :class:`AnomalyDetector` (it has detector.json) or
    a ``vaekit train`` run folder (:meth:`AnomalyDetector.from_run`; defaults: the
    reconstruction probability, fpr 0.05, L = 10). A ``threshold`` becomes ``offset_``.

    Raises:
        ValueError: for a saved detector, a ``score_type``/``fpr``/``score_num_samples``
            different from the fitted one (its threshold belongs to those settings).
        FileNotFoundError: ``path`` is neither.
    """
    if (Path(path) / DETECTOR).is_file():
        detector = AnomalyDetector.load(path)
        asked = {"score_type": score_type, "fpr": fpr, "score_num_samples": score_num_samples}
        for key, value in asked.items():
            if value is not None and value != getattr(detector, key):
                raise ValueError(
                    f"{path} is a detector fitted with {key}={getattr(detector, key)!r}, and its "
                    f"threshold belongs to that setting; got {key}={value!r}: omit it or refit"
                )
        detector.set_params(verbose=verbose)
        detector.offset_ = detector.offset_ if threshold is None else float(threshold)
        return detector
    return AnomalyDetector.from_run(
        path,
        score_type or "reconstruction_probability",
        0.05 if fpr is None else fpr,
        score_num_samples or DEFAULT_NUM_SAMPLES,
        verbose,
        offset=threshold,
    )
