"""Likelihood heads p(x|z) and the few distributions torch does not ship.

A likelihood head turns the decoder's output tensor ``(*batch, *data_shape)`` into a
``torch.distributions`` object whose ``log_prob(x)`` has shape ``(*batch,)``: log p(x|z) in nats,
summed over every data dimension. Everything else in vaekit speaks this one vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
    constraints,
    kl_divergence,
    register_kl,
)
from torch.distributions.kl import _kl_independent_independent

from .discretized import LEVELS, DiscretizedLogisticDistribution, on_grid

#: Smallest learned Gaussian scale, so a learned-variance likelihood cannot collapse onto a pixel.
MIN_SCALE = 1e-3


# Every training step builds q(z|x), the prior and p(x|z). torch's constructors broadcast their
# arguments (``broadcast_all``) and check shapes in Python, which costs as much as a small MLP's
# forward pass; the builders below skip that work where the shapes are known to agree, and give
# the very same objects (the same classes and attributes, hence the same numbers and gradients).


def _lean(cls, batch_shape: torch.Size, event_shape: torch.Size = torch.Size(), **params) -> Distribution:
    """An instance of ``cls`` with ``params`` as attributes, built without ``cls.__init__``: what the
    constructor leaves after ``Distribution.__init__(batch_shape, event_shape, validate_args=False)``."""
    dist = cls.__new__(cls)
    dist.__dict__.update(params, _batch_shape=batch_shape, _event_shape=event_shape, _validate_args=False)
    return dist


def _as_independent(dist: Independent, base: Distribution, event_ndim: int) -> Independent:
    """Set ``dist`` up as ``Independent(base, event_ndim)`` for a base with no event dimensions and at
    least ``event_ndim`` batch dimensions, without the constructor's checks."""
    shape = base.batch_shape
    cut = len(shape) - event_ndim
    dist.__dict__.update(
        base_dist=base,
        reinterpreted_batch_ndims=event_ndim,
        _batch_shape=shape[:cut],
        _event_shape=shape[cut:],
        _validate_args=False,
    )
    return dist


def _lean_independent(base: Distribution, event_ndim: int) -> Independent:
    """``Independent(base, event_ndim)`` built without the constructor's checks (see :func:`_as_independent`)."""
    return _as_independent(Independent.__new__(Independent), base, event_ndim)


