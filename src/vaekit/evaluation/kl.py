"""KL diagnostics of a trained model over a data set: Chen et al. 2018's decomposition of the
average KL term into index-code MI, total correlation and dimension-wise KL, and KL per dimension.

The estimator itself lives with the β-TCVAE objective (:mod:`vaekit.objectives.betatc`); here it
is run on a whole data set with the exact mixture (stratified weights, N = M).
"""

from __future__ import annotations

import torch
from torch.distributions import Normal

from ..distributions import DiagonalNormal, kl_or_estimate, kl_per_dim
from ..models import condition
from ..objectives.betatc import kl_decomposition_terms

#: Examples of the validation (or training) set on which the training loop logs the decomposition.
DIAGNOSTIC_POINTS = 1000


@torch.no_grad()
def kl_decomposition(model, x: torch.Tensor, seed: int = 0, batch_size: int = 500, labels=None) -> dict:
    """The KL decomposition over the data set ``x`` ``(M, *data_shape)``, with q(z) the exact mixture
    of the M posteriors (stratified weights with N = M), one z per example drawn with ``seed``.
    ``labels`` ``(M,)``: the conditions of a conditional model (q(z|x, c)).

    Returns:
        ``kl_mi``, ``kl_tc``, ``kl_dimwise``: nats per example (averaged over the M examples);
        ``kl_mc``: their sum, the one-sample Monte Carlo KL; ``kl``: the closed-form KL averaged
        over the examples; ``kl_per_dim``: list of closed-form KL per latent dimension, nats per
        example. The MI estimate is at most log M.

    Raises:
        ValueError: for a deterministic model (no posterior).

    A posterior that is not a diagonal Gaussian (a flow, a hierarchy, a von Mises–Fisher) has no
    mixture decomposition here: only ``kl`` (the Monte Carlo KL) is returned.
    """
    if not model.stochastic:
        raise ValueError("the KL decomposition needs a VAE (a stochastic encoder); got a deterministic AE")
    was_training = model.training
    if was_training:
        model.eval()
    locs, scales, kls = [], [], []
    for start in range(0, len(x), batch_size):
        c = None if labels is None else labels[start : start + batch_size]
        posterior = condition(model, c).encode(x[start : start + batch_size])
        if not isinstance(posterior, DiagonalNormal):  # flows, hierarchies, vMF...: the total KL only
            kls.append(kl_or_estimate(posterior, model.prior()))
            continue
        base = posterior.base_dist
        locs.append(base.loc)
        scales.append(base.scale)
    if was_training:
        model.train()
    if kls:  # Monte Carlo over MC_KL_SAMPLES draws per example; no decomposition without a diagonal Gaussian q
        return {"kl": torch.cat(kls).mean().item()}
    loc, scale = torch.cat(locs), torch.cat(scales)
    generator = torch.Generator(device=loc.device).manual_seed(seed)
    z = loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    q = torch.distributions.Independent(Normal(loc, scale), 1)
    prior = model.prior()
    terms = kl_decomposition_terms(q, z, prior, len(x), "mss")
    means = {key: value.mean().item() for key, value in terms.items()}
    per_dim = kl_per_dim(q, prior)
    out = {"kl_mi": means["mi"], "kl_tc": means["tc"], "kl_dimwise": means["dimwise_kl"], "kl_mc": sum(means.values())}
    if per_dim is None:  # a prior with dependent dimensions: the total KL only (closed form or Monte Carlo)
        return {**out, "kl": kl_or_estimate(q, prior, z).mean().item()}
    per_dim = per_dim.mean(0)
    return {**out, "kl": per_dim.sum().item(), "kl_per_dim": per_dim.tolist()}


class KLDiagnostics:
    """Training hook (:func:`vaekit.training.fit`): log Chen et al. 2018's KL terms (index-code MI, TC, dimension-wise KL) and the KL per
    dimension on up to ``points`` examples of ``x`` ``(M, *data_shape)`` every epoch: what β is doing.

    ``prefix`` names the split (``val`` or ``train``); ``labels`` are the conditions of a CVAE.
    """

    def __init__(
        self, x: torch.Tensor, points: int, seed: int = 0, labels: torch.Tensor | None = None, prefix: str = "val"
    ):
        self.x, self.labels = x[:points], None if labels is None else labels[:points]
        self.seed, self.prefix = seed, prefix

    def metrics(self, loop, metrics: dict) -> None:
        """Add ``{prefix}_kl_mi``, ``_kl_tc``, ``_kl_dimwise``, ``_kl_mc``, ``_kl``, ``_kl_per_dim``."""
        device = next(loop.model.parameters()).device
        c = None if self.labels is None else self.labels.to(device)
        diagnostics = kl_decomposition(loop.model, self.x.to(device), seed=self.seed, labels=c)
        metrics.update({f"{self.prefix}_{k}": v for k, v in diagnostics.items()})

    @classmethod
    def for_run(cls, model, points: int, seed: int, train_x, val_x, train_c=None, val_c=None) -> list[KLDiagnostics]:
        """The KL-diagnostic hook of a run as a list of zero or one hook: on the validation split
        (else the training split) when it applies, i.e. for a stochastic model, in-memory data
        (``torch.Tensor`` inputs), ``points`` > 0, and the condition at hand for a conditional model."""
        probe, probe_c, prefix = (
            (val_x, val_c, "val") if val_x is not None and len(val_x) else (train_x, train_c, "train")
        )
        if points and model.stochastic and torch.is_tensor(probe) and (probe_c is not None or not model.conditional):
            return [cls(probe, points, seed=seed, labels=probe_c, prefix=prefix)]
        return []
