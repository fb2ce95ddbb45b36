"""The objectives of the Gumbel-softmax models (:mod:`vaekit.models.categorical`, :mod:`vaekit.models.jointvae`):
the ELBO with relaxed draws and the discrete KL (Jang et al. 2017), and the JointVAE's two capacity
terms (Dupont 2018, eq. 7). Both count the model's training steps (``model.advance()``), which drive the
temperature schedule and the capacities."""

from __future__ import annotations

import dataclasses
import math

import torch

from .elbo import ELBO, _terms, capacity_penalty, linear_capacity
from .terms import LossTerms, forward


@dataclasses.dataclass(frozen=True)
class AnnealedELBO:
    """The categorical VAE's loss: the β-weighted :class:`~vaekit.objectives.ELBO` on Gumbel-softmax draws
    of q(c|x) at the model's current temperature, with the closed-form discrete KL (Jang et al. 2017,
    sec. 3-4); after a training-mode step the model's step counter (its temperature schedule) advances.

    ``beta``, ``num_samples``: as :class:`~vaekit.objectives.ELBO` (``--beta``, ``--num-samples``).
    """

    beta: float = 1.0
    num_samples: int = 1

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms` (loss: scalar mean over the batch)."""
        terms = ELBO(self.beta, self.num_samples)(model, x, warmup)
        if model.training:
            model.advance()
        return terms


@dataclasses.dataclass(frozen=True)
class JointCapacity:
    """The JointVAE loss (Dupont 2018, sec. 3, eq. 7), per batch:

    −mean_x log p(x|z, c) + w·γ·|mean_x KL(q(z|x) ‖ p(z)) − C_z| + w·γ·|mean_x KL(q(c|x) ‖ p(c)) − C_c|,

    one draw of (z, c) (c relaxed in training), C_z = ``continuous_capacity``·min(1, t/T), C_c =
    min(``discrete_capacity``·min(1, t/T), N log K) at the model's training step t (T = ``capacity_steps``;
    :func:`~vaekit.objectives.elbo.linear_capacity` and :func:`~vaekit.objectives.elbo.capacity_penalty`,
    the β-VAE capacity objective's pieces), w the KL warm-up factor. Logged: the ELBO (β = 1) and the
    total KL, ``kl`` = KL_z + KL_c, nats per example.
    """

    gamma: float = 30.0
    continuous_capacity: float = 5.0
    discrete_capacity: float = 5.0
    capacity_steps: int = 25000

    def capacities(self, model) -> tuple[float, float]:
        """(C_z, C_c) in nats at ``model``'s current training step."""
        step = int(model.schedule_step)
        discrete_max = model.num_variables * math.log(model.num_categories)
        return (
            linear_capacity(self.continuous_capacity, self.capacity_steps, step),
            min(linear_capacity(self.discrete_capacity, self.capacity_steps, step), discrete_max),
        )

    def __call__(self, model, x: torch.Tensor, warmup: float = 1.0) -> LossTerms:
        """x ``(batch, *data_shape)`` -> :class:`LossTerms`."""
        out = forward(model, x, None)
        kl_z, kl_c = model.channel_kls(out.q)
        c_z, c_c = self.capacities(model)
        weight = self.gamma * warmup
        loss = -out.log_px.mean() + weight * (capacity_penalty(kl_z, c_z) + capacity_penalty(kl_c, c_c))
        if model.training:
            model.advance()
        return _terms(loss, out.log_px, kl_z + kl_c)


def build_annealed(config, dataset_size: int = 0) -> AnnealedELBO:
    """The registry's builder for ``gumbel-softmax``: ``--beta`` and ``--num-samples``."""
    return AnnealedELBO(config.train.beta, config.train.num_samples)


def build_joint(config, dataset_size: int = 0) -> JointCapacity:
    """The registry's builder for ``jointvae``: γ and the capacities from the model's options."""
    from .settings import model_options

    o = model_options(config)
    return JointCapacity(o["gamma"], o["continuous_capacity"], o["discrete_capacity"], o["capacity_steps"])
