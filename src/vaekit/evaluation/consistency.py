"""Consistency of iterated encoding and decoding: x ← g(μ(x)) repeated, as in the AVAE paper's figure.

A consistent autoencoder keeps the semantic content of x under repeated forward passes (Cemgil
et al., NeurIPS 2020, sec. 6, fig. 3): we report, after each of T iterations, the fraction of
test images whose probe prediction on the iterate still equals the true label.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def iterate(model, x: torch.Tensor, num_steps: int = 10, batch_size: int = 1000) -> torch.Tensor:
    """The iterates x_0 = x, x_{t+1} = g(μ(x_t)): ``(num_steps + 1, N, *data_shape)``.

    g is the decoder mean and μ the encoder mean (no sampling).

    Raises:
        ValueError: ``num_steps`` < 1.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    out = [x.to(p.device)]
    for _ in range(num_steps):
        prev = out[-1]
        out.append(torch.cat([model.reconstruct(prev[i : i + batch_size]) for i in range(0, len(prev), batch_size)]))
    model.train(was_training)
    return torch.stack(out)


def consistency(model, probe, x: torch.Tensor, y: torch.Tensor, num_steps: int = 10) -> list[float]:
    """Fraction of the images ``x`` ``(N, *data_shape)`` whose probe prediction on iterate t equals
    the true label ``y`` ``(N,)``, for t = 0 (the clean accuracy), 1, ..., ``num_steps``.

    Returns:
        ``num_steps + 1`` accuracies in [0, 1].
    """
    iterates = iterate(model, x, num_steps)
    return [(probe.predict(xt).cpu() == y.cpu()).float().mean().item() for xt in iterates]
