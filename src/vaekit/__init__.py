"""vaekit: autoencoders and variational autoencoders in PyTorch.

Train them, measure them honestly, attack them and use them. Public API (re-exports only).
"""

from . import data, evaluation, explore, io
from .anomaly import AnomalyDetector
from .detectors.flows import FlowDetector
from .config import Config
from .distributions import Bernoulli, ContinuousBernoulli, Gaussian
from .models import AE, CVAE, MODELS, VAE, build_model
from .objectives import elbo, iwae_bound
from .train import fit
from . import distributed, runtime
from .runtime import RunOptions

__version__ = "0.1.0"

__all__ = [
    "AE", "AnomalyDetector", "Bernoulli", "FlowDetector", "CVAE", "Config", "ContinuousBernoulli", "Gaussian", "MODELS", "VAE", "build_model", "data",
    "elbo", "evaluation", "explore", "fit", "io", "iwae_bound",
    "RunOptions", "distributed", "runtime",
]