class IndependentBernoulli(Independent):
    """Bernoulli variables with logits, independent over the last ``event_ndim`` dimensions:
    ``Independent(Bernoulli(logits=logits), event_ndim)`` whose :meth:`log_prob` is one
    binary cross-entropy summed over the event dimensions.

    Args:
        logits: ``(*batch, *event)`` tensor of log-odds.
        event_ndim: how many trailing dimensions are the event (≥ 1, ≤ ``logits.dim()``).
    """

    def __init__(self, logits: torch.Tensor, event_ndim: int):
        base = _lean(torch.distributions.Bernoulli, logits.shape, logits=logits, _param=logits)
        _as_independent(self, base, event_ndim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log p(value) = Σ_event [v log σ(l) + (1 − v) log(1 − σ(l))] in nats, ``(*batch,)``; ``value``
        broadcasts against the logits (e.g. x ``(batch, *event)`` against ``(num_samples, batch, *event)``)."""
        logits = self.base_dist.logits
        if value.shape != logits.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        cross_entropy = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        if self.reinterpreted_batch_ndims > 1:
            cross_entropy = cross_entropy.flatten(-self.reinterpreted_batch_ndims)
        return -cross_entropy.sum(-1)

    def expand(self, batch_shape, _instance=None) -> IndependentBernoulli:
        """The same Bernoulli variables with batch shape ``batch_shape`` (a view of the logits)."""
        shape = torch.Size(batch_shape) + self.event_shape
        return IndependentBernoulli(self.base_dist.logits.expand(shape), self.reinterpreted_batch_ndims)


class Likelihood(nn.Module):
    """Base class of the likelihood heads.

    Subclasses implement :meth:`forward` (decoder output -> Distribution) and say whether they
    need data in [0, 1] (``unit_interval``) and whether they model pixels on a grid of ``levels``
    values in [0, 1] (None: continuous or binary pixels).
    """

    unit_interval: bool = False
    levels: int | None = None

    def __call__(self, params: torch.Tensor) -> Distribution:
        """:meth:`forward`, without nn.Module's hook dispatch: a head runs once per batch and owns at
        most a learned scale, so forward hooks on it are not supported (hook the decoder instead)."""
        return self.forward(params)

    def forward(self, params: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        """Decoder output ``(*batch, *data_shape)`` -> p(x|z) with ``log_prob(x)`` of shape ``(*batch,)``."""
        raise NotImplementedError

    def check_support(self, x: torch.Tensor) -> None:
        """Raise ValueError if ``x`` holds NaN/Inf, or values outside [0, 1] for a Bernoulli head."""
        if not torch.isfinite(x).all():
            raise ValueError(
                f"data holds {int((~torch.isfinite(x)).sum())} NaN/Inf value(s) of {x.numel()}; "
                "remove or impute them first"
            )
        if self.unit_interval and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"the {self.name} likelihood needs data in [0, 1], got values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]; scale the data to [0, 1] "
                "or use --likelihood gaussian"
            )

    @property
    def name(self) -> str:
        """Registry name of the head."""
        return type(self).__name__.lower()


class Bernoulli(Likelihood):
    """Bernoulli pixels with the decoder output as logits.

    On binary data log_prob is a log-likelihood. On grey values in [0, 1] it is the negative
    binary cross-entropy, which is not a normalised density: binarize the data
    (``--binarize static|dynamic``) for likelihoods comparable with the literature.
    """

    unit_interval = True

    def __init__(self, event_ndim: int = 1):
        super().__init__()
        self.event_ndim = event_ndim

    def forward(self, params: torch.Tensor) -> Distribution:
        """params: logits ``(*batch, *data_shape)`` -> Distribution with event = data dims."""
        return IndependentBernoulli(params, self.event_ndim)


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli pixels (Loaiza-Ganem & Cunningham 2019): a proper density on [0, 1].

    The decoder output is the logits of the shape parameter; note the mean is not sigmoid(logits).
    """

    unit_interval = True

    def __init__(self, event_ndim: int = 1):
        super().__init__()
        self.event_ndim = event_ndim

    def forward(self, params: torch.Tensor) -> Distribution:
        """params: logits ``(*batch, *data_shape)`` -> Distribution with event = data dims."""
        base = torch.distributions.ContinuousBernoulli(logits=params, validate_args=False)
        return _lean_independent(base, self.event_ndim)

    @property
    def name(self) -> str:
        """Registry name of the head."""
        return "continuous-bernoulli"


class Gaussian(Likelihood):
    """Diagonal Gaussian N(x; mean, scale^2) with the decoder output as mean.

    Args:
        scale: a fixed standard deviation (float > 0), or ``"learned"`` for one learned scale per
            data dimension (pixel or feature), floored at :data:`MIN_SCALE`.
        data_shape: shape of one example; required for ``scale="learned"``.
        mean_activation: ``"identity"`` or ``"sigmoid"`` applied to the decoder output to get the
            mean (sigmoid keeps image means in [0, 1], as in the AVAE reference code).
        event_ndim: number of data dimensions.

    Raises:
        ValueError: for a non-positive scale, an unknown activation, or "learned" without
            ``data_shape``.
    """

    def __init__(
        self, scale: float | str = 1.0, data_shape=None, mean_activation: str = "identity", event_ndim: int = 1
    ):
        super().__init__()
        if mean_activation not in ("identity", "sigmoid"):
            raise ValueError(f"mean_activation must be 'identity' or 'sigmoid', got {mean_activation!r}")
        self.mean_activation = mean_activation
        self.event_ndim = event_ndim
        if scale == "learned":
            if data_shape is None:
                raise ValueError("Gaussian(scale='learned') needs data_shape")
            # softplus(0.5413) = 1.0: start at unit scale.
            self.raw_scale = nn.Parameter(torch.full(tuple(data_shape), 0.5413))
            self.fixed_scale = None
        else:
            scale = float(scale)
            if not scale > 0:
                raise ValueError(f"Gaussian scale must be > 0 or 'learned', got {scale}")
            self.raw_scale = None
            self.fixed_scale = scale

    @property
    def scale(self) -> torch.Tensor | float:
        """The standard deviation: a float, or a tensor of shape ``data_shape`` when learned."""
        if self.raw_scale is None:
            return self.fixed_scale
        return F.softplus(self.raw_scale) + MIN_SCALE

    def forward(self, params: torch.Tensor) -> Distribution:
        """params: mean before activation ``(*batch, *data_shape)`` -> Distribution over data dims."""
        loc = torch.sigmoid(params) if self.mean_activation == "sigmoid" else params
        scale = self.scale
        if not torch.is_tensor(scale):
            scale = torch.full_like(loc, scale)
        else:
            scale = scale.expand_as(loc)
        return _lean_independent(_lean(Normal, loc.shape, loc=loc, scale=scale), self.event_ndim)


class DiscretizedLogistic(Likelihood):
    """8-bit pixels with a discretized logistic each (Salimans et al. 2017, eq. 2, one component; see
    :mod:`vaekit.discretized`): location sigmoid(decoder output) in [0, 1], one learned scale per data
    dimension (started at 1/16 of the pixel range, floored at :data:`MIN_SCALE`). log_prob is the
    log-probability of the 8-bit image, a proper discrete likelihood (≤ 0), so likelihoods of grey-level
    images compare across models without binarizing them.

    Args:
        data_shape: shape of one example (the learned scales' shape).
        event_ndim: number of data dimensions.
    """

    unit_interval = True
    levels = LEVELS

    def __init__(self, data_shape, event_ndim: int = 1):
        super().__init__()
        self.event_ndim = event_ndim
        # softplus(-2.7405) = 0.0625: a sixteenth of the pixel range
        self.raw_scale = nn.Parameter(torch.full(tuple(data_shape), -2.7405))

    @property
    def scale(self) -> torch.Tensor:
        """The logistic scales, ``data_shape``, in [0, 1] pixel units."""
        return F.softplus(self.raw_scale) + MIN_SCALE

    def forward(self, params: torch.Tensor) -> Distribution:
        """params: location before the sigmoid ``(*batch, *data_shape)`` -> Distribution over data dims."""
        return _lean_independent(DiscretizedLogisticDistribution(torch.sigmoid(params), self.scale), self.event_ndim)

    def check_support(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` is finite and on the 8-bit grid {0, 1/255, ..., 1}."""
        super().check_support(x)
        if not on_grid(x):
            raise ValueError(
                "the discretized-logistic likelihood models 8-bit pixels (multiples of 1/255 in [0, 1]); "
                "this data holds other values: quantize it (round(x * 255) / 255) or use --likelihood gaussian"
            )

    @property
    def name(self) -> str:
        """Registry name of the head."""
        return "discretized-logistic"


class Deterministic(Distribution):
    """A point mass at ``loc``: the 'posterior' of a deterministic autoencoder.

    ``rsample`` returns ``loc`` (gradients flow), ``mean`` is ``loc``, ``variance`` is zero.
    ``log_prob`` is undefined and raises, so no likelihood is silently reported for an AE.
    """

    arg_constraints = {"loc": constraints.real}
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(batch_shape=loc.shape[:-1], event_shape=loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        """The point itself ``(batch, latent_dim)``."""
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        """Zeros ``(batch, latent_dim)``."""
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """``loc`` expanded to ``(*sample_shape, batch, latent_dim)``."""
        return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)

    def log_prob(self, value):
        """Always raises ValueError: a point mass has no density."""
        raise ValueError("a deterministic autoencoder has no posterior density; use a VAE")


class DiagonalNormal(Independent):
    """N(loc, diag scale²) over the last dimension: ``Independent(Normal(loc, scale), 1)``, built
    without torch's argument broadcasting, with a one-call :meth:`rsample`.

    Args:
        loc, scale: ``(*batch, latent_dim)`` tensors of one shape (scale > 0; not checked).
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        _as_independent(self, _lean(Normal, loc.shape, loc=loc, scale=scale), 1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """loc + scale ⊙ ε, ε ~ N(0, I) (Kingma & Welling 2013, eq. 4): ``(*sample_shape, *batch, latent_dim)``;
        the same draws as ``Normal.rsample`` from the same generator state."""
        loc, scale = self.base_dist.loc, self.base_dist.scale
        if sample_shape:
            eps = torch.randn(torch.Size(sample_shape) + loc.shape, dtype=loc.dtype, device=loc.device)
        else:
            eps = torch.randn_like(loc, memory_format=torch.contiguous_format)
        return loc + eps * scale

    def expand(self, batch_shape, _instance=None) -> DiagonalNormal:
        """The same Gaussian with batch shape ``batch_shape`` (views of loc and scale)."""
        shape = torch.Size(batch_shape) + self.event_shape
        return type(self)(self.base_dist.loc.expand(shape), self.base_dist.scale.expand(shape))


def diagonal_normal(loc: torch.Tensor, scale: torch.Tensor) -> DiagonalNormal:
    """:class:`DiagonalNormal` ``(loc, scale)``: a diagonal Gaussian over the last dimension.

    Args:
        loc, scale: ``(*batch, latent_dim)`` tensors (scale > 0; not checked), broadcast against
            each other as torch's ``Normal`` does.

    Raises:
        RuntimeError: shapes that do not broadcast.
    """
    if loc.shape != scale.shape:
        loc, scale = torch.broadcast_tensors(loc, scale)
    return DiagonalNormal(loc, scale)


class StandardNormal(DiagonalNormal):
    """The prior N(0, I): a diagonal Gaussian with a fast closed-form KL from any diagonal Gaussian.

    Args:
        loc, scale: zeros and ones of shape ``(latent_dim,)`` (kept by the model as buffers).
    """


def _kl_standard(q: Independent, p: StandardNormal) -> torch.Tensor:
    """KL(N(loc, diag scale²) ‖ N(0, I)) = Σ_d ½(loc² + scale² − 1) − log scale (Kingma & Welling 2013, App. B)."""
    loc, scale = q.base_dist.loc, q.base_dist.scale
    return (0.5 * (loc.square() + scale.square() - 1) - scale.log()).sum(-1)


@register_kl(Independent, StandardNormal)
def _kl_independent_standard(q: Independent, p: StandardNormal) -> torch.Tensor:
    """KL(q ‖ N(0, I)) for any Independent q: closed form when q is ``Independent(Normal, 1)``."""
    if not _is_diagonal_normal(q):
        return _kl_independent_independent(q, p)
    return _kl_standard(q, p)


def _is_diagonal_normal(q: Distribution) -> bool:
    return isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1


def closed_form_kl(q: Distribution, p: Distribution) -> torch.Tensor:
    """KL(q ‖ p) in nats, shape: the broadcast batch shape of ``q`` and ``p``.

    ``torch.distributions.kl_divergence``, with the VAE's case, a diagonal Gaussian q against
    the N(0, I) prior (Kingma & Welling 2013, App. B), computed without its registry lookup: the
    lookup is a cached search over the registered type pairs that ``torch.compile`` cannot
    trace, so a compiled training step would break its graph there.

    Raises:
        NotImplementedError: no closed form is registered for the pair (as ``kl_divergence``).
    """
    if type(p) is StandardNormal and _is_diagonal_normal(q):
        return _kl_standard(q, p)
    return kl_divergence(q, p)


#: Draws of the Monte Carlo KL(q ‖ p) when no closed form is registered and no draws are given.
MC_KL_SAMPLES = 16


def kl_or_estimate(q: Distribution, prior: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q(z|x) ‖ p(z)) in nats, ``(batch,)``: in closed form where one is registered
    (:func:`closed_form_kl`), else the Monte Carlo estimate E_q[log q(z|x) − log p(z)] over ``z``.

    Args:
        q: the posterior, batch ``(batch,)``, event ``(latent_dim,)``.
        prior: p(z), event ``(latent_dim,)`` (a VampPrior, a Gaussian mixture, ... has no closed form).
        z: draws of q to average over, ``(num_samples, batch, latent_dim)`` or ``(batch, latent_dim)``
            (the objectives pass the reconstruction's own draws, as Tomczak & Welling 2018, eq. 5,
            do); None draws :data:`MC_KL_SAMPLES` fresh reparameterised ones.

    Returns:
        ``(batch,)`` nats per example: exact, or an unbiased estimate with the stated draws.
    """
    try:
        return closed_form_kl(q, prior)
    except NotImplementedError:
        pass
    if z is None:
        z = q.rsample((MC_KL_SAMPLES,))
    estimate = getattr(q, "kl_estimate", None)
    if estimate is not None:  # a posterior with its own estimator at the draws (the Ladder VAE's per-layer KL)
        return estimate(prior, z)
    gap = q.log_prob(z) - prior.log_prob(z)
    return gap if gap.dim() == len(q.batch_shape) else gap.mean(0)


def sample_prior(
    prior: Distribution, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` draws of the prior, ``(n, latent_dim)``, from ``generator`` (default: the global RNG).

    A diagonal Gaussian p(z) = N(m, diag s²) is drawn as m + temperature·s·ε (so N(0, I) gives
    temperature·ε, vaekit's samples as before); a mixture of diagonal Gaussians (VampPrior, mixture
    priors) picks a component by its weight and draws it likewise. Any other prior is drawn with
    its own ``sample`` at temperature 1, in an RNG forked from ``generator``'s next seed.

    Raises:
        ValueError: ``n`` < 0, a temperature that is not > 0, or a temperature ≠ 1 for a prior that is
            neither a diagonal Gaussian nor a mixture of them.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of samples must be an integer >= 0, got {n!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if isinstance(prior, DiagonalNormal):
        loc, scale = prior.base_dist.loc, prior.base_dist.scale
        eps = torch.randn(n, loc.shape[-1], generator=generator, dtype=loc.dtype).to(loc.device)
        return loc + (temperature * eps if type(prior) is StandardNormal else temperature * scale * eps)
    if isinstance(prior, MixtureSameFamily) and _is_diagonal_normal(prior.component_distribution):
        components = prior.component_distribution.base_dist
        loc, scale = components.loc, components.scale  # (K, latent_dim)
        probs = prior.mixture_distribution.probs.detach().to("cpu", torch.float64)
        index = torch.multinomial(probs, n, replacement=True, generator=generator).to(loc.device)
        eps = torch.randn(n, loc.shape[-1], generator=generator, dtype=loc.dtype).to(loc.device)
        return loc[index] + temperature * scale[index] * eps
    if temperature != 1.0:
        raise ValueError(
            f"temperature {temperature} needs a Gaussian or Gaussian-mixture prior; "
            f"{type(prior).__name__} is sampled at temperature 1"
        )
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return prior.sample((n,))


#: Registry: likelihood name -> builder ``(data_shape, scale, mean_activation, event_ndim) -> Likelihood``.
LIKELIHOODS = {
    "bernoulli": lambda data_shape, scale, mean_activation, event_ndim: Bernoulli(event_ndim),
    "continuous-bernoulli": lambda data_shape, scale, mean_activation, event_ndim: ContinuousBernoulli(event_ndim),
    "gaussian": lambda data_shape, scale, mean_activation, event_ndim: Gaussian(
        scale, data_shape, mean_activation, event_ndim
    ),
    "discretized-logistic": lambda data_shape, scale, mean_activation, event_ndim: DiscretizedLogistic(
        data_shape, event_ndim
    ),
}


def build_likelihood(name: str, data_shape, scale: float | str = 1.0, mean_activation: str = "identity") -> Likelihood:
    """Build a likelihood head by name.

    Args:
        name: one of :data:`LIKELIHOODS`.
        data_shape: shape of one example; its length is the number of event dimensions.
        scale: Gaussian standard deviation (float) or "learned"; ignored by the Bernoulli heads.
        mean_activation: Gaussian mean activation, "identity" or "sigmoid".

    Raises:
        ValueError: unknown name (lists the valid ones).
    """
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of: {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](tuple(data_shape), scale, mean_activation, len(tuple(data_shape)))


def coupling_kl(q: Distribution, q_prime: Distribution, rho: float) -> torch.Tensor:
    """The coupling term C_ρ(x, x′) = E_{z~q(z|x)} KL(q(z′|x′) ‖ N(ρz, (1−ρ²)I)) in closed form.

    With q(z|x) = N(μ, diag σ²) and q(z′|x′) = N(μ′, diag σ′²), per latent dimension
    ``(σ′² + ρ²σ² + (μ′ − ρμ)²) / (2(1−ρ²)) − ½ log σ′² + ½ log(1−ρ²) − ½``, summed over
    dimensions (Cemgil et al., "The Autoencoding Variational Autoencoder", NeurIPS 2020, eq. 9
    and appendix; the same term is the smoothness penalty of Cemgil et al., ICLR 2020).
    It is zero iff q(z′|x′) equals the ρ-coupled conditional for every z, which needs σ = 0.

    Args:
        q: diagonal Gaussian q(z|x) (``Independent(Normal)``, event ``(latent_dim,)``), batch
            shape broadcastable with ``q_prime``'s; a :class:`Deterministic` q (σ = 0) gives
            KL(q(z′|x′) ‖ N(ρ·loc, (1−ρ²)I)).
        q_prime: diagonal Gaussian q(z′|x′), same event shape.
        rho: coupling strength in [0, 1).

    Returns:
        ``(*batch,)`` nats per example, ≥ 0.

    Raises:
        ValueError: rho outside [0, 1), or event shapes that differ.
    """
    if not 0 <= rho < 1:
        raise ValueError(f"rho must be in [0, 1), got {rho!r}")
    if q.event_shape != q_prime.event_shape:
        raise ValueError(
            f"q and q_prime must have the same event shape, got {tuple(q.event_shape)} and {tuple(q_prime.event_shape)}"
        )
    mean, var = q.mean, q.variance
    mean_p, var_p = q_prime.mean, q_prime.variance
    one_minus = 1.0 - rho**2
    per_dim = (
        (var_p + rho**2 * var + (mean_p - rho * mean) ** 2) / (2 * one_minus)
        - 0.5 * torch.log(var_p)
        + 0.5 * math.log(one_minus)
        - 0.5
    )
    return per_dim.sum(-1)


def kl_per_dim(q, prior: Distribution | None = None) -> torch.Tensor | None:
    """KL(q(z_d|x) ‖ p(z_d)) per latent dimension, ``(batch, latent_dim)`` nats, in closed form.

    ``prior`` None or N(0, I) compares each dimension with N(0, 1); a diagonal-Gaussian prior with its
    own marginal N(m_d, s_d²). Any other prior (a mixture, a VampPrior, a hyperspherical one) has
    dependent dimensions, so no per-dimension KL is defined: the result is None, and reports that
    rank dimensions by it rank them by the variance of the encoder means instead.
    """
    if not _is_diagonal_normal(q):  # a flow, a hierarchy, a vMF, ...: no per-dimension closed form
        return None
    base = q.base_dist
    if prior is None or type(prior) is StandardNormal:
        return kl_divergence(base, Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale)))
    if _is_diagonal_normal(prior) and _is_diagonal_normal(q):
        marginal = prior.base_dist
        return kl_divergence(base, Normal(marginal.loc.expand_as(base.loc), marginal.scale.expand_as(base.scale)))
    return None
