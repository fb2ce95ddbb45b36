"""Example user networks for vaekit's custom-network configs (docs/custom-networks.md).

vaekit calls ``Encoder(data_shape=..., latent_dim=..., **kwargs)`` (plus ``stochastic=False`` for an
AE and ``cond_dim=K`` for a CVAE) and ``Decoder(data_shape=..., latent_dim=..., **kwargs)`` (plus
``cond_dim``), where ``kwargs`` come from the config's JSON.
"""

import math

import torch
from torch import nn


class Block(nn.Module):
    """Pre-norm residual MLP block: h + W2 silu(W1 layernorm(h))."""

    def __init__(self, width: int):
        super().__init__()
        self.norm, self.inner, self.outer = nn.LayerNorm(width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, h):
        return h + self.outer(nn.functional.silu(self.inner(self.norm(h))))


class Encoder(nn.Module):
    """x (batch, *data_shape) [and c (batch, cond_dim)] -> (loc, scale), each (batch, latent_dim); loc alone for an AE."""

    def __init__(self, data_shape, latent_dim, width=128, depth=2, stochastic=True, cond_dim=0):
        super().__init__()
        self.stochastic = stochastic
        self.inp = nn.Linear(math.prod(data_shape) + cond_dim, width)
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = nn.Linear(width, latent_dim * (2 if stochastic else 1))

    def forward(self, x, c=None):
        h = x.flatten(1) if c is None else torch.cat([x.flatten(1), c], -1)
        out = self.head(self.blocks(self.inp(h)))
        if not self.stochastic:
            return out
        loc, raw = out.chunk(2, -1)
        return loc, nn.functional.softplus(raw) + 1e-4


class Decoder(nn.Module):
    """z (batch, latent_dim) [and c] -> the likelihood's parameters (batch, *data_shape) (Bernoulli logits here)."""

    def __init__(self, data_shape, latent_dim, width=128, depth=2, cond_dim=0):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.inp = nn.Linear(latent_dim + cond_dim, width)
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.out = nn.Linear(width, math.prod(data_shape))

    def forward(self, z, c=None):
        h = z if c is None else torch.cat([z, c], -1)
        return self.out(self.blocks(self.inp(h))).view(-1, *self.data_shape)
