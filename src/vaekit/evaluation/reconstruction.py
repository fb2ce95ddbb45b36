"""Reconstruction error: the one definition of "MSE per pixel" that every command reports.

The error is measured on the test examples *as stored*, before binarization: x in [0, 1] for
images (standardised features for a tabular run), encoded and decoded as g(μ(x)) and compared
with x. A binarized draw b of x is not used as the target, because E(g − b)² = (g − x)² + x(1 − x)
pixel by pixel: against b the number adds the Bernoulli variance of the draw, which depends on
the binarization (seed, ``--binarize``) and not on the model, and it would differ between two runs
of one model that differ only in ``--binarize``. The likelihood metrics (ELBO, log-likelihood)
stay on the binarized data, where they are real log-probabilities. This is also the reconstruction
error of the robustness literature (Cemgil et al. 2020, table 2: MSE of g(μ(x)) on the images).
"""

from __future__ import annotations

import torch

from ..models import condition

#: Units of the two numbers, written beside them wherever they are reported.
MSE_UNITS = {
    "mse_per_pixel": "mean squared error of g(mu(x)) per pixel (data value), x the test examples before "
    "binarization; pixels in [0, 1]",
    "mse_per_example": "squared error of g(mu(x)) summed over the pixels (data values) of one example, averaged "
    "over examples; x before binarization",
}


@torch.no_grad()
def reconstruction_mse(
    model, x: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500
) -> dict[str, float]:
    """Mean squared error of the reconstruction g(μ(x)) (decoder mean at the encoder mean).

    Args:
        model: any AE/VAE; a conditional one is given each example's class ``labels`` ``(N,)``.
        x: ``(N, *data_shape)`` the examples before binarization (pixels in [0, 1]).
        batch_size: examples per forward pass.

    Returns:
        ``{"mse_per_pixel": mean over examples and data values, "mse_per_example": summed over
        the data values of one example, mean over examples}`` (units in :data:`MSE_UNITS`).

    Raises:
        ValueError: no examples, ``batch_size`` < 1, or a conditional model without one label per example.
    """
    if len(x) == 0:
        raise ValueError("reconstruction_mse needs at least one example, got an empty x")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if model.conditional and (labels is None or len(labels) != len(x)):
        raise ValueError(
            f"a conditional model needs one label per example: got "
            f"{None if labels is None else len(labels)} labels for {len(x)} examples"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        view = condition(model, None if labels is None else labels[start : start + batch_size].to(device))
        total += (view.reconstruct(xb) - xb).pow(2).sum().item()
    model.train(was_training)
    per_example = total / len(x)
    return {"mse_per_pixel": per_example / x[0].numel(), "mse_per_example": per_example}
