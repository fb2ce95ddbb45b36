"""The graphical models: one file per model family, one registry.

Every model is an ``nn.Module`` with ``encode(x) -> Distribution`` over z, ``decode(z) ->
Distribution`` over x and ``prior() -> Distribution`` over z; objectives (β-VAE, IWAE, AVAE, ...)
and evaluations reach it only through these, so a variant that does not change the graphical model
is a setting, not a class. :data:`MODELS` (:mod:`vaekit.registry`) maps each ``--model`` name to
its class, objective and capabilities; adding a model is one file plus one
:func:`~vaekit.registry.register_model` call.

Files: :mod:`.ae` (AE, the base), :mod:`.vae` (VAE), :mod:`.cvae` (CVAE and its conditioned view),
:mod:`.vampprior` (VampPrior), :mod:`.mixture_prior` (a learned Gaussian-mixture prior),
:mod:`.build` (:func:`build_model`).
"""

from __future__ import annotations

from ..registry import MODELS, ModelEntry, register_model, unregister_model
from .ae import AE, check_input
from .build import (
    MAX_PARAMETERS,
    build_model,
    check_model_options,
    resolve_decoder_activation,
)
from .cvae import CVAE, Conditioned, condition
from .mixture_prior import MixturePriorVAE
from .vae import VAE
from .vampprior import VampPrior

__all__ = [
    "AE",
    "CVAE",
    "MAX_PARAMETERS",
    "MODELS",
    "VAE",
    "Conditioned",
    "MixturePriorVAE",
    "ModelEntry",
    "VampPrior",
    "build_model",
    "check_input",
    "check_model_options",
    "condition",
    "register_model",
    "resolve_decoder_activation",
    "unregister_model",
]
