"""Encoder and decoder bodies: MLP and convolutional, built from the data shape.

Encoders map ``x (batch, *data_shape)`` (and an optional condition ``c (batch, cond_dim)``) to
``(loc, scale)``, each ``(batch, latent_dim)`` with scale > 0 (stochastic) or to ``loc`` alone
(deterministic). Decoders map ``z (batch, latent_dim)`` (and ``c``) to the likelihood's parameter
tensor ``(batch, *data_shape)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}

#: Floor of the encoder scale, keeps log q(z|x) finite.
MIN_ENCODER_SCALE = 1e-4


class FeatureBatchNorm(nn.BatchNorm1d):
    """Batch normalisation (Ioffe & Szegedy 2015) of the last dimension of a ``(*, features)`` input:
    all leading (sample, batch) dimensions form the batch. Output: the input's shape. Evaluation
    (``eval()``) uses the running statistics, so a trained model is a fixed function of each input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, features)`` normalised over all leading dimensions: the same shape."""
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def mlp(sizes, activation: str = "relu", final_activation: bool = False, batch_norm: bool = False) -> nn.Sequential:
    """A stack of Linear layers of the given widths with ``activation`` between them; with
    ``batch_norm`` a :class:`FeatureBatchNorm` between each Linear layer and its activation."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            if batch_norm:
                layers.append(FeatureBatchNorm(b))
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """Linear map from features to ``(loc, scale)`` with scale = softplus(.) + floor, or to ``loc``."""

    def __init__(self, in_features: int, latent_dim: int, stochastic: bool = True):
        super().__init__()
        self.stochastic = stochastic
        self.linear = nn.Linear(in_features, latent_dim * (2 if stochastic else 1))

    def forward(self, h: torch.Tensor):
        """h ``(batch, in_features)`` -> ``(loc, scale)`` or ``loc``, each ``(batch, latent_dim)``."""
        out = self.linear(h)
        if not self.stochastic:
            return out
        loc, raw = out.chunk(2, dim=-1)
        return loc, F.softplus(raw) + MIN_ENCODER_SCALE


class MLPEncoder(nn.Module):
    """Flatten x, concatenate the condition if any, then an MLP and a Gaussian head (``batch_norm``:
    BN before each hidden activation, e.g. ``--encoder '{"target": "vaekit.nets:MLPEncoder", "kwargs":
    {"batch_norm": true}}' --trust-code``)."""

    def __init__(
        self,
        data_shape,
        latent_dim,
        hidden=(256, 256),
        activation="relu",
        stochastic=True,
        cond_dim=0,
        batch_norm=False,
    ):
        super().__init__()
        sizes = [math.prod(data_shape) + cond_dim, *hidden]
        self.body = mlp(sizes, activation, final_activation=True, batch_norm=batch_norm)
        self.head = GaussianHead(sizes[-1], latent_dim, stochastic)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None):
        """x ``(batch, *data_shape)``, c ``(batch, cond_dim)`` or None -> head output."""
        h = x.flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=-1)
        return self.head(self.body(h))


class MLPDecoder(nn.Module):
    """MLP from z (and the condition) to the parameter tensor ``(batch, *data_shape)`` (``batch_norm``
    as :class:`MLPEncoder`)."""

    def __init__(self, data_shape, latent_dim, hidden=(256, 256), activation="relu", cond_dim=0, batch_norm=False):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = mlp(
            [latent_dim + cond_dim, *reversed(hidden), math.prod(data_shape)], activation, batch_norm=batch_norm
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z ``(batch, latent_dim)`` -> ``(batch, *data_shape)``."""
        if c is not None:
            z = torch.cat([z, c], dim=-1)
        return self.net(z).view(-1, *self.data_shape)


def conv_plan(side: int, channels) -> list[int]:
    """Channels of the stride-2 layers that take an image of side ``side`` down to 4-7 pixels.

    28 -> 14 -> 7, 32 -> 16 -> 8 -> 4, 64 -> 32 -> 16 -> 8 -> 4, 8 -> 4.

    Raises:
        ValueError: when ``side`` cannot be halved to a side of 4 to 7 with the given channels.
    """
    n = 0
    while side > 7 and side % 2 == 0:
        side //= 2
        n += 1
    if n == 0 or side > 7:
        raise ValueError(f"the conv net needs an image side that halves to 4-7 pixels (8, 28, 32, 64, ...), got {side}")
    if n > len(channels):
        raise ValueError(f"the image needs {n} conv layers but only {len(channels)} channel widths were given")
    return list(channels[:n])


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions down to a 4-7 pixel map, then a dense layer and a Gaussian head."""

    def __init__(
        self,
        data_shape,
        latent_dim,
        channels=(32, 64, 64, 64),
        hidden=256,
        activation="relu",
        stochastic=True,
        cond_dim=0,
    ):
        super().__init__()
        c_in, side, _ = data_shape
        plan = conv_plan(side, channels)
        layers: list[nn.Module] = []
        for c_out in plan:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        flat = c_in * (side >> len(plan)) ** 2
        self.dense = nn.Sequential(nn.Linear(flat + cond_dim, hidden), ACTIVATIONS[activation]())
        self.head = GaussianHead(hidden, latent_dim, stochastic)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None):
        """x ``(batch, C, H, W)`` -> head output."""
        h = self.conv(x).flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=-1)
        return self.head(self.dense(h))


