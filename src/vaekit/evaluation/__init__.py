"""Evaluation of trained models: likelihoods, and (in sibling modules) probes, robustness, ..."""

from .likelihood import UNITS, evaluate, log_likelihood

__all__ = ["UNITS", "evaluate", "log_likelihood"]
