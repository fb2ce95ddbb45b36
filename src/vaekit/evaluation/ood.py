"""Out-of-distribution scores of VAEs, one value per example, higher = more in-distribution.

Every function returns ``(batch,)``; the ones that take log-likelihoods take the importance-sampled
log p(x) of :func:`vaekit.evaluation.log_likelihood` (nats per example), ``(batch,)`` for one model
or ``(M, batch)`` for M posterior samples / ensemble members. :data:`OOD_SCORES` names them and
says what each needs besides the model; :class:`vaekit.detectors.ood.OODDetector` fits those parts.

Sources (the scores, their sign and their inputs):

* log-likelihood: the baseline whose failure Nalisnick et al. (2019, "Do deep generative models
  know what they don't know?", sec. 3) report: models trained on Fashion-MNIST give MNIST higher
  likelihood.
* likelihood ratio: Ren et al. (2019, NeurIPS, sec. 3) LLR(x) = log p_θ(x) − log p_θ₀(x),
  p_θ₀ a background model trained on inputs perturbed at mutation rate μ (sec. 3: each value
  replaced with probability μ by a uniformly drawn one) with L2 regularisation.
* typicality test: Nalisnick, Matsukawa, Teh & Lakshminarayanan (2019, "Detecting out-of-distribution
  inputs to deep generative models using typicality", arXiv 1906.02994, sec. 3 and Algorithm 1)
  reject a batch of M inputs when |−(1/M) Σ_m log p(x_m) − Ĥ| > ε, Ĥ = −mean log p on the
  training data, ε the (1 − α) quantile of the statistic over M-sized bootstrap batches of held-out
  in-distribution data. The score is minus the statistic, given to every row of its batch.
* WAIC: Choi, Jang & Alemi (2018, "WAIC, but why?", sec. 3) WAIC(x) = E_θ[log p(x|θ)] −
  Var_θ[log p(x|θ)] over an ensemble (or posterior samples).
* likelihood regret: Xiao, Yan & Amit (2020, NeurIPS, sec. 3, Algorithm 1) LR(x) = L(x; θ, φ̂(x)) −
  L(x; θ, φ), the ELBO gain when the encoder is fine-tuned on x alone; the score is −LR(x)
  (:mod:`vaekit.evaluation.regret`, with the per-example-posterior variant).
* ensemble disagreement: Daxberger & Hernández-Lobato (2019, "Bayesian variational autoencoders for
  unsupervised out-of-distribution detection", arXiv 1912.05651, sec. 3): OOD inputs are those on
  which the posterior samples / ensemble members disagree; the score is minus the standard deviation
  over members of log p(x|θ_m).
* per-pixel background of the likelihood ratio: Ren et al. (2019, sec. 3) fit the background on
  perturbed data; :class:`PixelBackground` is the simplest such model, independent per-pixel
  Bernoulli (or Gaussian) parameters estimated on the perturbed training data.
* effective sample size: Daxberger & Hernández-Lobato (2019, arXiv 1912.05651, sec. 3, OoD
  detection in input space): the likelihoods p(x|θ_m) of the M posterior samples, normalised to weights w_m, give
  ESS(x) = 1 / Σ_m w_m², between 1 (one sample explains x: disagreement, OoD) and M (all agree).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ..discretized import LEVELS, level_index, on_grid
from .regret import likelihood_regret  # noqa: F401  (re-exported: one of the scores)

#: μ of the background data; Ren et al. (2019) tune it on validation data, here it is fixed (not tuned).
DEFAULT_MUTATION_RATE = 0.2


def _check_stack(log_likelihoods: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(log_likelihoods) or log_likelihoods.dim() != 2 or len(log_likelihoods) < 2:
        shape = tuple(log_likelihoods.shape) if torch.is_tensor(log_likelihoods) else type(log_likelihoods).__name__
        raise ValueError(f"expected log-likelihoods of M >= 2 posterior samples, shape (M, batch); got {shape}")
    return log_likelihoods


def waic(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """WAIC(x) = mean_m log p(x|θ_m) − Var_m log p(x|θ_m) (Choi et al. 2018, sec. 3; unbiased variance).

    Args:
        log_likelihoods: ``(M, batch)`` nats per example, M >= 2.

    Returns:
        ``(batch,)`` nats per example; higher = more in-distribution.
    """
    ll = _check_stack(log_likelihoods)
    return ll.mean(0) - ll.var(0, unbiased=True)


def effective_sample_size(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """ESS(x) = 1 / Σ_m w_m², w_m = p(x|θ_m) / Σ_m' p(x|θ_m') (Daxberger & Hernández-Lobato 2019, sec. 3).

    Args:
        log_likelihoods: ``(M, batch)`` nats per example, M >= 2.

    Returns:
        ``(batch,)`` in [1, M] (dimensionless); higher = the samples agree = more in-distribution.
    """
    ll = _check_stack(log_likelihoods)
    w = torch.softmax(ll.double(), dim=0)
    return (1.0 / (w**2).sum(0)).to(ll.dtype)


def posterior_log_likelihood(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """log (1/M) Σ_m p(x|θ_m): the likelihood under the posterior predictive (the BVAE's, or an ensemble's).

    Returns:
        ``(batch,)`` nats per example; higher = more in-distribution.
    """
    ll = _check_stack(log_likelihoods)
    return torch.logsumexp(ll, 0) - math.log(len(ll))


def ensemble_disagreement(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """−std_m log p(x|θ_m): minus the spread of the members' log-likelihoods (Daxberger &
    Hernández-Lobato 2019, sec. 3: OOD inputs are where the posterior samples disagree).

    Unlike :func:`effective_sample_size`, which saturates at 1 as soon as one member is a few nats
    above the others, the standard deviation keeps ranking large disagreements.

    Args:
        log_likelihoods: ``(M, batch)`` nats per example, M >= 2.

    Returns:
        ``(batch,)`` minus nats per example (unbiased std over members); 0 when all members agree,
        higher = more in-distribution.
    """
    return -_check_stack(log_likelihoods).std(0, unbiased=True)


def _groups(n: int, batch_size: int) -> torch.Tensor:
    """Group index of each of ``n`` rows taken in consecutive groups of ``batch_size``: ``(n,)``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"the typicality batch size M must be a positive integer, got {batch_size!r}")
    return torch.arange(n) // batch_size


