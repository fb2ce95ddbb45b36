"""Evaluation of trained models: likelihoods, and (in sibling modules) probes, robustness, ..."""

from .conditional import evaluate_conditional
from .likelihood import UNITS, evaluate, log_likelihood

__all__ = ["UNITS", "evaluate", "evaluate_conditional", "log_likelihood"]
