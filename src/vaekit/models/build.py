"""Build a registered model from a :class:`~vaekit.config.ModelConfig` and the data shape."""

from __future__ import annotations

import dataclasses
import inspect

import torch

from ..registry import MODELS
from .ae import AE


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
            nets = cls.build_nets(config, data_shape, trust_code=trust_code, **extra)
    except Exception:  # the real build below raises the same error, or succeeds where meta cannot
        return
    count = sum(p.numel() for net in nets for p in net.parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"the network would have {count:,} parameters ({4 * count / 2**30:,.0f} GiB of float32 weights), "
            f"more than the {MAX_PARAMETERS:,} vaekit builds; lower --latent-dim, --hidden or --channels"
        )


def build_model(
    config, data_shape, unit_interval: bool = True, seed: int = 0, *, trust_code: bool | None = None, **extra
) -> AE:
    """Build the model a :class:`~vaekit.config.ModelConfig` describes for examples of ``data_shape``.

    Args:
        config: the model settings (a :class:`~vaekit.config.ModelConfig`; of a run's
            :class:`~vaekit.config.Config`, ``config.model`` with ``seed=config.train.seed``).
        data_shape: shape of one example, e.g. ``(1, 8, 8)`` or ``(30,)``.
        unit_interval: whether the data lie in [0, 1] (resolves ``decoder_activation="auto"``).
        seed: seed of the weight initialisation.
        **extra: model-specific build arguments (a saved model's ``extra_config()``), e.g.
            ``num_classes`` of a CVAE; the model's own settings come from ``config.options``.
        trust_code: allow importing the custom encoder/decoder a config names (see
            :mod:`vaekit.custom_nets`); None: the enclosing ``custom_nets.trusting()`` block decides.

    Raises:
        TypeError: a whole run Config instead of its ModelConfig.
        ValueError: unknown model name, a network that does not fit the data shape, or one of more
            than :data:`MAX_PARAMETERS` parameters.
        vaekit.custom_nets.CodeNotTrusted: the config names custom networks and trust was not given.
    """
    if hasattr(config, "train"):
        raise TypeError(
            "build_model takes a ModelConfig, got a whole run Config: pass config.model "
            "(and seed=config.train.seed to initialise the weights with the run's seed)"
        )
    if config.name not in MODELS:
        raise ValueError(f"unknown model {config.name!r}; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[config.name].load()
    options = dict(config.options or {})
    check_model_options(cls, options)
    config = dataclasses.replace(config, decoder_activation=resolve_decoder_activation(config, unit_interval))
    kwargs = {**options, **extra}
    _check_size(config, data_shape, cls, kwargs, trust_code)
    torch.manual_seed(seed)
    return cls.from_config(config, data_shape, trust_code=trust_code, **kwargs)


def check_model_options(cls: type, options: dict) -> None:
    """Refuse ``options`` the model class does not take, naming the ones it does.

    Raises:
        ValueError: an option that is not a keyword argument of ``cls.__init__``.
    """
    if not options:
        return
    taken = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
    ]
    taken = [t for t in taken if t not in ("data_shape", "noise_std", "config", "num_classes")]
    bad = sorted(set(options) - set(taken))
    if bad:
        raise ValueError(
            f"model {cls.__name__} takes no option(s) {', '.join(bad)}; its options: {', '.join(taken) or 'none'}"
        )
