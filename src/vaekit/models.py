"""Autoencoder and variational autoencoder: the graphical models, and nothing else.

``encode(x) -> Distribution`` over z, ``decode(z) -> Distribution`` over x, ``prior()``. Objectives
(β-VAE, IWAE, AVAE, ...) are functions of these in :mod:`vaekit.objectives`; a variant that does
not change the graphical model is a config value, not a class.
"""

from __future__ import annotations

import dataclasses
import numbers

import torch
from torch import nn
from torch.distributions import Distribution

from .distributions import Deterministic, DiagonalNormal, Likelihood, StandardNormal, build_likelihood
from .nets import build_nets
from .registry import ModelKind, MODEL_KINDS


def _check_input(x: torch.Tensor, data_shape) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if data_shape is not None and x.shape[1:] != data_shape:
        raise ValueError(
            f"x has examples of shape {tuple(x.shape[1:])} but the model expects {tuple(data_shape)} "
            f"(x: (batch, {', '.join(map(str, data_shape))}))"
        )


class AE(nn.Module):
    """Deterministic autoencoder; ``noise_std > 0`` makes it a denoising autoencoder.

    Args:
        encoder: module ``x (batch, *data_shape) -> loc (batch, latent_dim)``.
        decoder: module ``z (batch, latent_dim) -> params (batch, *data_shape)`` of the likelihood.
        likelihood: a :class:`~vaekit.distributions.Likelihood` head.
        latent_dim: size of z.
        data_shape: shape of one example (checked on input when given).
        noise_std: std of the Gaussian noise added to the encoder input during training.
        config: the :class:`~vaekit.config.ModelConfig` that built the model, kept for saving
            (None for a model built from custom modules).
    """

    stochastic = False
    conditional = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, latent_dim: int,
                 data_shape=None, noise_std: float = 0.0, config=None):
        super().__init__()
        if not isinstance(likelihood, Likelihood):
            raise TypeError(f"likelihood must be a vaekit.distributions.Likelihood, got {type(likelihood).__name__}")
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        self.noise_std = float(noise_std)
        self.config = config
        # The prior's parameters follow the model across devices and dtypes; they are not saved.
        self.register_buffer("prior_loc", torch.zeros(self.latent_dim), persistent=False)
        self.register_buffer("prior_scale", torch.ones(self.latent_dim), persistent=False)

    def extra_config(self) -> dict:
        """Keyword arguments, beyond the config and data shape, that :func:`build_model` needs to rebuild this model."""
        return {}

    @classmethod
    def net_options(cls, **extra) -> dict:
        """Keyword arguments of :func:`~vaekit.nets.build_nets` implied by the :meth:`extra_config` kwargs."""
        return {}

    def _encoder_output(self, x: torch.Tensor):
        _check_input(x, self.data_shape)
        return self.encoder(x)

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x): a point mass at f(x) for the AE. x ``(batch, *data_shape)``; event shape ``(latent_dim,)``."""
        return Deterministic(self._encoder_output(x))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder input used in training: x plus N(0, noise_std²) noise in training mode, else x."""
        if self.training and self.noise_std > 0:
            return x + self.noise_std * torch.randn_like(x)
        return x

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for z ``(*sample, batch, latent_dim)``; ``log_prob(x)`` has shape ``(*sample, batch)``."""
        if z.dim() == 2:
            return self.likelihood(self.decoder(z))
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, z.shape[-1]))
        return self.likelihood(params.reshape(*lead, *params.shape[1:]))

    def prior(self) -> Distribution:
        """p(z) = N(0, I), event shape ``(latent_dim,)``: one object per model, rebuilt when the
        buffers behind it are replaced (``model.to(...)``)."""
        loc, scale, prior = self.prior_loc, self.prior_scale, self.__dict__.get("_prior")
        if prior is None or prior.base_dist.loc is not loc or prior.base_dist.scale is not scale:
            prior = self.__dict__["_prior"] = StandardNormal(loc, scale)
        return prior

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Representation: the encoder mean E_q[z|x], ``(batch, latent_dim)``."""
        return self.encode(x).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the encoder mean, g(μ(x)): ``(batch, *data_shape)``."""
        return self.decode(self.transform(x)).mean

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of ``n`` prior draws z ~ N(0, temperature² I): ``(n, *data_shape)``."""
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, dtype=self.prior_loc.dtype)
        z = z.to(self.prior_loc.device)
        return self.decode(z).mean