def typicality(log_likelihood: torch.Tensor, reference: float, batch_size: int = 1) -> torch.Tensor:
    """Minus the typicality statistic of Nalisnick et al. (2019b, sec. 3, Algorithm 1), per row.

    The rows are taken in consecutive batches of M = ``batch_size`` (the last one may be smaller);
    each batch's statistic is |−(1/M) Σ_m log p(x_m) − Ĥ| with Ĥ = −``reference``, and every row gets
    minus its batch's statistic. M = 1 is the single-input test, −|log p(x) − reference|.

    Args:
        log_likelihood: ``(batch,)`` nats per example.
        reference: mean log p of the training data (= −Ĥ), nats per example.
        batch_size: M.

    Returns:
        ``(batch,)`` minus nats per example; 0 = as typical as can be, higher = more in-distribution.

    Raises:
        ValueError: a non-finite reference or M < 1.
    """
    if not math.isfinite(reference):
        raise ValueError(
            f"the typicality reference (mean in-distribution log-likelihood) must be finite, got {reference}"
        )
    groups = _groups(len(log_likelihood), batch_size).to(log_likelihood.device)
    count = torch.zeros(
        int(groups[-1]) + 1 if len(groups) else 0, dtype=log_likelihood.dtype, device=log_likelihood.device
    )
    sums = count.clone().index_add_(0, groups, log_likelihood)
    count.index_add_(0, groups, torch.ones_like(log_likelihood))
    return -(sums / count - reference).abs()[groups]


def typicality_statistic(log_likelihood: torch.Tensor, reference: float, batches: torch.Tensor) -> torch.Tensor:
    """|mean_{m in batch} log p(x_m) − reference| of each batch of row indices ``batches`` ``(B, M)``: ``(B,)``
    (= |−(1/M) Σ log p(x_m) − Ĥ|, Nalisnick et al. 2019b, Algorithm 1)."""
    return (log_likelihood[batches].mean(-1) - reference).abs()


def random_batches(
    n: int, batch_size: int, num_batches: int, generator: torch.Generator | None = None, replace: bool = True
) -> torch.Tensor:
    """``num_batches`` random batches of ``batch_size`` row indices out of ``n``: ``(num_batches, batch_size)``.

    With ``replace`` the rows of a batch are drawn with replacement (the bootstrap of Nalisnick et
    al.'s Algorithm 1); without, each batch is a random subset (needs ``batch_size <= n``).
    """
    _groups(1, batch_size)
    if replace:
        return torch.randint(n, (num_batches, batch_size), generator=generator)
    if batch_size > n:
        raise ValueError(f"cannot draw batches of {batch_size} distinct rows out of {n}")
    return torch.stack([torch.randperm(n, generator=generator)[:batch_size] for _ in range(num_batches)])


