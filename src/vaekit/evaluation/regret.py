"""Likelihood regret (Xiao, Yan & Amit 2020, "Likelihood Regret: An Out-of-Distribution Detection
Score for Variational Auto-encoder", NeurIPS, sec. 3 and Algorithm 1), two ways.

LR(x) = ELBO(x; θ, φ̂(x)) − ELBO(x; θ, φ): how much the ELBO of x improves when the posterior
q(z|x) is fitted to x alone instead of coming from the trained encoder φ. OOD inputs, far from what
the encoder was trained on, gain more. The score is −LR(x) (higher = more in-distribution).

* ``method="encoder"`` (the paper's Algorithm 1): a copy of the encoder weights φ is fine-tuned on
  the single x (100 Adam steps, learning rate 1e-4, one reparametrised draw per step, maximising the
  ELBO of x, decoder fixed), and no clamp at 0. Vectorised over a batch: every example gets its own
  copy of the encoder weights, stacked on a leading dimension and run with
  :func:`torch.func.vmap` over :func:`torch.func.functional_call`; the loss is the sum of the
  per-example ELBOs, so each copy's gradient is its own example's, and Adam, being element-wise, is
  exactly B independent Adams.
* ``method="posterior"`` (vaekit's earlier version, kept as an option): no encoder weights are
  changed; the per-example (loc, log scale) of q(z|x) is initialised at the encoder's output and
  improved by Adam (lr 0.05) — the non-amortised optimum that the fine-tuning approximates — and the
  regret is clamped at 0 (an optimisation that does not improve the ELBO counts as no regret).

Both ELBOs (before, after) are estimated with the same ``num_samples`` seeded draws (common random
numbers), so the difference is not swamped by Monte Carlo noise; with "encoder" the draws of every
step are drawn up front per example, so an example's score does not depend on ``chunk_size``.
"""

from __future__ import annotations

import torch

from ..distributions import diagonal_normal, kl_or_estimate

METHODS = ("encoder", "posterior")
#: Adam learning rate of each method: 1e-4 is Xiao et al.'s (Algorithm 1, sec. 4); 0.05 moves a
#: per-example (loc, log scale) in a few dozen steps.
DEFAULT_LR = {"encoder": 1e-4, "posterior": 0.05}


