"""The categorical VAE with the Gumbel-softmax (Concrete) relaxation (Jang, Gu & Poole 2017,
"Categorical reparameterization with Gumbel-softmax", ICLR; Maddison, Mnih & Teh 2017, "The Concrete
distribution", ICLR), and the categorical pieces the JointVAE (:mod:`.jointvae`) shares.

The code c is N independent categorical variables of K classes each, written one-hot and flattened:
``latent_dim`` = N·K (the paper's MNIST VAE: N = 20, K = 10, sec. 4.2).

* q(c|x) = Π_n Cat(c_n; softmax(logits_n(x))), the encoder's output being the N·K logits.
* Training draws (:meth:`GumbelSoftmaxCategorical.rsample`): the Gumbel-softmax sample
  y = softmax((logits + g)/τ), g ~ Gumbel(0, 1) (Jang et al. 2017, sec. 2, eq. 2; torch's
  ``RelaxedOneHotCategorical``); with ``straight_through`` the one-hot argmax of y in the forward pass
  and y's gradient in the backward pass (Straight-Through Gumbel-softmax, sec. 2.2). Out of training
  mode the draws are always the straight-through one-hot codes, so the ELBO the evaluation reports is
  the discrete model's bound.
* p(c) = uniform over the K^N codes; KL(q(c|x) ‖ p(c)) = Σ_n Σ_k q_nk log(K q_nk) in closed form, the
  discrete KL of the paper's VAE experiments (not a KL between relaxed densities), registered with
  ``torch.distributions.kl`` (torch's categorical KL, summed over the N variables).
* Temperature: τ_t = max(τ_min, τ_0 · exp(−r · N_a⌊t/N_a⌋)) of the training step t, updated every N_a
  steps (Jang et al. 2017, sec. 4: τ = max(0.5, exp(−rt)), r ∈ {1e−5, 1e−4}, N_a ∈ {500, 1000};
  :func:`annealed_temperature`). The model counts its own training steps (the ``schedule_step`` buffer,
  saved with the weights, so a resumed run continues the schedule); its objective
  (:class:`vaekit.objectives.gumbel.AnnealedELBO`) advances it after each training-mode step.
* Log-likelihood: the latent is discrete, so log p(x) = log Σ_c p(x|c) p(c), a sum over K^N codes.
  The importance-sampled estimate (:func:`vaekit.evaluation.log_likelihood`) draws one-hot codes
  c_k ~ q(c|x) (``q.sample``) and weighs them by p(c_k)/q(c_k|x) with the categorical pmfs
  (``q.log_prob``, ``prior().log_prob``): (1/K) Σ_k w_k is unbiased for p(x) (tested against the exact sum
  over all codes in ``tests/test_zoo_categorical.py``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Categorical,
    Distribution,
    OneHotCategorical,
    RelaxedOneHotCategorical,
    constraints,
    kl_divergence,
    register_kl,
)

from ..distributions import Likelihood, closed_form_kl
from ..nets import build_nets
from .vae import VAE


def annealed_temperature(
    step,
    temperature: float = 1.0,
    anneal_rate: float = 1e-4,
    anneal_interval: int = 500,
    min_temperature: float = 0.5,
) -> torch.Tensor:
    """The Gumbel-softmax temperature after ``step`` training steps: τ = max(τ_min, τ_0·exp(−r·N⌊t/N⌋))
    (Jang et al. 2017, sec. 4, with τ_0 = 1, τ_min = 0.5; updated every N = ``anneal_interval`` steps).

    Args:
        step: t, an int or an integer tensor (a model's ``schedule_step`` buffer).
        temperature: τ_0 > 0. anneal_rate: r >= 0 (0: τ_0 throughout). anneal_interval: N >= 1.
        min_temperature: τ_min > 0.

    Returns:
        A 0-dim float64 tensor (on ``step``'s device).
    """
    t = torch.as_tensor(step)
    held = torch.div(t, anneal_interval, rounding_mode="floor") * anneal_interval
    return (temperature * torch.exp(-anneal_rate * held.double())).clamp(min=min_temperature)


class GumbelSoftmaxCategorical(Distribution):
    """q(c|x): N independent categoricals of K classes over a flattened one-hot event ``(N·K,)``.

    Args:
        logits: ``(*batch, N, K)`` unnormalised log-probabilities.
        temperature: τ > 0 of the relaxed draws (float or 0-dim tensor).
        hard: ``rsample`` returns one-hot codes with the relaxed draw's gradient (straight-through,
            Jang et al. 2017, sec. 2.2) instead of the relaxed draw itself.

    ``rsample`` ``(*sample, *batch, N·K)``: Gumbel-softmax draws (torch's ``RelaxedOneHotCategorical``),
    reparameterised; ``sample``: one-hot draws of the categorical (torch's ``OneHotCategorical``), no
    gradient; ``log_prob(c)`` ``(*sample, *batch)``: log q(c|x) = Σ_n log q(c_n|x) in nats for one-hot c
    (a relaxed value is scored at its argmax: the pmf has no density on the simplex); ``mean``: the
    class probabilities ``(*batch, N·K)``.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, logits: torch.Tensor, temperature, hard: bool = False):
        if logits.dim() < 2:
            raise ValueError(f"logits must be (*batch, N, K), got shape {tuple(logits.shape)}")
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.temperature, self.hard = temperature, bool(hard)
        self.num_variables, self.num_categories = logits.shape[-2:]
        event = torch.Size([self.num_variables * self.num_categories])
        super().__init__(logits.shape[:-2], event, validate_args=False)

    @property
    def probs(self) -> torch.Tensor:
        """q(c_nk = 1 | x), ``(*batch, N, K)``."""
        return self.logits.exp()

    def categorical(self) -> OneHotCategorical:
        """The N one-hot categoricals, batch ``(*batch, N)``, event ``(K,)``."""
        return OneHotCategorical(logits=self.logits, validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        relaxed = RelaxedOneHotCategorical(self.temperature, logits=self.logits, validate_args=False)
        y = relaxed.rsample(sample_shape)
        if self.hard:  # argmax of the Gumbel-perturbed logits: an exact categorical draw (Gumbel-max)
            y = F.one_hot(y.argmax(-1), self.num_categories).to(y.dtype) + (y - y.detach())
        return y.flatten(-2)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.categorical().sample(sample_shape).flatten(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        codes = value.unflatten(-1, (self.num_variables, self.num_categories))
        return self.categorical().log_prob(codes).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self.categorical().entropy().sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[c]: the class probabilities, ``(*batch, N·K)`` (of the categorical the relaxed draws approach)."""
        return self.probs.flatten(-2)

    @property
    def variance(self) -> torch.Tensor:
        """Var[c] of the one-hot codes: p(1 − p), ``(*batch, N·K)``."""
        p = self.probs
        return (p * (1 - p)).flatten(-2)


class UniformCategorical(Distribution):
    """p(c): N independent uniform categoricals of K classes, one-hot and flattened, batch ``()``, event
    ``(N·K,)``. ``sample`` draws one-hot codes; ``log_prob(c)`` = −N log K for every one-hot c.

    Args:
        num_variables, num_categories: N, K. like: a tensor giving the dtype and device of the draws.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, num_variables: int, num_categories: int, like: torch.Tensor):
        self.num_variables, self.num_categories = int(num_variables), int(num_categories)
        self.logits = like.new_zeros(self.num_variables, self.num_categories)
        super().__init__(torch.Size(), torch.Size([self.num_variables * self.num_categories]), validate_args=False)

    def categorical(self) -> OneHotCategorical:
        """The N uniform one-hot categoricals, batch ``(N,)``, event ``(K,)``."""
        return OneHotCategorical(logits=self.logits, validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.categorical().sample(sample_shape).flatten(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        codes = value.unflatten(-1, (self.num_variables, self.num_categories))
        return self.categorical().log_prob(codes).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[c] = 1/K for every entry, ``(N·K,)``."""
        return self.logits.exp().div(self.num_categories).flatten(-2)


@register_kl(GumbelSoftmaxCategorical, UniformCategorical)
def _kl_categorical_uniform(q: GumbelSoftmaxCategorical, p: UniformCategorical) -> torch.Tensor:
    """KL(q(c|x) ‖ U) = Σ_n Σ_k q_nk log(K q_nk) nats, ``(*batch,)``: torch's categorical KL per variable, summed."""
    q_n, p_n = Categorical(logits=q.logits, validate_args=False), Categorical(logits=p.logits, validate_args=False)
    return kl_divergence(q_n, p_n).sum(-1)


class JointLatent(Distribution):
    """Independent parts over consecutive slices of one event: z = [z_1, ..., z_P], density Π_i p_i(z_i).

    The JointVAE's latent (a Gaussian z and a categorical c) as one distribution: ``rsample`` /
    ``sample`` concatenate the parts' draws, ``log_prob`` sums the parts' (nats), ``mean`` concatenates
    their means; KL between two of them is the sum of the parts' KLs (closed form where each part has
    one, :func:`vaekit.distributions.closed_form_kl`).

    Args:
        parts: distributions with event shapes ``(d_i,)`` and one batch shape.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector

    def __init__(self, parts):
        self.parts = tuple(parts)
        self.sizes = [p.event_shape[-1] for p in self.parts]
        batch = torch.broadcast_shapes(*(p.batch_shape for p in self.parts))
        super().__init__(batch, torch.Size([sum(self.sizes)]), validate_args=False)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        """True when every part draws reparameterised samples."""
        return all(p.has_rsample for p in self.parts)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return torch.cat([p.rsample(sample_shape) for p in self.parts], -1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return torch.cat([p.sample(sample_shape) for p in self.parts], -1)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z ``(*, Σ d_i)`` -> the parts' slices."""
        return z.split(self.sizes, -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(v) for p, v in zip(self.parts, self.split(value)))

    @property
    def mean(self) -> torch.Tensor:
        """The parts' means concatenated, ``(*batch, Σ d_i)``."""
        means = [p.mean.expand(*self.batch_shape, size) for p, size in zip(self.parts, self.sizes)]
        return torch.cat(means, -1)


@register_kl(JointLatent, JointLatent)
def _kl_joint(q: JointLatent, p: JointLatent) -> torch.Tensor:
    """Σ_i KL(q_i ‖ p_i) over matching parts (nats, ``(*batch,)``)."""
    if q.sizes != p.sizes:
        raise ValueError(f"the parts differ: sizes {q.sizes} and {p.sizes}")
    return sum(closed_form_kl(qi, pi) for qi, pi in zip(q.parts, p.parts))  # type: ignore[return-value]


def _check_number(name: str, value, low: float, integer: bool = False, strict: bool = True) -> None:
    kinds = (int,) if integer else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value)
    if not ok or not (value > low if strict else value >= low):
        sign = ">" if strict else ">="
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {sign} {low}, got {value!r}")


class CategoricalVAE(VAE):
    """VAE with N categorical latents of K classes (Jang et al. 2017, sec. 2 and 4.2): q(c|x) categorical
    with Gumbel-softmax training draws, p(c) uniform, the discrete KL in closed form, one-hot prior draws.

    The encoder is the deterministic one (``stochastic=False`` networks): its ``(batch, latent_dim)``
    output is the N·K logits; the decoder reads the ``(batch, N·K)`` (relaxed or one-hot) code.

    Args: as :class:`~vaekit.models.VAE`, plus
        num_variables: N; None: latent_dim / K (1 when K is None too).
        num_categories: K >= 2; None: latent_dim / N. N·K must equal latent_dim.
        temperature: τ_0 > 0, the temperature at step 0 (the paper: 1).
        anneal_rate: r >= 0 of τ = max(τ_min, τ_0·exp(−r t)) (the paper: 1e-5 or 1e-4; 0 keeps τ_0).
        anneal_interval: N_a >= 1 steps between temperature updates (the paper: 500 or 1000).
        min_temperature: τ_min > 0 (the paper: 0.5).
        straight_through: train on one-hot codes with the relaxed gradient (ST Gumbel-softmax, sec. 2.2).

    Raises:
        ValueError: sizes that do not multiply to latent_dim (the message gives the --latent-dim to
            pass), K < 2, or a temperature setting out of range.
    """

    schedule_step: torch.Tensor
    #: whether the encoder returns (loc, scale) (True: the JointVAE's) or only the logits
    gaussian_encoder: ClassVar[bool] = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        num_variables: int | None = None,
        num_categories: int | None = None,
        temperature: float = 1.0,
        anneal_rate: float = 1e-4,
        anneal_interval: int = 500,
        min_temperature: float = 0.5,
        straight_through: bool = False,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        self.continuous_dim, self.num_variables, self.num_categories = self.split_latent(
            self.latent_dim, num_variables, num_categories
        )
        _check_number("temperature", temperature, 0)
        _check_number("anneal_rate", anneal_rate, 0, strict=False)
        _check_number("anneal_interval", anneal_interval, 1, integer=True, strict=False)
        _check_number("min_temperature", min_temperature, 0)
        if not isinstance(straight_through, bool):
            raise ValueError(f"straight_through must be true or false, got {straight_through!r}")
        self.schedule: dict[str, Any] = {
            "temperature": float(temperature),
            "anneal_rate": float(anneal_rate),
            "anneal_interval": int(anneal_interval),
            "min_temperature": float(min_temperature),
        }
        self.straight_through = straight_through
        # training steps taken: saved with the weights, so a resumed run continues the schedules
        self.register_buffer("schedule_step", torch.zeros((), dtype=torch.long))

    @classmethod
    def split_latent(cls, latent_dim: int, num_variables, num_categories) -> tuple[int, int, int]:
        """(continuous part D, N, K) of a code of ``latent_dim`` entries: D = 0 and N·K = latent_dim.

        Raises:
            ValueError: N or K not a positive integer, K < 2, or N·K ≠ latent_dim.
        """
        for name, value in (("num_variables", num_variables), ("num_categories", num_categories)):
            if value is not None:
                _check_number(name, value, 1, integer=True, strict=False)
        n, k = num_variables, num_categories
        if k is None:
            n = 1 if n is None else n
            k = latent_dim // n if latent_dim % n == 0 else None
        elif n is None:
            n = latent_dim // k if latent_dim % k == 0 else None
        if n is None or k is None or n * k != latent_dim:
            sizes = f"num_variables={num_variables} and num_categories={num_categories}"
            raise ValueError(
                f"a categorical code of {sizes} does not fill latent_dim={latent_dim}: latent_dim is "
                f'N × K (e.g. --latent-dim 200 --options \'{{"num_variables": 20, "num_categories": 10}}\')'
            )
        if k < 2:
            raise ValueError(f"num_categories must be >= 2, got {k} (latent_dim={latent_dim}, num_variables={n})")
        return 0, n, k

    @classmethod
    def build_nets(cls, config, data_shape, *, trust_code: bool | None = None, **kwargs):
        """The VAE's networks with a logits encoder (one output per latent entry) unless ``gaussian_encoder``."""
        return build_nets(config, data_shape, stochastic=cls.gaussian_encoder, trust_code=trust_code)

    def extra_config(self) -> dict:
        """The resolved N and K."""
        return {"num_variables": self.num_variables, "num_categories": self.num_categories}

    @property
    def temperature(self) -> torch.Tensor:
        """τ at the current training step (0-dim float64 tensor, :func:`annealed_temperature`)."""
        return annealed_temperature(self.schedule_step, **self.schedule)

    @torch.no_grad()
    def advance(self) -> None:
        """Count one training step (the objectives call it after each training-mode step)."""
        self.schedule_step += 1

    def categorical_posterior(self, logits: torch.Tensor) -> GumbelSoftmaxCategorical:
        """q(c|x) from logits ``(batch, N·K)``: relaxed draws in training mode (one-hot straight-through
        draws with ``straight_through``, and always out of training mode)."""
        if logits.dim() != 2 or logits.shape[-1] != self.num_variables * self.num_categories:
            raise ValueError(
                f"expected categorical logits (batch, {self.num_variables * self.num_categories}), "
                f"got {tuple(logits.shape)}"
            )
        grouped = logits.unflatten(-1, (self.num_variables, self.num_categories))
        hard = self.straight_through or not self.training
        return GumbelSoftmaxCategorical(grouped, self.temperature.to(logits.dtype), hard)

    def categorical_prior(self) -> UniformCategorical:
        """The uniform p(c), event ``(N·K,)``."""
        return UniformCategorical(self.num_variables, self.num_categories, self.prior_loc)

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(c|x): batch ``(batch,)``, event ``(N·K,)`` = ``(latent_dim,)``.

        Raises:
            ValueError: x of the wrong shape, or an encoder output that is not ``(batch, latent_dim)`` logits.
        """
        logits = self._encoder_output(x)
        if not torch.is_tensor(logits):
            raise ValueError("a categorical VAE's encoder returns logits (batch, latent_dim), not a tuple")
        return self.categorical_posterior(logits)

    def prior(self) -> Distribution:
        """The uniform p(c) over the K^N one-hot codes, event ``(latent_dim,)``."""
        return self.categorical_prior()