class VAE(AE):
    """Variational autoencoder (Kingma & Welling 2013) with q(z|x) = N(loc(x), diag(scale(x)²)).

    Args: as :class:`AE`, but the encoder returns ``(loc, scale)``, each ``(batch, latent_dim)``
    with ``scale > 0``. Any ``nn.Module`` pair with these signatures works: this is how a custom
    architecture is plugged in.
    """

    stochastic = True

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = Independent(Normal(loc, scale), 1), batch ``(batch,)``, event ``(latent_dim,)``.

        Raises:
            ValueError: x of the wrong shape, or an encoder that does not return a valid (loc, scale).
        """
        return self._posterior(self._encoder_output(x))

    def _posterior(self, out) -> Distribution:
        """Check an encoder's ``(loc, scale)`` output and wrap it as a diagonal Gaussian."""
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError("a VAE encoder must return (loc, scale), each (batch, latent_dim)")
        loc, scale = out
        if loc.shape != scale.shape or loc.shape[-1] != self.latent_dim:
            raise ValueError(
                f"encoder returned loc {tuple(loc.shape)} and scale {tuple(scale.shape)}; "
                f"expected both (batch, {self.latent_dim})"
            )
        return DiagonalNormal(loc, scale)


class CVAE(VAE):
    """Conditional VAE (Sohn, Lee & Yan 2015, sec. 3): q(z|x, c), p(x|z, c), prior p(z) = N(0, I).

    The condition c is a class label, fed to both nets as a one-hot vector (concatenated to the
    flattened input / the dense layer of the encoder, and to z in the decoder). Every method that
    touches x or z takes ``c``: class indices ``(batch,)`` (LongTensor), one int for the whole
    batch, or rows of class weights ``(batch, num_classes)`` (float; one-hot, or a mixture such
    as an interpolation between two classes).

    Args: as :class:`VAE`, plus ``num_classes``; the nets must take ``(input, c)`` with c
    ``(batch, num_classes)`` (``build_nets(..., cond_dim=num_classes)``).
    """

    conditional = True

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, latent_dim: int,
                 data_shape=None, noise_std: float = 0.0, config=None, num_classes: int = 10):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"a CVAE needs num_classes >= 2, got {num_classes!r}")
        self.num_classes = num_classes

    def extra_config(self) -> dict:
        """``{"num_classes": K}``: rebuilds the one-hot width on load."""
        return {"num_classes": self.num_classes}

    @classmethod
    def net_options(cls, num_classes: int = 10, **_extra) -> dict:
        """The nets take a one-hot condition of ``num_classes`` entries."""
        return {"cond_dim": num_classes}

    def one_hot(self, c, batch: int) -> torch.Tensor:
        """The condition as float rows ``(batch, num_classes)`` on the model's device.

        Raises:
            TypeError: c is not an int or a tensor.
            ValueError: class indices outside [0, num_classes), or a shape that does not fit ``batch``.
        """
        p = next(self.parameters())
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            c = torch.full((batch,), int(c), dtype=torch.long)
        if not torch.is_tensor(c):
            raise TypeError(f"the condition c must be an int or a tensor of class indices, got {type(c).__name__}")
        if c.is_floating_point():
            if c.shape != (batch, self.num_classes):
                raise ValueError(f"class weights c must be (batch={batch}, {self.num_classes}), got {tuple(c.shape)}")
            return c.to(p.device, p.dtype)
        c = c.reshape(-1).expand(batch) if c.numel() == 1 else c
        if c.shape != (batch,):
            raise ValueError(f"class indices c must be (batch={batch},), got {tuple(c.shape)}")
        if len(c) and (c.min() < 0 or c.max() >= self.num_classes):
            raise ValueError(f"class indices must lie in [0, {self.num_classes}), got {c.min().item()}..{c.max().item()}")
        return nn.functional.one_hot(c.long(), self.num_classes).to(p.device, p.dtype)

    def encode(self, x: torch.Tensor, c) -> Distribution:
        """q(z|x, c): Independent(Normal(loc, scale), 1), event ``(latent_dim,)``; x ``(batch, *data_shape)``."""
        _check_input(x, self.data_shape)
        return self._posterior(self.encoder(x, self.one_hot(c, len(x))))

    def decode(self, z: torch.Tensor, c) -> Distribution:
        """p(x|z, c) for z ``(*sample, batch, latent_dim)`` (c per ``batch``); ``log_prob`` is ``(*sample, batch)``."""
        lead = z.shape[:-1]
        onehot = self.one_hot(c, lead[-1] if lead else 1).expand(*lead, self.num_classes)
        params = self.decoder(z.reshape(-1, z.shape[-1]), onehot.reshape(-1, self.num_classes))
        return self.likelihood(params.reshape(*lead, *params.shape[1:]))

    def given(self, c) -> "Conditioned":
        """This model with c fixed: an object with the unconditional API (encode(x), decode(z),
        transform, reconstruct, sample, prior, ...), so that every objective and evaluation
        written for p(x) works on p(x|c) unchanged."""
        return Conditioned(self, c)

    def transform(self, x: torch.Tensor, c) -> torch.Tensor:
        """Encoder mean E_q[z|x, c], ``(batch, latent_dim)``."""
        return self.given(c).transform(x)

    def reconstruct(self, x: torch.Tensor, c) -> torch.Tensor:
        """g(μ(x, c), c), ``(batch, *data_shape)``."""
        return self.given(c).reconstruct(x)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               labels=None) -> torch.Tensor:
        """Decoder means of ``n`` draws z ~ N(0, temperature² I) given ``labels``: one int, ``(n,)``
        class indices, or None for the classes 0, 1, ..., K−1, 0, 1, ... in turn. ``(n, *data_shape)``."""
        labels = torch.arange(n) % self.num_classes if labels is None else labels
        return self.given(labels).sample(n, temperature, generator)