def bootstrap_threshold(
    log_likelihood: torch.Tensor,
    reference: float,
    batch_size: int,
    alpha: float = 0.05,
    num_bootstrap: int = 1000,
    generator: torch.Generator | None = None,
) -> float:
    """ε of the typicality test (Nalisnick et al. 2019b, Algorithm 1): the (1 − α) quantile of the
    statistic over ``num_bootstrap`` batches of M = ``batch_size`` rows resampled with replacement from
    held-out in-distribution data.

    Args:
        log_likelihood: ``(n,)`` log p of held-out in-distribution data (not the data Ĥ came from).
        reference: mean log p of the training data (= −Ĥ).
        alpha: the test's false-alarm rate on in-distribution batches.

    Returns:
        ε in nats; a batch whose statistic exceeds it is out of distribution.

    Raises:
        ValueError: alpha outside (0, 1), fewer than 2 held-out rows, or M < 1.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if len(log_likelihood) < 2:
        raise ValueError(f"the bootstrap needs at least 2 held-out examples, got {len(log_likelihood)}")
    batches = random_batches(len(log_likelihood), batch_size, num_bootstrap, generator)
    statistic = typicality_statistic(log_likelihood.double(), reference, batches)
    return float(torch.quantile(statistic, 1 - alpha))


def likelihood_ratio(log_likelihood: torch.Tensor, background_log_likelihood: torch.Tensor) -> torch.Tensor:
    """LLR(x) = log p_θ(x) − log p_θ₀(x) (Ren et al. 2019, sec. 3), both ``(batch,)`` nats per example.

    Returns:
        ``(batch,)`` nats per example; higher = more in-distribution.
    """
    if log_likelihood.shape != background_log_likelihood.shape:
        raise ValueError(
            f"log-likelihoods of model and background differ in shape: {tuple(log_likelihood.shape)} "
            f"vs {tuple(background_log_likelihood.shape)}"
        )
    return log_likelihood - background_log_likelihood


class PixelBackground:
    """A per-pixel independent background model p_θ₀(x) = Π_d p(x_d; θ₀_d) for the likelihood ratio.

    Ren et al. (2019, sec. 3) train the background model on perturbed inputs so that it captures
    population-level background statistics only; this is the simplest such model: one independent
    distribution per pixel, fitted by maximum likelihood on the perturbed training data.

    Args:
        family: "bernoulli" (binary or [0, 1] data: p_d = (Σ_n x_nd + 1) / (N + 2), Laplace-smoothed),
            "normal" (loc_d = mean, scale_d = max(std, ``min_scale``)) or "categorical" (8-bit pixels
            k/255: p_d(k) = (count of level k at pixel d + 1) / (N + 256), Laplace-smoothed).
        min_scale: the smallest std of the "normal" family.

    Raises:
        ValueError: an unknown family.
    """

    FAMILIES = ("bernoulli", "normal", "categorical")

    def __init__(self, family: str = "bernoulli", min_scale: float = 1e-2):
        if family not in self.FAMILIES:
            raise ValueError(f"unknown background family {family!r}; choose one of: {', '.join(self.FAMILIES)}")
        self.family, self.min_scale = family, min_scale
        self.params: dict[str, torch.Tensor] = {}

    def fit(self, x: torch.Tensor) -> PixelBackground:
        """Fit on ``x`` ``(N, *data_shape)`` (already perturbed; in [0, 1] for "bernoulli")."""
        x = x.double()
        if self.family == "bernoulli":
            if x.min() < 0 or x.max() > 1:
                raise ValueError("a Bernoulli background needs data in [0, 1]")
            self.params = {"probs": ((x.sum(0) + 1) / (len(x) + 2)).float()}
        elif self.family == "categorical":
            if not on_grid(x):
                raise ValueError("a categorical background needs 8-bit pixels (multiples of 1/255 in [0, 1])")
            counts = F.one_hot(level_index(x), LEVELS).sum(0).double()  # (*data_shape, 256)
            self.params = {"log_probs": ((counts + 1) / (len(x) + LEVELS)).log().float()}
        else:
            self.params = {"loc": x.mean(0).float(), "scale": x.std(0).clamp_min(self.min_scale).float()}
        return self

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_θ₀(x), summed over the pixels: ``(batch,)`` nats per example for ``x`` ``(batch, *data_shape)``.

        Raises:
            RuntimeError: before :meth:`fit`. ValueError: x of another example shape.
        """
        if not self.params:
            raise RuntimeError("fit the PixelBackground before scoring")
        shape = next(iter(self.params.values())).shape
        if self.family == "categorical":
            shape = shape[:-1]
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"the background was fitted on examples of shape {tuple(shape)}, got {tuple(x.shape[1:])}")
        if self.family == "bernoulli":
            p = self.params["probs"].to(x)
            per_pixel = x * p.log() + (1 - x) * torch.log1p(-p)
        elif self.family == "categorical":
            table = self.params["log_probs"].to(x)  # (*data_shape, 256)
            per_pixel = table.expand(len(x), *table.shape).gather(-1, level_index(x).unsqueeze(-1)).squeeze(-1)
        else:
            per_pixel = torch.distributions.Normal(self.params["loc"].to(x), self.params["scale"].to(x)).log_prob(x)
        return per_pixel.flatten(1).sum(1)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and string metadata to store (safetensors)."""
        return dict(self.params), {"family": self.family, "min_scale": repr(self.min_scale)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> PixelBackground:
        """Rebuild from :meth:`state`."""
        background = cls(metadata["family"], float(metadata["min_scale"]))
        background.params = dict(tensors)
        return background


def perturb(
    x: torch.Tensor,
    mutation_rate: float = DEFAULT_MUTATION_RATE,
    generator: torch.Generator | None = None,
    levels: int | None = None,
) -> torch.Tensor:
    """Ren et al. (2019, sec. 3) input perturbation: each value, with probability ``mutation_rate``,
    is replaced by a draw from U[0, 1] (the value range of [0, 1] data), or, with ``levels``, by one
    of the ``levels`` grey levels k/(levels − 1) drawn uniformly (Ren et al.'s replacement of an
    8-bit pixel by a uniform random value in {0, ..., 255}: ``levels=256``).

    Args:
        x: ``(N, *data_shape)`` in [0, 1].

    Returns:
        ``(N, *data_shape)`` in [0, 1] (on the grid of ``levels`` where ``x`` is).

    Raises:
        ValueError: a mutation rate outside [0, 1] or fewer than 2 levels.
    """
    if not 0 <= mutation_rate <= 1:
        raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate!r}")
    if levels is not None and not levels >= 2:
        raise ValueError(f"levels must be >= 2, got {levels!r}")
    mask = torch.rand(x.shape, generator=generator) < mutation_rate
    replacement = torch.rand(x.shape, generator=generator)
    if levels is not None:
        replacement = (replacement * levels).floor().clamp_max(levels - 1) / (levels - 1)
    return torch.where(mask, replacement, x)


@dataclasses.dataclass(frozen=True)
class OODScore:
    """A registered OOD score: what it needs besides the model, its unit and its source."""

    needs: tuple[str, ...]
    unit: str
    source: str


#: name -> OODScore. ``needs``: "background" (a VAE or a :class:`PixelBackground` on perturbed data),
#: "reference" (mean training log-likelihood, −Ĥ), "posterior" (M posterior samples / ensemble members).
OOD_SCORES: dict[str, OODScore] = {
    "log_likelihood": OODScore((), "nats per example", "Nalisnick et al. 2019 (the baseline)"),
    "likelihood_ratio": OODScore(("background",), "nats per example", "Ren et al. 2019, sec. 3"),
    "typicality": OODScore(("reference",), "minus nats per example", "Nalisnick et al. 2019b, sec. 3"),
    "likelihood_regret": OODScore((), "minus nats per example", "Xiao et al. 2020, sec. 3, Algorithm 1"),
    "waic": OODScore(("posterior",), "nats per example", "Choi et al. 2018, sec. 3"),
    "effective_sample_size": OODScore(
        ("posterior",), "samples, in [1, M]", "Daxberger & Hernandez-Lobato 2019, sec. 3"
    ),
    "posterior_log_likelihood": OODScore(("posterior",), "nats per example", "log (1/M) sum_m p(x|theta_m)"),
    "ensemble_disagreement": OODScore(
        ("posterior",), "minus nats per example", "Daxberger & Hernandez-Lobato 2019, sec. 3"
    ),
}


def check_ood_score(name: str) -> OODScore:
    """The registered :class:`OODScore` ``name``.

    Raises:
        ValueError: unknown name (the valid ones are listed).
    """
    if name not in OOD_SCORES:
        raise ValueError(f"unknown OOD score {name!r}; choose one of: {', '.join(OOD_SCORES)}")
    return OOD_SCORES[name]
