"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning", NeurIPS, sec. 3.1-3.2,
eq. 3, and the EMA codebook updates of appendix A.1) with an autoregressive prior over the codes
(a small masked 1-D convolutional net over the code sequence, PixelCNN-style, as the paper's sec. 3.2
and pythae's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from ..distributions import Deterministic, Likelihood
from .ae import AE


class MaskedConv1d(nn.Conv1d):
    """A causal 1-D convolution: output i sees inputs < i (mask "A") or <= i (mask "B")."""

    mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, include_centre: bool):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones_like(self.weight)
        mask[..., kernel_size // 2 + int(include_centre) :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.conv1d(x, self.weight * self.mask, self.bias, padding=self.padding)


class CodePrior(nn.Module):
    """p(k_1..k_G) = Π_g p(k_g | k_<g): the codes shifted right behind a start token, embedded, then
    causal (mask "B") convolutions, so position g sees the start token and k_<g; logits ``(batch, K, G)``."""

    def __init__(self, num_codes: int, width: int = 64, layers: int = 3, kernel_size: int = 5):
        super().__init__()
        self.num_codes = num_codes
        self.embed = nn.Embedding(num_codes + 1, width)  # the last row: the start token
        self.convs = nn.ModuleList(
            [MaskedConv1d(width, width, kernel_size, include_centre=True) for _ in range(layers)]
        )
        self.out = nn.Conv1d(width, num_codes, 1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(codes[:, :1], self.num_codes)
        h = self.embed(torch.cat([start, codes[:, :-1]], 1)).transpose(1, 2)
        for conv in self.convs:
            h = F.relu(conv(h))
        return self.out(h)


class CodeSequence(Distribution):
    """The VQ-VAE's prior over z: codes drawn from the autoregressive :class:`CodePrior`, one at a time,
    mapped to their codebook vectors; ``sample((n,))`` -> ``(n, latent_dim)``. No density over z (the
    prior is discrete on the codebook's points)."""

    arg_constraints: dict = {}  # noqa: RUF012
    support = constraints.real_vector

    def __init__(self, model: VQVAE):
        self.model = model
        super().__init__(event_shape=torch.Size((model.latent_dim,)), validate_args=False)

    @torch.no_grad()
    def sample(self, sample_shape=()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        n = int(sample_shape.numel())
        m = self.model
        codes = torch.zeros(n, m.num_groups, dtype=torch.long, device=m.codebook.device)
        for g in range(m.num_groups):
            logits = m.code_prior(codes)[:, :, g]
            codes[:, g] = torch.multinomial(F.softmax(logits, -1), 1).squeeze(-1)
        return m.codebook[codes].reshape(*sample_shape, m.latent_dim)


class VQVAE(AE):
    """VQ-VAE: the encoder output z_e ``(batch, latent_dim)`` is cut into G = latent_dim / embedding_dim
    vectors, each replaced by its nearest of K codebook vectors (z_q, straight-through gradient,
    eq. 3); the loss is −log p(x|z_q) + β‖z_e − sg(z_q)‖² (:class:`vaekit.objectives.vq.VQLoss`);
    the codebook follows exponential moving averages of the assigned encoder outputs (appendix A.1,
    decay γ, Laplace-smoothed counts), not gradients. The prior over the G codes is the
    autoregressive :class:`CodePrior`, trained in the same loss on the detached code indices
    (cross-entropy: its gradient reaches only its own parameters; the paper fits it after the
    VQ-VAE). ``prior()`` samples it; it has no density over z, so ``tractable_likelihood=False``.

    Args: as :class:`AE`, plus
        num_codes: K. embedding_dim: D_e, dividing latent_dim (None: latent_dim, one code per example).
        commitment: β (0.25 in the paper). decay: γ of the EMA (0.99).

    Raises:
        ValueError: K < 2, D_e not dividing latent_dim, β < 0 or γ outside (0, 1).
    """

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        num_codes: int = 64,
        embedding_dim: int | None = None,
        commitment: float = 0.25,
        decay: float = 0.99,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        embedding_dim = self.latent_dim if embedding_dim is None else embedding_dim
        if isinstance(num_codes, bool) or not isinstance(num_codes, int) or num_codes < 2:
            raise ValueError(f"num_codes must be an integer >= 2, got {num_codes!r}")
        if (
            isinstance(embedding_dim, bool)
            or not isinstance(embedding_dim, int)
            or embedding_dim < 1
            or self.latent_dim % embedding_dim
        ):
            raise ValueError(
                f"embedding_dim must be an integer dividing latent_dim={self.latent_dim}, got {embedding_dim!r}"
            )
        if not float(commitment) >= 0 or not 0 < float(decay) < 1:
            raise ValueError(f"commitment must be >= 0 and decay in (0, 1), got {commitment!r} and {decay!r}")
        self.num_codes, self.embedding_dim = num_codes, embedding_dim
        self.commitment, self.decay = float(commitment), float(decay)
        self.num_groups = self.latent_dim // embedding_dim
        self.register_buffer("codebook", torch.randn(num_codes, embedding_dim))
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", self.codebook.clone())
        self.code_prior = CodePrior(num_codes)

    def extra_config(self) -> dict:
        """K, D_e, β and γ."""
        return {
            "num_codes": self.num_codes,
            "embedding_dim": self.embedding_dim,
            "commitment": self.commitment,
            "decay": self.decay,
        }

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes ``(batch, G)`` long, z_q ``(batch, latent_dim)``): the nearest codebook vector of each group."""
        flat = z_e.reshape(-1, self.embedding_dim)
        d2 = flat.square().sum(-1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.square().sum(-1)
        codes = d2.argmin(-1)
        return codes.reshape(*z_e.shape[:-1], self.num_groups), self.codebook[codes].reshape(z_e.shape)

    def encode(self, x: torch.Tensor) -> Distribution:
        """A point mass at z_q with the straight-through gradient z_e + sg(z_q − z_e) (eq. 3)."""
        z_e = self._encoder_output(x)
        _, z_q = self.quantize(z_e)
        return Deterministic(z_e + (z_q - z_e).detach())

    @torch.no_grad()
    def update_codebook(self, z_e: torch.Tensor, codes: torch.Tensor) -> None:
        """The EMA update of appendix A.1: N_k ← γN_k + (1−γ)n_k, m_k ← γm_k + (1−γ)Σ z_e, e_k = m_k / Ñ_k
        (Ñ: Laplace-smoothed counts)."""
        flat, idx = z_e.reshape(-1, self.embedding_dim), codes.reshape(-1)
        onehot = F.one_hot(idx, self.num_codes).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    def code_nll(self, codes: torch.Tensor) -> torch.Tensor:
        """−log p(k_1..k_G) under the code prior, ``(batch,)`` nats per example for codes ``(batch, G)``
        (the cross-entropy its gradient trains it with; pass detached codes)."""
        return F.cross_entropy(self.code_prior(codes), codes, reduction="none").sum(-1)

    def prior(self) -> Distribution:
        """The autoregressive code prior mapped to codebook vectors (:class:`CodeSequence`)."""
        return CodeSequence(self)