class Conditioned:
    """A conditional model with its condition c fixed (see :meth:`CVAE.given`).

    ``encode(x)`` and ``decode(z)`` pass c on; every other attribute is the model's. The AE
    methods built on encode/decode (transform, reconstruct, sample) are reused as they are.
    Gradients flow into the model's parameters.
    """

    def __init__(self, model: CVAE, c):
        self.model, self.c = model, c

    def __getattr__(self, name):
        if name == "model":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x, c) with the fixed c; x ``(batch, *data_shape)``."""
        return self.model.encode(x, self.c)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z, c) with the fixed c; z ``(*sample, batch, latent_dim)``."""
        return self.model.decode(z, self.c)

    transform = AE.transform
    reconstruct = AE.reconstruct
    sample = AE.sample


def given(model, c=None):
    """``model`` with condition ``c`` fixed when it is conditional (a :class:`Conditioned` view), else ``model``.

    Raises:
        ValueError: a conditional model without c.
    """
    if not model.conditional:
        return model
    if c is None:
        raise ValueError(f"model {type(model).__name__} is conditional: pass the class labels c")
    return model.given(c)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of :data:`MODELS`: a model name's capabilities (:class:`vaekit.registry.ModelKind`,
    the torch-free table :mod:`vaekit.config` validates against) and the class that builds it.

    Attributes:
        kind: what the name is and needs (graph, objective, summary, needs_labels, needs_init).
        cls: the graphical model (names that share one share a class; their objective differs).
    """

    kind: ModelKind
    cls: type

    objective = property(lambda self: self.kind.objective, doc="The family of its training loss.")
    summary = property(lambda self: self.kind.summary, doc="One line for ``--help`` and README.")
    needs_labels = property(lambda self: self.kind.needs_labels, doc="Trains on labelled data.")
    needs_init = property(lambda self: self.kind.needs_init, doc="Refines a trained run (``--init RUN``).")
    stochastic = property(lambda self: self.cls.stochastic, doc="A distribution encoder (VAE), not a point (AE).")
    conditional = property(lambda self: self.cls.conditional, doc="Encoder and decoder take a condition c.")


#: graphical model of :class:`vaekit.registry.ModelKind` -> the class that implements it.
CLASSES: dict[str, type] = {"ae": AE, "vae": VAE, "cvae": CVAE}

#: model name -> :class:`ModelSpec`, built from :data:`vaekit.registry.MODEL_KINDS`.
MODELS: dict[str, ModelSpec] = {name: ModelSpec(kind, CLASSES[kind.graph]) for name, kind in MODEL_KINDS.items()}


def resolve_decoder_activation(config, unit_interval: bool) -> str:
    """The Gaussian mean activation: config's, or for "auto" sigmoid on [0, 1] data, else identity."""
    if config.decoder_activation != "auto":
        return config.decoder_activation
    return "sigmoid" if unit_interval else "identity"


