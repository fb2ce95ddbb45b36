"""Training objectives: one small object per family, carrying its own settings.

``objective(model, x, warmup=1.0, **schedule) -> LossTerms``: an objective carries its own loss
weights (``ELBO(beta)``, ``BetaTC(alpha, beta, gamma)``); the training loop supplies only the
schedule (the KL warm-up factor in [0, 1], the capacity C). :func:`build_objective` is the one
place that turns a run's :class:`~vaekit.config.Config` into its objective.
"""

from __future__ import annotations

from .betatc import BetaTC
from .coupling import Coupling, SelfSupervised
from .elbo import ELBO, IWAE, elbo, elbo_terms, iwae_bound, log_importance_weights, log_weights
from .terms import Forward, LossTerms, forward, kl_to_prior

#: The smooth-encoder / AVAE terms each coupling model adds to the ELBO.
COUPLING_TERMS = {"avae": {"avae": True, "smooth": False}, "se": {"avae": False, "smooth": True},
                  "se-avae": {"avae": True, "smooth": True}}


def build_objective(config, dataset_size: int = 0):
    """The training objective of a :class:`~vaekit.config.Config` (model name + train settings).

    Args:
        config: the run's configuration.
        dataset_size: N, the number of training examples (the β-TCVAE's mixture estimators).

    Returns:
        :class:`ELBO`, :class:`IWAE`, :class:`BetaTC`, :class:`Coupling` or :class:`SelfSupervised`.
    """
    t, family = config.train, config.model.entry.objective
    if family == "betatc":
        return BetaTC(t.alpha, t.beta, t.gamma, t.tc_sampling, dataset_size)
    if family == "coupling":
        return Coupling(t.rho, epsilon=t.epsilon, num_steps=t.num_steps, num_samples=t.num_samples,
                        aux="sample" if t.aux_sample else "mean", beta=t.beta, **COUPLING_TERMS[config.model.name])
    if family == "self-supervised":
        return SelfSupervised(t.rho)
    return IWAE(t.num_samples) if t.objective == "iwae" else ELBO(t.beta, t.num_samples)


__all__ = ["BetaTC", "COUPLING_TERMS", "Coupling", "ELBO", "Forward", "IWAE", "LossTerms", "SelfSupervised",
           "build_objective", "elbo", "elbo_terms", "forward", "iwae_bound", "kl_to_prior", "log_importance_weights",
           "log_weights"]
