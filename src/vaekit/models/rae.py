"""Regularised autoencoders, RAE-L2 and RAE-GP (Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders", ICLR, sec. 2.2 and the ex-post density estimation of sec. 3)."""

from __future__ import annotations

from torch import nn

from ..distributions import Likelihood
from .ae import AE
from .wae import check_positive


class RAE(AE):
    """RAE (Ghosh et al. 2020, eq. 11): a deterministic autoencoder trained with
    −log p(x|z) + β·½‖z‖² + λ·L_REG (:class:`vaekit.objectives.rae_terms.RAELoss`); L_REG is the decoder's
    L2 weight norm (RAE-L2, this class) or its gradient penalty (RAE-GP, :class:`RAEGP`). The L2
    penalty is part of the loss (not an optimizer weight decay), so the one optimizer trains it.

    Generation follows the paper's ex-post density estimation (sec. 3): a 10-component
    Gaussian mixture fitted on the training codes (``vaekit sample RUN --sampler gmm``, the
    default sampler of this model, :mod:`vaekit.evaluation.samplers`); ``prior()`` stays N(0, I),
    the density the code penalty ½‖z‖² is the log of. No likelihood bound: ``tractable_likelihood=False``.

    Args: as :class:`AE`, plus
        embedding_weight: β > 0 of the code penalty.
        reg_weight: λ > 0 of the decoder regulariser.

    Raises:
        ValueError: β or λ not > 0.
    """

    #: the sampler ``vaekit sample`` uses without ``--sampler`` (the paper's ex-post GMM)
    default_sampler = "gmm"
    regulariser = "l2"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        embedding_weight: float = 1.0,
        reg_weight: float = 1e-3,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.embedding_weight = check_positive("embedding_weight", embedding_weight)
        self.reg_weight = check_positive("reg_weight", reg_weight)

    def extra_config(self) -> dict:
        """β and λ."""
        return {"embedding_weight": self.embedding_weight, "reg_weight": self.reg_weight}


class RAEGP(RAE):
    """RAE-GP (Ghosh et al. 2020, sec. 2.2): :class:`RAE` with the decoder's gradient penalty
    ‖∂g(z)/∂z‖²_F at the codes (Hutchinson's estimate, :func:`vaekit.objectives.rae_terms.jacobian_norm`)
    instead of its L2 weight norm."""

    regulariser = "gp"
