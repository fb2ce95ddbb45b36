"""``OODDetector``: out-of-distribution detection with a VAE, scikit-learn style.

``fit(X)`` trains a VAE on in-distribution data (or :meth:`OODDetector.from_run` takes a trained
run) and fits what the chosen score needs (:data:`vaekit.evaluation.ood.OOD_SCORES`): a background
on perturbed data, a VAE or per-pixel (likelihood ratio), the mean training log-likelihood and the
bootstrap threshold (typicality), or M decoder-weight samples (WAIC, effective sample size, posterior
likelihood, ensemble disagreement; :mod:`vaekit.detectors.bayesian_vae`). ``score_samples(X)``:
higher = more in-distribution; ``decision_function`` and ``predict`` (+1 in-distribution, −1 OOD)
threshold it at the ``contamination`` quantile of held-out in-distribution scores, as
:class:`vaekit.AnomalyDetector` does (typicality: at minus the bootstrap threshold ε, α = ``contamination``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from .. import io
from ..config import MAX_SEED, Config
from ..data.splits import prepare, split_validation
from ..evaluation import ood
from ..evaluation import regret as ood_regret
from ..evaluation.conformal import decision
from ..evaluation.likelihood import log_likelihood
from ..io import load_run_split
from ..models import build_model
from ..training import Progress
from ..training import fit as fit_model
from .anomaly import as_array
from .bayesian_vae import KINDS, BayesianVAE, PosteriorSettings, fit_posterior

RECORD = "ood.json"
#: Subfolder of a run folder where :meth:`OODDetector.from_run` keeps what it fitted (reused on the next call).
CACHE = "ood"
FORMAT_VERSION = 1
#: Held-out in-distribution examples scored to set ``offset_`` (and the typicality reference).
MAX_REFERENCE = 1000
_PARAMS = (
    "score_type",
    "posterior",
    "num_posterior_samples",
    "num_samples",
    "contamination",
    "mutation_rate",
    "background",
    "background_weight_decay",
    "regret",
    "regret_steps",
    "regret_lr",
    "typicality_batch_size",
    "posterior_epochs",
    "posterior_lr",
    "model_options",
    "verbose",
)
BACKGROUNDS = ("vae", "pixel")
PIXEL_BACKGROUND = "pixel-background.safetensors"


def compute_scores(
    x: torch.Tensor,
    names,
    model,
    background=None,
    posterior: BayesianVAE | None = None,
    reference: float | None = None,
    num_samples: int = 100,
    regret_steps: int = 100,
    seed: int = 0,
    batch_size: int = 500,
    regret: str = "encoder",
    regret_lr: float | None = None,
    typicality_batch_size: int = 1,
) -> dict[str, torch.Tensor]:
    """Every OOD score in ``names`` for ``x``, sharing the log-likelihood evaluations between them.

    Args:
        x: ``(N, *data_shape)`` as the model sees it (binarized for a Bernoulli likelihood).
        names: names in :data:`vaekit.evaluation.ood.OOD_SCORES`.
        model: the trained VAE; ``background``: the likelihood ratio's background, a VAE or a
            :class:`~vaekit.evaluation.ood.PixelBackground`; ``posterior``: the M samples of the
            posterior scores; ``reference``: mean training log p, −Ĥ (typicality).
        num_samples: K importance samples of each log-likelihood.
        regret, regret_steps, regret_lr: method, Adam steps and learning rate of the likelihood
            regret (:func:`vaekit.evaluation.regret.likelihood_regret`).
        typicality_batch_size: M of the typicality test (consecutive rows of ``x`` form the batches).
        seed: seed of every Monte Carlo draw (in a forked RNG).

    Returns:
        name -> ``(N,)`` float tensor, higher = more in-distribution.

    Raises:
        ValueError: an unknown score, or a part the score needs is missing.
    """

    def ll(m):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return log_likelihood(m, x, num_samples, batch_size=batch_size)

    out, cache = {}, {}
    for name in names:
        needs = ood.check_ood_score(name).needs
        missing = [
            n
            for n, part in (("background", background), ("posterior", posterior), ("reference", reference))
            if n in needs and part is None
        ]
        if missing:
            raise ValueError(f"the {name} score needs a fitted {', '.join(missing)}")
        if name in ("log_likelihood", "likelihood_ratio", "typicality") and "ll" not in cache:
            cache["ll"] = ll(model)
        if "posterior" in needs and "post" not in cache:
            cache["post"] = posterior.log_likelihoods(x, num_samples, batch_size, seed)
        if name == "log_likelihood":
            out[name] = cache["ll"]
        elif name == "likelihood_ratio":
            background_ll = background.log_prob(x) if isinstance(background, ood.PixelBackground) else ll(background)
            out[name] = ood.likelihood_ratio(cache["ll"], background_ll)
        elif name == "typicality":
            out[name] = ood.typicality(cache["ll"], reference, typicality_batch_size)
        elif name == "likelihood_regret":
            parts = [
                ood.likelihood_regret(
                    model, x[i : i + batch_size], regret_steps, regret_lr, seed=seed + i, method=regret
                )
                for i in range(0, len(x), batch_size)
            ]
            out[name] = torch.cat(parts)
        elif name == "waic":
            out[name] = ood.waic(cache["post"])
        elif name == "effective_sample_size":
            out[name] = ood.effective_sample_size(cache["post"])
        elif name == "posterior_log_likelihood":
            out[name] = ood.posterior_log_likelihood(cache["post"])
        elif name == "ensemble_disagreement":
            out[name] = ood.ensemble_disagreement(cache["post"])
    return {k: v.detach().float().cpu() for k, v in out.items()}


def fit_background(config: Config, train_x: torch.Tensor, mutation_rate: float, weight_decay: float):
    """Ren et al.'s (2019, sec. 3) background model: the same VAE (run ``config``) trained on
    ``train_x`` ``(N, *data_shape)`` perturbed at ``mutation_rate`` (seeded by the config's seed + 1),
    with L2 weight decay ``weight_decay``."""
    config = config.replace(weight_decay=weight_decay, seed=(config.train.seed + 1) % (MAX_SEED + 1))
    background = build_model(config.model, tuple(train_x.shape[1:]), seed=config.train.seed)
    levels = background.likelihood.levels  # 8-bit pixels (a discretized likelihood) stay 8-bit
    noisy = ood.perturb(train_x, mutation_rate, torch.Generator().manual_seed(config.train.seed), levels)
    fit_model(background, prepare(noisy, config, training=True), config)
    return background.eval()


def fit_pixel_background(model, train_x: torch.Tensor, mutation_rate: float, seed: int) -> ood.PixelBackground:
    """A per-pixel independent background (:class:`~vaekit.evaluation.ood.PixelBackground`) fitted on
    ``train_x`` ``(N, *data_shape)`` perturbed at ``mutation_rate`` (Ren et al. 2019, sec. 3), in the
    family of the model's likelihood: Bernoulli for a Bernoulli / continuous-Bernoulli model, a 256-way
    categorical for a discretized-logistic one (8-bit pixels, perturbed to random levels), else normal."""
    levels = model.likelihood.levels
    family = "categorical" if levels else "bernoulli" if "bernoulli" in model.likelihood.name else "normal"
    noisy = ood.perturb(train_x, mutation_rate, torch.Generator().manual_seed(seed), levels)
    return ood.PixelBackground(family).fit(noisy)


class OODDetector(OutlierMixin, BaseEstimator):
    """Out-of-distribution detection with a VAE (scikit-learn outlier-detection conventions).

    Args:
        score_type: a name in :data:`vaekit.evaluation.ood.OOD_SCORES` (not ``score``: that name is
            scikit-learn's ``score(X, y)`` method, which model selection calls).
        posterior: "sghmc", "swag" or "ensemble" (posterior scores only).
        num_posterior_samples: M decoder samples / ensemble members.
        num_samples: K importance samples per log-likelihood.
        contamination: fraction of held-out in-distribution examples flagged OOD by ``predict``.
        mutation_rate: μ of the likelihood ratio's background data (Ren et al. 2019, sec. 3).
        background: the likelihood ratio's background model, "vae" (the same VAE trained on the
            perturbed data) or "pixel" (independent per-pixel Bernoulli / normal on the perturbed data).
        background_weight_decay: L2 weight decay of the background VAE.
        regret: likelihood-regret method, "encoder" (Xiao et al.'s Algorithm 1: fine-tune a copy of
            the encoder on each x) or "posterior" (optimise each x's q(z|x) parameters, clamped at 0).
        regret_steps: Adam steps of the likelihood regret (Xiao et al.: 100).
        regret_lr: its learning rate; None = 1e-4 for "encoder" (Xiao et al.), 0.05 for "posterior".
        typicality_batch_size: M, inputs tested together by the typicality test (Nalisnick et al. 2019b):
            ``score_samples`` takes consecutive groups of M rows as one batch and gives each row its
            batch's score; ``offset_`` is minus the bootstrap threshold ε at α = ``contamination``.
        posterior_epochs, posterior_lr: see :class:`~vaekit.training.bayesian_vae.PosteriorSettings`.
        model_options: :class:`~vaekit.config.Config` fields of the VAE :meth:`fit` trains, e.g.
            ``{"latent_dim": 16, "epochs": 20}`` (default Config's: Bernoulli likelihood with dynamic
            binarization, so X must lie in [0, 1]).
        verbose: progress bars.

    Attributes (after fit):
        model_, config_ (its run Config), background_ (or None), posterior_ (a BayesianVAE or
        None), reference_ (float or None), offset_, n_features_in_.
    """

    def __init__(
        self,
        score_type: str = "likelihood_ratio",
        posterior: str = "sghmc",
        num_posterior_samples: int = 5,
        num_samples: int = 100,
        contamination: float = 0.05,
        mutation_rate: float = ood.DEFAULT_MUTATION_RATE,
        background: str = "vae",
        background_weight_decay: float = 1e-4,
        regret: str = "encoder",
        regret_steps: int = 100,
        regret_lr: float | None = None,
        typicality_batch_size: int = 1,
        posterior_epochs: int = 5,
        posterior_lr: float = 1e-3,
        model_options: dict | None = None,
        verbose: bool = False,
    ):
        self.score_type = score_type
        self.posterior = posterior
        self.num_posterior_samples = num_posterior_samples
        self.num_samples = num_samples
        self.contamination = contamination
        self.mutation_rate = mutation_rate
        self.background = background
        self.background_weight_decay = background_weight_decay
        self.regret = regret
        self.regret_steps = regret_steps
        self.regret_lr = regret_lr
        self.typicality_batch_size = typicality_batch_size
        self.posterior_epochs = posterior_epochs
        self.posterior_lr = posterior_lr
        self.model_options = model_options
        self.verbose = verbose

    def _check_params(self) -> None:
        ood.check_ood_score(self.score_type)
        if self.posterior not in KINDS:
            raise ValueError(f"unknown posterior {self.posterior!r}; choose one of: {', '.join(KINDS)}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {self.num_samples!r}")
        if not isinstance(self.contamination, (int, float)) or not 0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be a number in (0, 0.5], got {self.contamination!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; choose one of: {', '.join(BACKGROUNDS)}")
        if self.regret not in ood_regret.METHODS:
            raise ValueError(f"unknown regret {self.regret!r}; choose one of: {', '.join(ood_regret.METHODS)}")
        if not isinstance(self.typicality_batch_size, int) or self.typicality_batch_size < 1:
            raise ValueError(f"typicality_batch_size must be a positive integer, got {self.typicality_batch_size!r}")

    def _settings(self, seed: int) -> PosteriorSettings:
        return PosteriorSettings(
            kind=self.posterior,
            num_posterior_samples=self.num_posterior_samples,
            epochs=self.posterior_epochs,
            lr=self.posterior_lr,
            seed=seed,
        )

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None) -> OODDetector:
        """Train a VAE on ``X`` (in-distribution), then the parts the score needs.

        Args:
            X: ``(n_samples, n_features)`` or images ``(n_samples, C, H, W)``; y: ignored.

        Raises:
            ValueError: bad parameters or data (e.g. values outside [0, 1] for the Bernoulli likelihood).
        """
        self._check_params()
        x = torch.from_numpy(as_array(X)).float()
        config = Config.from_flat(**{"data": "array", "kl_diagnostic_points": 0, **(self.model_options or {})})
        model = build_model(
            config.model, tuple(x.shape[1:]), unit_interval=bool(((x >= 0) & (x <= 1)).all()), seed=config.train.seed
        )
        model.likelihood.check_support(x)
        train_x, val_x = split_validation(x, config)
        hooks = [Progress(config.train.epochs)] if self.verbose else []
        fit_model(model, prepare(train_x, config, training=True), config, hooks=hooks)
        return self._fit_parts(model.eval(), config, train_x, val_x)

    @classmethod
    def from_run(cls, run_dir, cache: bool = True, **params) -> OODDetector:
        """A detector on a ``vaekit train`` run: its model, and the parts the score needs fitted on the
        run's training split (its validation part for the reference and the threshold). With
        ``cache``, parts are read from / written to ``RUN/ood/`` so a second call is fast.

        Raises:
            FileNotFoundError, ValueError: not a run folder, or its training data cannot be read.
        """
        detector = cls(**params)
        detector._check_params()
        model, config = io.load(run_dir), io.load_config(run_dir)
        try:
            train = load_run_split(run_dir, config, "train").x
        except (OSError, ValueError) as e:
            raise ValueError(
                f"the OOD parts are fitted on the run's training data, which cannot be read ({e}); "
                "run from the folder the run was trained in"
            ) from None
        train_x, val_x = split_validation(train, config)
        folder = Path(run_dir) / CACHE if cache else None
        return detector._fit_parts(model, config, train_x, val_x, folder)

    def _fit_parts(
        self, model, config: Config, train_x: torch.Tensor, val_x: torch.Tensor, folder: Path | None = None
    ) -> OODDetector:
        needs = ood.check_ood_score(self.score_type).needs
        self.model_, self.config_, self.background_, self.posterior_, self.reference_ = (
            model.eval(),
            config,
            None,
            None,
            None,
        )
        self.n_features_in_ = int(np.prod(model.data_shape))
        if "background" in needs and self.background == "pixel":
            self.background_ = fit_pixel_background(model, train_x, self.mutation_rate, config.train.seed)
        elif "background" in needs:
            path = (
                folder / f"background-mu{self.mutation_rate:g}-wd{self.background_weight_decay:g}" if folder else None
            )
            if path is not None and (path / io.WEIGHTS).is_file():
                self.background_ = io.load(path)
            else:
                self.background_ = fit_background(config, train_x, self.mutation_rate, self.background_weight_decay)
                if path is not None:
                    io.save(self.background_, path, config)
        if "posterior" in needs:
            settings = self._settings(config.train.seed)
            path = folder / f"posterior-{self.posterior}-M{self.num_posterior_samples}" if folder else None
            if path is not None and (path / "posterior.json").is_file() and BayesianVAE.load(path).settings == settings:
                self.posterior_ = BayesianVAE.load(path)
            else:
                self.posterior_ = fit_posterior(
                    model, prepare(train_x, config, training=True), config, settings, self.verbose
                )
                if path is not None:
                    self.posterior_.save(path)
        held_out = prepare(val_x[:MAX_REFERENCE], config)
        if (
            "reference" in needs
        ):  # Nalisnick et al. 2019b, Algorithm 1: Ĥ on the training data, ε by bootstrap on held-out

            def ll(x):
                return compute_scores(
                    x, ["log_likelihood"], model, num_samples=self.num_samples, seed=config.train.seed
                )["log_likelihood"]

            self.reference_ = float(ll(prepare(train_x[:MAX_REFERENCE], config)).mean())
            epsilon = ood.bootstrap_threshold(
                ll(held_out),
                self.reference_,
                self.typicality_batch_size,
                self.contamination,
                generator=torch.Generator().manual_seed(config.train.seed),
            )
            self.offset_ = -epsilon
            return self
        scores = self._score(held_out)
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    # ------------------------------------------------------------------ score

    def _score(self, x: torch.Tensor) -> np.ndarray:
        result = compute_scores(
            x,
            [self.score_type],
            self.model_,
            self.background_,
            self.posterior_,
            self.reference_,
            self.num_samples,
            self.regret_steps,
            seed=self.config_.train.seed,
            regret=self.regret,
            regret_lr=self.regret_lr,
            typicality_batch_size=self.typicality_batch_size,
        )
        return result[self.score_type].double().numpy()

    def score_samples(self, X) -> np.ndarray:
        """The OOD score of each row, higher = more in-distribution; float64 ``(n_samples,)``.

        Rows are reshaped to the model's example shape and binarized (fixed seed) when the model's
        config binarizes; Monte Carlo draws are seeded, so the same X gets the same scores.

        Raises:
            NotFittedError: before fit. ValueError: a feature count that does not match, or
                images ``(n, C, H, W)`` of another shape than the model's examples.
        """
        check_is_fitted(self, "model_")
        x = as_array(X)
        shape = tuple(self.model_.data_shape)
        if x.ndim > 2 and tuple(x.shape[1:]) != shape:  # as CalibratedDetector: rows are reshaped, images are not
            raise ValueError(
                f"X has examples of shape {tuple(x.shape[1:])}, but this OODDetector was fitted on "
                f"examples of shape {shape}; pass images of that shape, or rows of {self.n_features_in_} features"
            )
        if int(np.prod(x.shape[1:])) != self.n_features_in_:
            raise ValueError(
                f"X has {int(np.prod(x.shape[1:]))} features per row, but this OODDetector was fitted "
                f"on {self.n_features_in_} (examples of shape {shape})"
            )
        x = torch.from_numpy(x.reshape(len(x), *shape)).float()
        self.model_.likelihood.check_support(x)
        return self._score(prepare(x, self.config_))

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) − offset_``: negative = out of distribution."""
        check_is_fitted(self, "offset_")
        return decision(self.score_samples(X), self.offset_)

    def predict(self, X) -> np.ndarray:
        """+1 in-distribution, −1 out-of-distribution, int ``(n_samples,)``."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    # ------------------------------------------------------------------ save / load

    def save(self, path) -> Path:
        """Write the fitted detector to the folder ``path``: the model (vaekit.io), ``ood.json``, and
        ``background/`` or ``posterior/`` (M safetensors files) when the score has them. No pickle."""
        check_is_fitted(self, "offset_")
        folder = io.save(self.model_, path, self.config_)
        if isinstance(self.background_, ood.PixelBackground):
            from safetensors.torch import save as save_tensors

            tensors, metadata = self.background_.state()
            io.atomic_write(folder / PIXEL_BACKGROUND, save_tensors(tensors, metadata))
        elif self.background_ is not None:
            io.save(self.background_, folder / "background", self.config_)
        if self.posterior_ is not None:
            self.posterior_.save(folder / "posterior")
        params = {k: getattr(self, k) for k in _PARAMS}
        io.write_json(
            folder / RECORD,
            {
                "format_version": FORMAT_VERSION,
                "params": params,
                "offset_": self.offset_,
                "reference_": self.reference_,
                "n_features_in_": self.n_features_in_,
            },
        )
        return folder

    @classmethod
    def load(cls, path) -> OODDetector:
        """Rebuild a detector written by :meth:`save`; it scores exactly as the saved one.

        Raises:
            FileNotFoundError: missing files. ValueError: corrupt files.
        """
        folder = Path(path)
        record = io.read_json(folder / RECORD)
        if not isinstance(record, dict) or not {"params", "offset_", "n_features_in_"} <= set(record):
            raise ValueError(f"{folder / RECORD} is not a vaekit OOD detector record")
        params = dict(record["params"])
        if "score" in params:  # records written before the parameter was renamed score_type
            params["score_type"] = params.pop("score")
        detector = cls(**params)
        detector.model_, detector.config_ = io.load(folder), io.load_config(folder)
        detector.background_ = io.load(folder / "background") if (folder / "background").is_dir() else None
        if (folder / PIXEL_BACKGROUND).is_file():
            detector.background_ = ood.PixelBackground.from_state(*io.read_safetensors(folder / PIXEL_BACKGROUND))
        detector.posterior_ = BayesianVAE.load(folder / "posterior") if (folder / "posterior").is_dir() else None
        detector.reference_, detector.offset_ = record.get("reference_"), float(record["offset_"])
        detector.n_features_in_ = int(record["n_features_in_"])
        return detector