class ConvDecoder(nn.Module):
    """Dense layer to a 4-7 pixel map, then stride-2 transposed convolutions up to the image."""

    def __init__(self, data_shape, latent_dim, channels=(32, 64, 64, 64), hidden=256, activation="relu", cond_dim=0):
        super().__init__()
        c_out, side, _ = data_shape
        plan = conv_plan(side, channels)
        self.start = (plan[-1], side >> len(plan), side >> len(plan))
        self.dense = nn.Sequential(
            nn.Linear(latent_dim + cond_dim, hidden),
            ACTIVATIONS[activation](),
            nn.Linear(hidden, math.prod(self.start)),
            ACTIVATIONS[activation](),
        )
        layers: list[nn.Module] = []
        widths = list(reversed(plan))
        for i, c_in in enumerate(widths):
            last = i == len(widths) - 1
            nxt = c_out if last else widths[i + 1]
            layers.append(nn.ConvTranspose2d(c_in, nxt, 4, stride=2, padding=1))
            if not last:
                layers.append(ACTIVATIONS[activation]())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z ``(batch, latent_dim)`` -> ``(batch, C, H, W)``."""
        if c is not None:
            z = torch.cat([z, c], dim=-1)
        return self.deconv(self.dense(z).view(-1, *self.start))


def choose_net(net: str, data_shape) -> str:
    """Resolve ``net="auto"``: conv for images ``(C, H, W)`` of side >= 28, mlp otherwise.

    Raises:
        ValueError: ``net="conv"`` on data that are not square ``(C, H, W)`` images.
    """
    is_image = len(data_shape) == 3 and data_shape[1] == data_shape[2]
    if net == "auto":
        return "conv" if is_image and data_shape[1] >= 28 else "mlp"
    if net == "conv" and not is_image:
        raise ValueError(f"--net conv needs square images (C, H, W), got examples of shape {tuple(data_shape)}")
    return net


def build_nets(
    config, data_shape, stochastic: bool = True, cond_dim: int = 0, trust_code: bool | None = None
) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder a :class:`~vaekit.config.Config` describes for ``data_shape``.

    A config's ``encoder`` / ``decoder`` import path replaces the built-in body of that role
    (see :mod:`vaekit.custom_nets`); building one needs ``trust_code`` (None: the enclosing
    :func:`vaekit.custom_nets.trusting` block decides).

    Raises:
        vaekit.custom_nets.CodeNotTrusted: custom networks without trust. ImportError / TypeError /
        ValueError: a custom network that cannot be imported, built, or returns wrong shapes.
    """
    from . import custom_nets

    custom_nets.require_trust(config, trust_code)
    net = "mlp" if (config.encoder and config.decoder) else choose_net(config.net, data_shape)
    if config.encoder:
        enc = custom_nets.build_custom("encoder", config.encoder, data_shape, config.latent_dim, stochastic, cond_dim)
    elif net == "conv":
        enc = ConvEncoder(
            data_shape, config.latent_dim, config.channels, _width(config), config.activation, stochastic, cond_dim
        )
    else:
        enc = MLPEncoder(data_shape, config.latent_dim, config.hidden, config.activation, stochastic, cond_dim)
    if config.decoder:
        dec = custom_nets.build_custom("decoder", config.decoder, data_shape, config.latent_dim, stochastic, cond_dim)
    elif net == "conv":
        dec = ConvDecoder(data_shape, config.latent_dim, config.channels, _width(config), config.activation, cond_dim)
    else:
        dec = MLPDecoder(data_shape, config.latent_dim, config.hidden, config.activation, cond_dim)
    if config.encoder or config.decoder:
        custom_nets.check_nets(enc, dec, data_shape, config.latent_dim, stochastic, cond_dim)
    return enc, dec


def _width(config) -> int:
    """Width of the conv nets' dense layer: the first ``hidden`` entry."""
    return config.hidden[0] if config.hidden else 256
