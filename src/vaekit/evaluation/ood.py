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
* typicality test: Nalisnick, Matsukawa, Teh & Lakshminarayanan (2019, arXiv 1906.02994,
  sec. 3 and its Algorithm 1) reject when |−(1/M) Σ log p(x_m) − Ĥ| > ε, Ĥ the entropy
  estimated by −mean log p on in-distribution data; here for single inputs (M = 1) as a score,
  −|log p(x) − mean log p(x_train)|.
* WAIC: Choi, Jang & Alemi (2018, "WAIC, but why?", sec. 3) WAIC(x) = E_θ[log p(x|θ)] −
  Var_θ[log p(x|θ)] over an ensemble (or posterior samples).
* likelihood regret: Xiao, Yan & Amit (2020, NeurIPS, sec. 3) LR(x) = L(x; θ, τ̂(x)) −
  L(x; θ, φ), the ELBO gain when q(z|x) is optimised for x alone; the score is −LR(x).
* effective sample size: Daxberger & Hernández-Lobato (2019, arXiv 1912.05651, sec. 3, OoD
  detection in input space): the likelihoods p(x|θ_m) of the M posterior samples, normalised to weights w_m, give
  ESS(x) = 1 / Σ_m w_m², between 1 (one sample explains x: disagreement, OoD) and M (all agree).
"""

from __future__ import annotations

import dataclasses
import math

import torch

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
    return (1.0 / (w ** 2).sum(0)).to(ll.dtype)


def posterior_log_likelihood(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """log (1/M) Σ_m p(x|θ_m): the likelihood under the posterior predictive (the BVAE's, or an ensemble's).

    Returns:
        ``(batch,)`` nats per example; higher = more in-distribution.
    """
    ll = _check_stack(log_likelihoods)
    return torch.logsumexp(ll, 0) - math.log(len(ll))


def typicality(log_likelihood: torch.Tensor, reference: float) -> torch.Tensor:
    """−|log p(x) − reference|, ``reference`` = mean log p on in-distribution data = −Ĥ (Nalisnick et al. 2019b, sec. 3, M = 1).

    Returns:
        ``(batch,)`` minus nats per example; 0 = as typical as can be, higher = more in-distribution.
    """
    if not math.isfinite(reference):
        raise ValueError(f"the typicality reference (mean in-distribution log-likelihood) must be finite, got {reference}")
    return -(log_likelihood - reference).abs()


def likelihood_ratio(log_likelihood: torch.Tensor, background_log_likelihood: torch.Tensor) -> torch.Tensor:
    """LLR(x) = log p_θ(x) − log p_θ₀(x) (Ren et al. 2019, sec. 3), both ``(batch,)`` nats per example.

    Returns:
        ``(batch,)`` nats per example; higher = more in-distribution.
    """
    if log_likelihood.shape != background_log_likelihood.shape:
        raise ValueError(f"log-likelihoods of model and background differ in shape: {tuple(log_likelihood.shape)} "
                         f"vs {tuple(background_log_likelihood.shape)}")
    return log_likelihood - background_log_likelihood


def perturb(x: torch.Tensor, mutation_rate: float = DEFAULT_MUTATION_RATE,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Ren et al. (2019, sec. 3) input perturbation: each value, with probability ``mutation_rate``,
    is replaced by a draw from U[0, 1] (the value range of [0, 1] data).

    Args:
        x: ``(N, *data_shape)`` in [0, 1].

    Returns:
        ``(N, *data_shape)`` in [0, 1].
    """
    if not 0 <= mutation_rate <= 1:
        raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate!r}")
    mask = torch.rand(x.shape, generator=generator) < mutation_rate
    return torch.where(mask, torch.rand(x.shape, generator=generator), x)


