"""vaekit: autoencoders and variational autoencoders in PyTorch.

Train them, measure them honestly, attack them and use them. Public API (re-exports only);
``import vaekit`` loads no matplotlib, Jinja2, scikit-learn or SciPy: the names that need them
(``AnomalyDetector``, ``explore``) are imported on first use.
"""

from . import data, evaluation, io
from .config import Config, DataConfig, ModelConfig, TrainConfig
from .distributions import Bernoulli, ContinuousBernoulli, Gaussian
from .models import AE, CVAE, MODELS, VAE, build_model
from .objectives import BetaTC, Coupling, ELBO, IWAE, LossTerms, SelfSupervised, build_objective, elbo, iwae_bound
from .training import RunOptions, distributed, fit, runtime

__version__ = "0.2.0"

#: name -> module that defines it, imported on first access (PEP 562).
_LAZY = {"AnomalyDetector": "vaekit.detectors.anomaly", "explore": "vaekit.evaluation.explore"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return module if name == "explore" else getattr(module, name)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")


__all__ = [
    "AE", "AnomalyDetector", "Bernoulli", "BetaTC", "CVAE", "Config", "ContinuousBernoulli", "Coupling", "DataConfig",
    "ELBO", "Gaussian", "IWAE", "LossTerms", "MODELS", "ModelConfig", "RunOptions", "SelfSupervised", "TrainConfig",
    "VAE", "build_model", "build_objective", "data", "distributed", "elbo", "evaluation", "explore", "fit", "io",
    "iwae_bound", "runtime",
]
