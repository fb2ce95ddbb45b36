"""Evaluation of a conditional model on labelled data: the metrics of :func:`evaluate` for p(x|c)."""

from __future__ import annotations

import torch

from ..models import condition
from .likelihood import evaluate
from .reconstruction import MSE_UNITS, reconstruction_mse

#: Keys of :func:`evaluate` that are averages over examples (combined across classes by weighting).
_AVERAGES = ("reconstruction", "kl", "log_likelihood", "elbo")


@torch.no_grad()
def evaluate_conditional(
    model,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    num_samples: int = 1000,
    batch_size: int = 500,
    x_unbinarized: torch.Tensor | None = None,
) -> dict:
    """:func:`~vaekit.evaluation.evaluate` for any model; a conditional one (CVAE) is scored with
    each example's own class: ``log_likelihood`` estimates log p(x|c) (importance sampled with
    q(z|x, c), Sohn et al. 2015, sec. 3), ``elbo`` bounds it.

    The examples of each class are evaluated with the condition fixed and the per-example
    averages combined with weights n_c / N (exact: every metric but active_units is an average
    over examples); ``active_units`` is recomputed on the encoder means of all examples.

    ``mse_per_pixel`` and ``mse_per_example`` come from
    :func:`~vaekit.evaluation.reconstruction.reconstruction_mse` on ``x_unbinarized`` (the same
    examples before binarization; default ``x``): the one definition of the reconstruction error.

    Args:
        model: any model; when it is not conditional ``labels`` is ignored.
        x: ``(N, *data_shape)`` as the model sees it (binarized when the run binarizes).
        labels: ``(N,)`` class indices (required for a conditional model).
        x_unbinarized: ``(N, *data_shape)`` the examples before binarization, for the MSE.

    Raises:
        ValueError: a conditional model without labels, labels of the wrong length, or
            ``batch_size`` < 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    clean = x if x_unbinarized is None else x_unbinarized
    if clean.shape != x.shape:
        raise ValueError(f"x_unbinarized must have the shape of x {tuple(x.shape)}, got {tuple(clean.shape)}")
    if not model.conditional:
        result = evaluate(model, x, num_samples=num_samples, batch_size=batch_size)
        result = {k: v for k, v in result.items() if k not in MSE_UNITS}
        return {**result, **reconstruction_mse(model, clean, None, batch_size)}
    if labels is None or len(labels) != len(x):
        raise ValueError(
            f"a conditional model needs one label per example: got {None if labels is None else len(labels)} "
            f"labels for {len(x)} examples"
        )
    labels = torch.as_tensor(labels).long()
    parts, weights, means = [], [], []
    for c in torch.unique(labels).tolist():
        xc = x[labels == c]
        parts.append(evaluate(condition(model, c), xc, num_samples=num_samples, batch_size=batch_size))
        weights.append(len(xc) / len(x))
        means.append(condition(model, c).transform(xc))
    result = {key: sum(w * p[key] for w, p in zip(weights, parts)) for key in _AVERAGES if key in parts[0]}
    result["kl_per_dim"] = [
        sum(w * p["kl_per_dim"][d] for w, p in zip(weights, parts)) for d in range(model.latent_dim)
    ]
    mu = torch.cat(means)
    result["active_units"] = int((mu.var(0, unbiased=True) > 0.01).sum()) if len(mu) > 1 else 0
    result.update(reconstruction_mse(model, clean, labels, batch_size))
    return result