def likelihood_regret(model, x: torch.Tensor, num_steps: int = 50, lr: float = 0.05, num_samples: int = 16,
                      seed: int = 0) -> torch.Tensor:
    """Minus the likelihood regret of Xiao et al. (2020, sec. 3).

    LR(x) = ELBO(x; θ, τ̂(x)) − ELBO(x; θ, φ): how much the ELBO of x improves when its posterior
    q(z|x) is fitted to x alone instead of coming from the amortised encoder φ. Xiao et al. fine-tune
    the encoder weights on the single x (Algorithm 1); here τ̂(x) = the per-example (loc, log scale)
    of q(z|x), initialised at the encoder's output and improved by ``num_steps`` Adam steps (lr
    ``lr``, one reparametrised draw each) on the ELBO, all examples of the batch at once (they are
    independent problems). That is the non-amortised optimum the encoder fine-tuning approximates.
    Both ELBOs are estimated with the same ``num_samples`` draws (seeded), and the optimised one is
    kept only where it is higher, so LR >= 0.

    Args:
        model: a trained VAE (its weights are not changed).
        x: ``(batch, *data_shape)`` as the model sees it.

    Returns:
        ``(batch,)`` −LR(x) in nats per example; higher = more in-distribution.
    """
    if not model.stochastic:
        raise ValueError("likelihood regret needs a VAE (an AE has no posterior to optimise)")
    if num_steps < 1 or num_samples < 1 or not lr > 0:
        raise ValueError(f"need num_steps >= 1, num_samples >= 1 and lr > 0; got {num_steps}, {num_samples}, {lr}")
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            with torch.no_grad():
                q = model.encode(x)
                loc, log_scale = q.mean.clone(), q.stddev.log().clone()
                before = _elbo(model, x, loc, log_scale, num_samples, seed)
            loc.requires_grad_(True)
            log_scale.requires_grad_(True)
            adam = torch.optim.Adam([loc, log_scale], lr=lr)
            for _ in range(num_steps):
                adam.zero_grad()
                z = loc + log_scale.exp() * torch.randn_like(loc)
                loss = -_elbo_at(model, x, loc, log_scale, z[None]).sum()
                loss.backward()
                adam.step()
            with torch.no_grad():
                after = _elbo(model, x, loc, log_scale, num_samples, seed)
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return -(after - before).clamp_min(0.0)


def _elbo_at(model, x, loc, log_scale, z):
    """Per-example ELBO of q = N(loc, exp(log_scale)²) at draws z ``(S, batch, latent_dim)``: ``(batch,)``."""
    from ..distributions import diagonal_normal

    q = diagonal_normal(loc, log_scale.exp())
    log_px = model.decode(z).log_prob(x)
    return log_px.mean(0) - torch.distributions.kl_divergence(q, model.prior())


@torch.no_grad()
def _elbo(model, x, loc, log_scale, num_samples, seed):
    g = torch.Generator(device=loc.device).manual_seed(seed + 1)
    eps = torch.randn((num_samples, *loc.shape), generator=g, device=loc.device, dtype=loc.dtype)
    return _elbo_at(model, x, loc, log_scale, loc + log_scale.exp() * eps)


@dataclasses.dataclass(frozen=True)
class OODScore:
    """A registered OOD score: what it needs besides the model, its unit and its source."""

    needs: tuple[str, ...]
    unit: str
    source: str


#: name -> OODScore. ``needs``: "background" (a VAE on perturbed data), "reference" (mean
#: in-distribution log-likelihood), "posterior" (M posterior samples / ensemble members).
OOD_SCORES: dict[str, OODScore] = {
    "log_likelihood": OODScore((), "nats per example", "Nalisnick et al. 2019 (the baseline)"),
    "likelihood_ratio": OODScore(("background",), "nats per example", "Ren et al. 2019, sec. 3"),
    "typicality": OODScore(("reference",), "minus nats per example", "Nalisnick et al. 2019b, sec. 3"),
    "likelihood_regret": OODScore((), "minus nats per example", "Xiao et al. 2020, sec. 3"),
    "waic": OODScore(("posterior",), "nats per example", "Choi et al. 2018, sec. 3"),
    "effective_sample_size": OODScore(("posterior",), "samples, in [1, M]", "Daxberger & Hernandez-Lobato 2019, sec. 3"),
    "posterior_log_likelihood": OODScore(("posterior",), "nats per example", "log (1/M) sum_m p(x|theta_m)"),
}


def check_ood_score(name: str) -> OODScore:
    """The registered :class:`OODScore` ``name``.

    Raises:
        ValueError: unknown name (the valid ones are listed).
    """
    if name not in OOD_SCORES:
        raise ValueError(f"unknown OOD score {name!r}; choose one of: {', '.join(OOD_SCORES)}")
    return OOD_SCORES[name]

