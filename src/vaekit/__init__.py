"""vaekit: autoencoders and variational autoencoders in PyTorch.

Train them, measure them honestly, attack them and use them. Public API (re-exports only).
Every name is imported on first use (PEP 562), so ``import vaekit`` and ``vaekit --help`` are
instant and load no torch, matplotlib, Jinja2, scikit-learn or SciPy until a name needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

#: public name -> the module that defines it
_NAMES = {
    "AE": "models",
    "CVAE": "models",
    "VAE": "models",
    "MODELS": "models",
    "build_model": "models",
    "Config": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "Bernoulli": "distributions",
    "ContinuousBernoulli": "distributions",
    "Gaussian": "distributions",
    "BetaTC": "objectives",
    "Coupling": "objectives",
    "ELBO": "objectives",
    "IWAE": "objectives",
    "LossTerms": "objectives",
    "SelfSupervised": "objectives",
    "build_objective": "objectives",
    "elbo": "objectives",
    "iwae_bound": "objectives",
    "RunOptions": "options",
    "fit": "training",
    "train": "run",
    "RunFolder": "io",
    "AnomalyDetector": "detectors.anomaly",
    "FlowDetector": "detectors.flows",
}
#: public module name -> its path below vaekit
_MODULES = {
    "data": "data",
    "evaluation": "evaluation",
    "io": "io",
    "run": "run",
    "training": "training",
    "distributed": "runtime.distributed",
    "runtime": "runtime",
    "explore": "evaluation.explore",
}


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__():
    return sorted([*globals(), *_NAMES, *_MODULES])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import data, evaluation, io, run, runtime, training
    from .config import Config, DataConfig, ModelConfig, TrainConfig
    from .detectors.anomaly import AnomalyDetector
    from .detectors.flows import FlowDetector
    from .distributions import Bernoulli, ContinuousBernoulli, Gaussian
    from .evaluation import explore
    from .io import RunFolder
    from .models import AE, CVAE, MODELS, VAE, build_model
    from .objectives import ELBO, IWAE, BetaTC, Coupling, LossTerms, SelfSupervised, build_objective, elbo, iwae_bound
    from .options import RunOptions
    from .run import train
    from .runtime import distributed
    from .training import fit

__all__ = ["__version__", *sorted(_NAMES), *sorted(_MODULES)]
