"""Normalizing-flow density detectors: the exact log-density log p(x) as the anomaly score.

Seed 004 claims that "normalizing flows score anomalies better than VAEs, since their likelihood
is exact". :class:`FlowDetector` lets the anomaly benchmark test it: a masked autoregressive
flow (MAF; Papamakarios, Pavlakou & Murray 2017) or a neural spline flow (NSF, rational-quadratic
splines in a MAF; Durkan, Bekasov, Murray & Papamakarios 2019), trained by maximum likelihood on
normal rows, with the same API as :class:`vaekit.AnomalyDetector` (scikit-learn outlier
conventions, conformal ``fpr`` and ``pvalues``).

Why zuko (https://github.com/probabilists/zuko) rather than nflows, normflows or Pyro: it is
maintained, PyTorch-only (no extra framework), small, and its flows are ``nn.Module``s whose
call returns a ``torch.distributions.Distribution`` (``flow().log_prob(x)``) — the vocabulary
vaekit already uses for encoders and decoders. nflows (the reference NSF code) has not had a
release since 2020; Pyro's transforms bring all of Pyro. zuko is imported inside the functions.

Preprocessing, part of the density (so the score is log p(x) in the units of the input):

* ``dequantize``: data on a grid (<= 256 distinct values, e.g. 8-bit pixels or the 17 levels of
  scikit-learn's digits) get uniform noise over one grid step w during training, so the flow
  models a continuous density whose mass on a grid cell is the data's probability (Theis, van
  den Oord & Bethge 2016, sec. 3.1). A row is scored at the centre of its cell, x + w/2:
  deterministic, and the density there is the cell's average density to first order.
* ``preprocess="standardize"`` (the default): y = (x − mean) / std per feature;
  ``"logit"`` (data in [0, 1]): u = (x + w U) / (1 + w), y = logit(λ + (1 − 2λ) u), λ = 1e-6, as
  in Papamakarios et al. 2017 (MNIST experiments). log p(x) = log p_flow(y) + log |dy/dx| (both
  Jacobians included). On an inner validation split of digits the MAF ranked anomalies better with
  standardisation (docs/anomaly.md), hence the default.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..evaluation.anomaly import in_blocks
from .calibrated import CalibratedDetector

#: λ of the logit transform (Papamakarios et al. 2017 use 1e-6 on MNIST).
LOGIT_EPS = 1e-6
#: At most this many distinct values make data "on a grid" for ``dequantize="auto"``.
GRID_LEVELS = 256
#: Global gradient-norm clip of flow training (flows on images have rare large steps).
GRAD_CLIP = 5.0
DETECTOR = "flow_detector.json"
WEIGHTS = "flow.safetensors"
FORMAT_VERSION = 1


def grid_step(x: np.ndarray) -> float:
    """w: the smallest gap between distinct values of ``x`` if it holds at most :data:`GRID_LEVELS`
    of them (data on a grid), else 0 (continuous data)."""
    values = np.unique(x)
    if len(values) < 2 or len(values) > GRID_LEVELS:
        return 0.0
    return float(np.diff(values).min())


def build_flow(kind: str, features: int, transforms: int, hidden: tuple, bins: int) -> torch.nn.Module:
    """A zuko flow: ``kind`` "maf" (affine MADE transforms) or "nsf" (spline MADE transforms, ``bins`` bins),
    ``transforms`` layers with alternating variable order, MADE hidden widths ``hidden``."""
    import zuko

    hidden = tuple(int(h) for h in hidden)
    if kind == "maf":
        return zuko.flows.MAF(features, transforms=transforms, hidden_features=hidden)
    return zuko.flows.NSF(features, transforms=transforms, hidden_features=hidden, bins=bins)


class FlowDetector(CalibratedDetector):
    """Anomaly detection with a normalizing flow's exact log-density, scikit-learn style.

    Args:
        flow: "maf" (masked autoregressive flow) or "nsf" (neural spline flow).
        transforms: number of autoregressive transforms.
        hidden: hidden widths of each transform's MADE network.
        bins: spline bins per dimension (NSF only).
        epochs, batch_size, lr, weight_decay: Adam maximum-likelihood training.
        fpr, calibration_fraction: as :class:`vaekit.AnomalyDetector` (conformal threshold).
        preprocess: "standardize" (= "auto", the default chosen on digits, see docs/anomaly.md),
            "logit" (data in [0, 1], Papamakarios et al. 2017) or "none".
        dequantize: grid step w of the uniform training noise, or "auto" (:func:`grid_step`).
        data_shape: shape of one example when rows are flattened images (kept as ``data_shape_``;
            the flow sees flat vectors).
        random_state, verbose: as :class:`vaekit.AnomalyDetector`.

    Attributes (after fit): ``flow_`` (the zuko flow), ``preprocess_``, ``step_`` (w),
    ``mean_``/``scale_`` (standardisation), ``history_`` (mean training negative log-likelihood per
    epoch, nats per example), and the calibration attributes of
    :class:`~vaekit.detectors.calibrated.CalibratedDetector`.
    """

    _parameter_constraints = {
        "flow": [StrOptions({"maf", "nsf"})],
        "transforms": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "bins": [Interval(Integral, 2, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "fpr": [Interval(Real, 0, 1, closed="neither")],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither")],
        "preprocess": [StrOptions({"auto", "logit", "standardize", "none"})],
        "dequantize": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "data_shape": [tuple, list, None],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        flow: str = "maf",
        transforms: int = 5,
        hidden: tuple = (256, 256),
        bins: int = 8,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        fpr: float = 0.05,
        calibration_fraction: float = 0.2,
        preprocess: str = "auto",
        dequantize="auto",
        data_shape=None,
        random_state=None,
        verbose: bool = False,
    ):
        self.flow = flow
        self.transforms = transforms
        self.hidden = hidden
        self.bins = bins
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.fpr = fpr
        self.calibration_fraction = calibration_fraction
        self.preprocess = preprocess
        self.dequantize = dequantize
        self.data_shape = data_shape
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ preprocessing

    def _resolve_preprocess(self, rows: np.ndarray) -> str:
        return "standardize" if self.preprocess == "auto" else self.preprocess

    def _to_flow_space(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (dequantized, float64 ``(n, D)``) -> (y ``(n, D)`` float32, log |dy/dx| ``(n,)`` float64)."""
        if self.preprocess_ == "logit":
            if ((x < 0) | (x > 1 + self.step_)).any():
                raise ValueError(
                    "the logit preprocessing needs data in [0, 1] (as in training); got values "
                    f"in [{x.min().item():.3g}, {x.max().item():.3g}]"
                )
            u = x / (1 + self.step_)
            s = LOGIT_EPS + (1 - 2 * LOGIT_EPS) * u
            y = torch.log(s) - torch.log1p(-s)
            logdet = (math.log(1 - 2 * LOGIT_EPS) - torch.log(s) - torch.log1p(-s)).sum(1) - x.shape[1] * math.log1p(
                self.step_
            )
            return y.float(), logdet
        if self.preprocess_ == "standardize":
            y = (x - torch.from_numpy(self.mean_)) / torch.from_numpy(self.scale_)
            return y.float(), torch.full((len(x),), -float(np.log(self.scale_).sum()), dtype=torch.float64)
        return x.float(), torch.zeros(len(x), dtype=torch.float64)

    # ------------------------------------------------------------------ fit

    def _fit_density(self, rows: np.ndarray, seed: int) -> None:
        self.preprocess_ = self._resolve_preprocess(rows)
        self.step_ = grid_step(rows) if self.dequantize == "auto" else float(self.dequantize)
        centred = rows + self.step_ / 2
        self.mean_, self.scale_ = centred.mean(0), centred.std(0)
        self.scale_ = np.where(self.scale_ > 0, self.scale_, 1.0)
        x = torch.from_numpy(rows)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            flow = build_flow(self.flow, rows.shape[1], self.transforms, self.hidden, self.bins)
            optimizer = torch.optim.Adam(flow.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            shuffle = torch.Generator().manual_seed(seed)
            self.history_ = []
            for epoch in range(self.epochs):
                total = 0.0
                for index in torch.randperm(len(x), generator=shuffle).split(self.batch_size):
                    xb = x[index] + self.step_ * torch.rand(len(index), x.shape[1], dtype=torch.float64)
                    y, logdet = self._to_flow_space(xb)
                    loss = -(flow().log_prob(y) + logdet.float()).mean()
                    if not torch.isfinite(loss):
                        raise ValueError(
                            f"flow training diverged (loss {loss.item()}) in epoch {epoch + 1}; "
                            f"lower lr (now {self.lr}) or use fewer transforms"
                        )
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(flow.parameters(), GRAD_CLIP)
                    optimizer.step()
                    total += loss.item() * len(index)
                self.history_.append({"epoch": epoch + 1, "train_nll": total / len(x)})
                if self.verbose:
                    print(f"{self.flow} epoch {epoch + 1}/{self.epochs}: nll {total / len(x):.2f} nats", flush=True)
        self.flow_ = flow.eval()

    # ------------------------------------------------------------------ scores

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Exact log p(x) in nats per row (at the centre of the row's grid cell), float64 ``(n,)``."""

        @torch.no_grad()
        def log_density(xb: torch.Tensor) -> torch.Tensor:
            y, logdet = self._to_flow_space(xb + self.step_ / 2)
            return self.flow_().log_prob(y).double() + logdet

        return in_blocks(
            log_density, torch.from_numpy(rows), torch.device("cpu"), progress=self.verbose, desc=f"score ({self.flow})"
        ).numpy()

    # ------------------------------------------------------------------ save / load

    def save(self, path) -> Path:
        """Write the fitted detector to the folder ``path``: flow.safetensors + flow_detector.json. No pickle."""
        from .. import io

        check_is_fitted(self, "calibration_scores_")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        io.save_weights(self.flow_, folder / WEIGHTS)
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        io.write_json(
            folder / DETECTOR,
            {
                "format_version": FORMAT_VERSION,
                "params": params,
                "n_features_in_": self.n_features_in_,
                "data_shape_": list(self.data_shape_),
                "preprocess_": self.preprocess_,
                "step_": self.step_,
                "mean_": self.mean_.tolist(),
                "scale_": self.scale_.tolist(),
                "calibration_scores_": self.calibration_scores_.tolist(),
                "offset_": self.offset_ if np.isfinite(self.offset_) else None,
            },
        )
        return folder

    @classmethod
    def load(cls, path) -> FlowDetector:
        """Rebuild a detector written by :meth:`save`; it scores exactly as the saved one.

        Raises:
            FileNotFoundError, ValueError: missing or corrupt files.
        """
        from .. import io

        record = io.read_json(Path(path) / DETECTOR)
        if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{Path(path) / DETECTOR} is not a vaekit flow detector record (format {FORMAT_VERSION})")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in record["params"].items()}
        detector = cls(**params)
        detector.n_features_in_ = int(record["n_features_in_"])
        detector.data_shape_ = tuple(record["data_shape_"])
        detector.preprocess_, detector.step_ = record["preprocess_"], float(record["step_"])
        detector.mean_, detector.scale_ = np.asarray(record["mean_"]), np.asarray(record["scale_"])
        flow = build_flow(detector.flow, detector.n_features_in_, detector.transforms, detector.hidden, detector.bins)
        io.load_weights(flow, Path(path) / WEIGHTS)
        detector.flow_ = flow.eval()
        detector.calibration_scores_ = np.asarray(record["calibration_scores_"], dtype=np.float64)
        detector.offset_ = -np.inf if record["offset_"] is None else float(record["offset_"])
        return detector