#: Most parameters vaekit builds (2**31: 8 GiB of float32 weights, three times that with Adam's state).
MAX_PARAMETERS = 2**31


def _check_size(config, data_shape, cls, extra: dict, trust_code) -> None:
    """Count the parameters the config asks for on the meta device (no memory is allocated) and
    refuse a network larger than :data:`MAX_PARAMETERS` (e.g. ``--latent-dim 1000000000``).
    A network that cannot be built on the meta device (custom code) is left to the real build."""
    try:
        with torch.device("meta"):
            nets = build_nets(config, data_shape, stochastic=cls.stochastic, trust_code=trust_code,
                              **cls.net_options(**extra))
    except Exception:  # the real build below raises the same error, or succeeds where meta cannot
        return
    count = sum(p.numel() for net in nets for p in net.parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(f"the network would have {count:,} parameters ({4 * count / 2**30:,.0f} GiB of float32 weights), "
                         f"more than the {MAX_PARAMETERS:,} vaekit builds; lower --latent-dim, --hidden or --channels")


def build_model(config, data_shape, unit_interval: bool = True, seed: int = 0, *, trust_code: bool | None = None,
                **extra) -> AE:
    """Build the model a :class:`~vaekit.config.ModelConfig` describes for examples of ``data_shape``.

    Args:
        config: the model settings (a :class:`~vaekit.config.ModelConfig`; of a run's
            :class:`~vaekit.config.Config`, ``config.model`` with ``seed=config.train.seed``).
        data_shape: shape of one example, e.g. ``(1, 8, 8)`` or ``(30,)``.
        unit_interval: whether the data lie in [0, 1] (resolves ``decoder_activation="auto"``).
        seed: seed of the weight initialisation.
        **extra: model-specific build arguments (a saved model's ``extra_config()``), e.g.
            ``num_classes`` of a CVAE.
        trust_code: allow importing the custom encoder/decoder a config names (see
            :mod:`vaekit.custom_nets`); None: the enclosing ``custom_nets.trusting()`` block decides.

    Raises:
        TypeError: a whole run Config instead of its ModelConfig.
        ValueError: unknown model name, a network that does not fit the data shape, or one of more
            than :data:`MAX_PARAMETERS` parameters.
        vaekit.custom_nets.CodeNotTrusted: the config names custom networks and trust was not given.
    """
    if hasattr(config, "train"):
        raise TypeError("build_model takes a ModelConfig, got a whole run Config: pass config.model "
                        "(and seed=config.train.seed to initialise the weights with the run's seed)")
    if config.name not in MODELS:
        raise ValueError(f"unknown model {config.name!r}; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[config.name].cls
    config = dataclasses.replace(config, decoder_activation=resolve_decoder_activation(config, unit_interval))
    _check_size(config, data_shape, cls, extra, trust_code)
    torch.manual_seed(seed)
    encoder, decoder = build_nets(config, data_shape, stochastic=cls.stochastic, trust_code=trust_code,
                                  **cls.net_options(**extra))
    likelihood = build_likelihood(config.likelihood, data_shape, config.likelihood_scale, config.decoder_activation)
    return cls(encoder, decoder, likelihood, config.latent_dim, data_shape, config.noise_std, config, **extra)
