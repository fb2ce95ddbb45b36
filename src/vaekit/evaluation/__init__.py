"""Evaluation of trained models: likelihoods, reconstruction error, and (in sibling modules) probes, robustness, ..."""

from .conditional import evaluate_conditional
from .likelihood import UNITS as _LIKELIHOOD_UNITS
from .likelihood import evaluate, log_likelihood
from .reconstruction import MSE_UNITS, reconstruction_mse

#: Units of every metric :func:`evaluate_conditional` reports (the MSE's from :mod:`.reconstruction`).
UNITS = {**_LIKELIHOOD_UNITS, **MSE_UNITS}

__all__ = ["MSE_UNITS", "UNITS", "evaluate", "evaluate_conditional", "log_likelihood", "reconstruction_mse"]
