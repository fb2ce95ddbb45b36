"""Training objectives: one small object per family, carrying its own settings.

``objective(model, x, warmup=1.0, **schedule) -> LossTerms``: an objective carries its own loss
weights (``ELBO(beta)``, ``BetaTC(alpha, beta, gamma)``); the training loop supplies only the
schedule (the KL warm-up factor in [0, 1], the capacity C). :func:`build_objective` is the one
place that turns a run's :class:`~vaekit.config.Config` into its objective.
"""

from __future__ import annotations

from .betatc import BetaTC
from .coupling import Coupling, SelfSupervised
from .elbo import (
    ELBO,
    IWAE,
    elbo,
    elbo_terms,
    iwae_bound,
    log_importance_weights,
    log_weights,
)
from .hvae import HVAEBound
from .hvae import build_objective as _hvae
from .terms import Forward, LossTerms, forward, kl_to_prior
from .tighter import TighterBound
from .tighter import build as _tighter

#: The smooth-encoder / AVAE terms each coupling model adds to the ELBO.
COUPLING_TERMS = {
    "avae": {"avae": True, "smooth": False},
    "se": {"avae": False, "smooth": True},
    "se-avae": {"avae": True, "smooth": True},
}


def _elbo(config, dataset_size: int):
    t = config.train
    return IWAE(t.num_samples) if t.objective == "iwae" else ELBO(t.beta, t.num_samples)


def _betatc(config, dataset_size: int):
    o = config.objective
    return BetaTC(o.alpha, config.train.beta, o.gamma, o.tc_sampling, dataset_size)


def _coupling(config, dataset_size: int):
    t, o = config.train, config.objective
    return Coupling(
        o.rho,
        epsilon=o.epsilon,
        num_steps=o.num_steps,
        num_samples=t.num_samples,
        aux="sample" if o.aux_sample else "mean",
        beta=t.beta,
        **COUPLING_TERMS[config.model.name],
    )


def _self_supervised(config, dataset_size: int):
    return SelfSupervised(config.objective.rho)


def _mmd(config, dataset_size: int):
    from .mmd import MMDRegularised
    from .settings import model_options

    o = model_options(config)
    if "alpha" in o:  # InfoVAE (Zhao et al. 2019, eq. 6): KL weight 1 − α, MMD weight α + λ − 1
        return MMDRegularised(o["alpha"] + o["lbd"] - 1, o["kernel"], tuple(o["scales"]), 1 - o["alpha"])
    return MMDRegularised(o["reg_weight"], o["kernel"], tuple(o["scales"]))


def _sliced(config, dataset_size: int):
    from .settings import model_options
    from .sliced import SlicedWasserstein

    o = model_options(config)
    return SlicedWasserstein(o["reg_weight"], o["num_projections"], o["p"])


#: objective family name (a :class:`~vaekit.registry.ModelEntry`'s ``objective``) -> builder
#: ``(config, dataset_size) -> objective``. A model file may register its own family here, or give
#: its entry the builder itself.
OBJECTIVES = {"elbo": _elbo, "betatc": _betatc, "coupling": _coupling, "self-supervised": _self_supervised}
OBJECTIVES.update({kind: _tighter(kind) for kind in ("miwae", "ciwae", "piwae")})
OBJECTIVES["hvae"] = _hvae
OBJECTIVES["mmd"] = _mmd
OBJECTIVES["sliced-wasserstein"] = _sliced


def _rae(config, dataset_size: int):
    from .rae_terms import RAELoss
    from .settings import model_options

    o = model_options(config)
    return RAELoss(o["embedding_weight"], o["reg_weight"], config.model.entry.load().regulariser)


OBJECTIVES["rae"] = _rae


def _dip(config, dataset_size: int):
    from .dip import DIP
    from .settings import model_options

    o, cls = model_options(config), config.model.entry.load()
    lambda_d = cls.diagonal_ratio * o["lambda_od"] if o["lambda_d"] is None else o["lambda_d"]
    return DIP(o["lambda_od"], lambda_d, cls.kind, config.train.beta)


def _factor(config, dataset_size: int):
    from .factor import FactorLoss
    from .settings import model_options

    return FactorLoss(model_options(config)["gamma"], config.train.beta)


def _adversarial(config, dataset_size: int):
    from .adversarial import AdversarialLoss
    from .settings import model_options

    return AdversarialLoss(model_options(config)["reg_weight"])


def _vq(config, dataset_size: int):
    from .settings import model_options
    from .vq import VQLoss

    return VQLoss(model_options(config)["commitment"])


OBJECTIVES["adversarial"] = _adversarial
OBJECTIVES["vq"] = _vq
OBJECTIVES["dip"] = _dip
OBJECTIVES["factor"] = _factor


def _gumbel(config, dataset_size: int):
    from .gumbel import build_annealed

    return build_annealed(config, dataset_size)


def _jointvae(config, dataset_size: int):
    from .gumbel import build_joint

    return build_joint(config, dataset_size)


OBJECTIVES["gumbel-softmax"] = _gumbel
OBJECTIVES["jointvae"] = _jointvae


def _vaegan(config, dataset_size: int):
    from .settings import model_options
    from .vaegan_terms import VAEGANLoss

    return VAEGANLoss(model_options(config)["gamma"], config.train.beta)


OBJECTIVES["vaegan"] = _vaegan


def build_objective(config, dataset_size: int = 0):
    """The training objective of a :class:`~vaekit.config.Config` (model name + train settings): the
    builder its registry entry names (:data:`OBJECTIVES`) or brings (a callable).

    Args:
        config: the run's configuration.
        dataset_size: N, the number of training examples (the β-TCVAE's mixture estimators).

    Returns:
        an objective: ``objective(model, x, warmup=1.0, **schedule) -> LossTerms``.

    Raises:
        ValueError: an entry whose objective family is not registered.
    """
    family = config.model.entry.objective
    if callable(family):
        return family(config, dataset_size)
    if family not in OBJECTIVES:
        raise ValueError(
            f"model {config.model.name!r} names the objective {family!r}, which is not registered; "
            f"known: {', '.join(sorted(OBJECTIVES))}"
        )
    return OBJECTIVES[family](config, dataset_size)


__all__ = [
    "COUPLING_TERMS",
    "ELBO",
    "IWAE",
    "OBJECTIVES",
    "BetaTC",
    "Coupling",
    "Forward",
    "LossTerms",
    "SelfSupervised",
    "build_objective",
    "elbo",
    "elbo_terms",
    "forward",
    "iwae_bound",
    "kl_to_prior",
    "log_importance_weights",
    "log_weights",
]
__all__ += ["HVAEBound", "TighterBound"]
