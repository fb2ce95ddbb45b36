"""Projected gradient ascent (PGD) on any differentiable per-example loss, in an L∞ or L2 ball.

One attack serves two purposes: smooth-encoder training picks the point of the ε-ball that
maximises the encoder divergence (Cemgil et al., ICLR 2020, sec. 3), and the robustness
evaluation picks the point that maximises a probe's cross-entropy (Madry et al., "Towards Deep
Learning Models Resistant to Adversarial Attacks", ICLR 2018, eq. 2 and sec. 2.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NORMS = ("linf", "l2")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each example, shaped ``(batch, 1, ..., 1)`` to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """The nearest point of the ``norm`` ball of radius ``epsilon`` to each example's ``delta``."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    return delta * (epsilon / _flat_norm(delta)).clamp(max=1.0)


def _random_start(x: torch.Tensor, epsilon: float, norm: str, generator) -> torch.Tensor:
    """A uniform draw from the ball (L∞: per coordinate; L2: Gaussian direction, radius ε·u^(1/d))."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return (2 * u - 1) * epsilon
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    d = x[0].numel()
    radius = torch.rand(len(x), generator=generator, dtype=x.dtype).to(x.device) ** (1.0 / d) * epsilon
    return direction / _flat_norm(direction) * radius.view(-1, *([1] * (x.dim() - 1)))


def pgd(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    epsilon: float,
    num_steps: int = 20,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    clip: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
    keep_best: bool = True,
) -> torch.Tensor:
    """Maximise ``loss_fn`` over the ``norm`` ball of radius ``epsilon`` around ``x`` by PGD.

    Each step moves along the steepest-ascent direction of the norm (sign of the gradient for
    L∞, the normalised gradient for L2) by ``step_size``, then projects back onto the ball and
    onto the pixel range ``clip``. With ``keep_best`` the returned point is, per example, the
    iterate with the highest loss seen (the start included), so more steps never weaken the
    attack; without it, the last iterate (one loss evaluation fewer). Only ``x`` is
    differentiated (``torch.autograd.grad``): model parameters receive no gradient.

    Args:
        loss_fn: ``x_adv (batch, *shape) -> (batch,)`` per-example loss to maximise.
        x: ``(batch, *shape)`` clean inputs (e.g. pixels in [0, 1]).
        epsilon: radius of the ball, in pixel units (≥ 0; 0 returns ``x``).
        num_steps: gradient steps (≥ 1). ``num_steps=1, step_size=epsilon, random_start=False``
            is the single-step FGSM attack (Goodfellow et al. 2015) for L∞.
        step_size: step length; default 2.5·ε/num_steps (Madry et al. 2018).
        norm: "linf" or "l2".
        random_start: start from a uniform point of the ball instead of ``x``.
        clip: ``(low, high)`` valid input range, or None for none.
        generator: seeds the random start.
        keep_best: return the best iterate rather than the last.

    Returns:
        ``(batch, *shape)`` detached adversarial inputs with ‖x_adv − x‖ ≤ ε and values in ``clip``.

    Raises:
        ValueError: negative ``epsilon``, ``num_steps`` < 1, an unknown norm, or a ``loss_fn``
            that does not return one value per example.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    x = x.detach()
    if epsilon == 0:
        return x.clone()
    step_size = 2.5 * epsilon / num_steps if step_size is None else float(step_size)

    def valid(point: torch.Tensor) -> torch.Tensor:
        point = x + project(point - x, epsilon, norm)
        return point if clip is None else point.clamp(*clip)

    x_adv = valid(x + _random_start(x, epsilon, norm, generator)) if random_start else x.clone()
    best, best_loss = x_adv.clone(), None
    for step in range(num_steps + int(keep_best)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(x_adv)
            if loss.shape != x.shape[:1]:
                raise ValueError(
                    f"loss_fn must return one value per example, shape ({len(x)},), got {tuple(loss.shape)}"
                )
            grad = torch.autograd.grad(loss.sum(), x_adv)[0] if step < num_steps else None
        if keep_best:
            loss = loss.detach()
            better = torch.ones_like(loss, dtype=torch.bool) if best_loss is None else loss > best_loss
            best_loss = loss if best_loss is None else torch.where(better, loss, best_loss)
            best[better] = x_adv.detach()[better]
        if grad is not None:
            ascent = grad.sign() if norm == "linf" else grad / _flat_norm(grad)
            x_adv = valid(x_adv.detach() + step_size * ascent)
    return best.detach() if keep_best else x_adv.detach()


def fgsm(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    epsilon: float,
    norm: str = "linf",
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """The single-step attack: one step of length ε from ``x`` (FGSM for L∞, Goodfellow et al. 2015).

    Same arguments and result as :func:`pgd`, which it calls with ``num_steps=1``.
    """
    return pgd(loss_fn, x, epsilon, num_steps=1, step_size=epsilon, norm=norm, random_start=False, clip=clip)