def likelihood_regret(
    model,
    x: torch.Tensor,
    num_steps: int = 100,
    lr: float | None = None,
    num_samples: int = 16,
    seed: int = 0,
    method: str = "encoder",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Minus the likelihood regret of Xiao et al. (2020, sec. 3, Algorithm 1); see the module docstring.

    Args:
        model: a trained VAE (its weights are not changed).
        x: ``(batch, *data_shape)`` as the model sees it (binarized for a Bernoulli likelihood).
        num_steps: Adam steps per example (Xiao et al.: 100).
        lr: Adam learning rate; None = :data:`DEFAULT_LR` of the method.
        num_samples: draws of each ELBO estimate (the same draws before and after).
        seed: seed of every draw (in a forked RNG).
        method: "encoder" (Algorithm 1, fine-tune a copy of the encoder per x, no clamp) or
            "posterior" (optimise the per-example q(z|x) parameters; regret clamped at 0).
        chunk_size: examples fine-tuned at once by "encoder" (memory: ~4 copies of the encoder's
            weights per example); None = 32 when the first-layer reduction applies (binary x, an MLP
            encoder), else 64. 32 rows of the benchmark's encoder (~9 MB of weights) stay in cache:
            0.10 s of CPU per row at 32 against 0.18 at 256 (benchmarks/regret_speed.py). The scores
            do not depend on it.

    Returns:
        ``(batch,)`` −LR(x) in nats per example; higher = more in-distribution.

    Raises:
        ValueError: an AE (no posterior), an unknown method, or non-positive steps/samples/lr.
    """
    if not model.stochastic:
        raise ValueError("likelihood regret needs a VAE (an AE has no posterior to optimise)")
    if method not in METHODS:
        raise ValueError(f"unknown likelihood-regret method {method!r}; choose one of: {', '.join(METHODS)}")
    lr = DEFAULT_LR[method] if lr is None else lr
    if chunk_size is None:
        chunk_size = 64 if method == "posterior" or _binary_first_layer(model.encoder, x) is None else 32
    if num_steps < 1 or num_samples < 1 or not lr > 0 or chunk_size < 1:
        raise ValueError(
            f"need num_steps >= 1, num_samples >= 1, lr > 0 and chunk_size >= 1; got {num_steps}, "
            f"{num_samples}, {lr}, {chunk_size}"
        )
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if method == "posterior":
                return _posterior_regret(model, x, num_steps, lr, num_samples, seed)
            with torch.no_grad():
                loc = model.encode(x).mean
            eps = _draws(loc, num_samples, seed)  # the ELBO estimates' draws, before and after
            noise = torch.randn(
                (num_steps, *loc.shape),
                generator=torch.Generator(device=loc.device).manual_seed(seed),
                device=loc.device,
                dtype=loc.dtype,
            )  # one draw per step and example
            return torch.cat(
                [
                    _encoder_regret(
                        model, x[i : i + chunk_size], lr, eps[:, i : i + chunk_size], noise[:, i : i + chunk_size]
                    )
                    for i in range(0, len(x), chunk_size)
                ]
            )
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)


def _elbo_at(model, x, loc, scale, z):
    """Per-example ELBO of q = N(loc, scale²) at draws z ``(S, batch, latent_dim)``: ``(batch,)``."""
    log_px = model.decode(z).log_prob(x)
    return log_px.mean(0) - kl_or_estimate(diagonal_normal(loc, scale), model.prior(), z)


def _draws(loc: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    g = torch.Generator(device=loc.device).manual_seed(seed + 1)
    return torch.randn((num_samples, *loc.shape), generator=g, device=loc.device, dtype=loc.dtype)


def _encoder_regret(model, x, lr, eps, noise):
    """Algorithm 1 of Xiao et al. for a chunk: one encoder copy per example, fine-tuned together.
    ``eps`` ``(S, chunk, latent_dim)``: the ELBO estimates' draws; ``noise`` ``(steps, chunk, latent_dim)``:
    the draw of each step (so an example's result does not depend on how the batch is chunked)."""
    from torch.func import functional_call, vmap

    encoder = model.encoder
    buffers = {k: v.detach() for k, v in encoder.named_buffers()}
    first = _binary_first_layer(encoder, x)
    if first is None:
        copies = {
            k: p.detach().expand(len(x), *p.shape).clone().requires_grad_(True) for k, p in encoder.named_parameters()
        }

        def posterior_one(weights, xi):
            loc, scale = functional_call(encoder, (weights, buffers), (xi[None],))
            return loc[0], scale[0]

        batched = vmap(posterior_one)
        inputs = x
    else:  # the exact reduction of the first Linear layer on binary inputs (see _binary_first_layer)
        h0, count = first
        rest = _EncoderAfterFirstLayer(encoder)
        copies = {
            k: p.detach().expand(len(x), *p.shape).clone().requires_grad_(True) for k, p in rest.named_parameters()
        }
        copies["_shift"] = torch.zeros_like(h0, requires_grad=True)

        def posterior_one(weights, inputs_i):
            h0_i, count_i = inputs_i
            shift = weights["_shift"]
            h1 = h0_i + count_i * shift.detach() + (shift - shift.detach())  # value k·a, gradient ∂/∂h1
            loc, scale = functional_call(rest, {k: v for k, v in weights.items() if k != "_shift"}, (h1[None],))
            return loc[0], scale[0]

        batched = vmap(posterior_one)
        inputs = (h0, count)
    with torch.no_grad():
        loc, scale = batched(copies, inputs)
        before = _elbo_at(model, x, loc, scale, loc + scale * eps)
    adam = torch.optim.Adam(list(copies.values()), lr=lr)
    for step_noise in noise:
        adam.zero_grad()
        loc, scale = batched(copies, inputs)
        z = loc + scale * step_noise
        (-_elbo_at(model, x, loc, scale, z[None]).sum()).backward()
        adam.step()
    with torch.no_grad():
        loc, scale = batched(copies, inputs)
        after = _elbo_at(model, x, loc, scale, loc + scale * eps)
    return -(after - before)


class _EncoderAfterFirstLayer(torch.nn.Module):
    """An MLP encoder without its first Linear layer: h1 ``(batch, hidden)`` -> (loc, scale); shares the weights."""

    def __init__(self, encoder):
        super().__init__()
        self.body = torch.nn.Sequential(*list(encoder.body)[1:])
        self.head = encoder.head

    def forward(self, h1):
        return self.head(self.body(h1))


def _binary_first_layer(encoder, x):
    """``(h0 (batch, hidden), count (batch, 1))`` when the fine-tuning of ``encoder``'s first Linear layer
    reduces exactly to one vector per example, else None.

    Why it is exact: on binary x (every value 0 or 1, as the benchmark's binarized images), weight
    W_ij of the first layer gets the gradient g_i·x_j: zero where x_j = 0 (Adam never moves it) and
    g_i where x_j = 1, the same gradient as the bias b_i. Adam being element-wise, all of them move by
    the same displacement a_i, so h1 = W x + b moves by k·a_i with k = (number of ones in x) + 1.
    Fine-tuning a (with gradient ∂ELBO/∂h1) instead of the 784×256 copy gives the same iterates
    (tests/test_ood_scores.py checks it against the full copy), and ~3.7× fewer parameters per example
    for the benchmark's 784-256-256 encoder. An encoder with a condition input, a conv encoder or
    non-binary x takes the full copy."""
    from ..nets import MLPEncoder

    if not isinstance(encoder, MLPEncoder) or not isinstance(encoder.body[0], torch.nn.Linear):
        return None
    flat = x.flatten(1)
    if flat.shape[1] != encoder.body[0].in_features or not bool(((flat == 0) | (flat == 1)).all()):
        return None
    with torch.no_grad():
        return encoder.body[0](flat), flat.sum(1, keepdim=True) + 1


def _posterior_regret(model, x, num_steps, lr, num_samples, seed):
    """The per-example-posterior variant: Adam on (loc, log scale) of every example at once, clamped."""
    with torch.no_grad():
        q = model.encode(x)
        loc, log_scale = q.mean.clone(), q.stddev.log().clone()
        eps = _draws(loc, num_samples, seed)
        before = _elbo_at(model, x, loc, log_scale.exp(), loc + log_scale.exp() * eps)
    loc.requires_grad_(True)
    log_scale.requires_grad_(True)
    adam = torch.optim.Adam([loc, log_scale], lr=lr)
    for _ in range(num_steps):
        adam.zero_grad()
        z = loc + log_scale.exp() * torch.randn_like(loc)
        (-_elbo_at(model, x, loc, log_scale.exp(), z[None]).sum()).backward()
        adam.step()
    with torch.no_grad():
        after = _elbo_at(model, x, loc, log_scale.exp(), loc + log_scale.exp() * eps)
    return -(after - before).clamp_min(0.0)
