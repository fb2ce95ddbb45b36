"""Evaluation of trained models: likelihoods, reconstruction error, and (in sibling modules) probes, robustness, ..."""

from .conditional import evaluate_conditional
from .likelihood import UNITS, evaluate, log_likelihood
from .reconstruction import MSE_UNITS, reconstruction_mse

__all__ = ["MSE_UNITS", "UNITS", "evaluate", "evaluate_conditional", "log_likelihood", "reconstruction_mse"]
