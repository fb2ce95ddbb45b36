"""The conditional VAE and the view of it with its condition fixed."""

from __future__ import annotations

import numbers

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions import Likelihood
from .ae import AE, check_input
from .vae import VAE


class CVAE(VAE):
    """Conditional VAE (Sohn, Lee & Yan 2015, sec. 3): q(z|x, c), p(x|z, c), prior p(z) = N(0, I).

    The condition c is a class label, fed to both nets as a one-hot vector (concatenated to the
    flattened input / the dense layer of the encoder, and to z in the decoder). Every method that
    touches x or z takes ``c``: class indices ``(batch,)`` (LongTensor), one int for the whole
    batch, or rows of class weights ``(batch, num_classes)`` (float; one-hot, or a mixture such
    as an interpolation between two classes).

    Args: as :class:`VAE`, plus ``num_classes``; the nets must take ``(input, c)`` with c
    ``(batch, num_classes)`` (``build_nets(..., cond_dim=num_classes)``).
    """

    conditional = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        num_classes: int = 10,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"a CVAE needs num_classes >= 2, got {num_classes!r}")
        self.num_classes = num_classes

    def extra_config(self) -> dict:
        """``{"num_classes": K}``: rebuilds the one-hot width on load."""
        return {"num_classes": self.num_classes}

    @classmethod
    def net_options(cls, num_classes: int = 10, **_extra) -> dict:
        """The nets take a one-hot condition of ``num_classes`` entries."""
        return {"cond_dim": num_classes}

    def one_hot(self, c, batch: int) -> torch.Tensor:
        """The condition as float rows ``(batch, num_classes)`` on the model's device.

        Raises:
            TypeError: c is not an int or a tensor.
            ValueError: class indices outside [0, num_classes), or a shape that does not fit ``batch``.
        """
        p = next(self.parameters())
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            c = torch.full((batch,), int(c), dtype=torch.long)
        if not torch.is_tensor(c):
            raise TypeError(f"the condition c must be an int or a tensor of class indices, got {type(c).__name__}")
        if c.is_floating_point():
            if c.shape != (batch, self.num_classes):
                raise ValueError(f"class weights c must be (batch={batch}, {self.num_classes}), got {tuple(c.shape)}")
            return c.to(p.device, p.dtype)
        c = c.reshape(-1).expand(batch) if c.numel() == 1 else c
        if c.shape != (batch,):
            raise ValueError(f"class indices c must be (batch={batch},), got {tuple(c.shape)}")
        if len(c) and (c.min() < 0 or c.max() >= self.num_classes):
            raise ValueError(
                f"class indices must lie in [0, {self.num_classes}), got {c.min().item()}..{c.max().item()}"
            )
        return nn.functional.one_hot(c.long(), self.num_classes).to(p.device, p.dtype)

    def encode(self, x: torch.Tensor, c) -> Distribution:
        """q(z|x, c): Independent(Normal(loc, scale), 1), event ``(latent_dim,)``; x ``(batch, *data_shape)``."""
        check_input(x, self.data_shape)
        return self._posterior(self.encoder(x, self.one_hot(c, len(x))))

    def decode(self, z: torch.Tensor, c) -> Distribution:
        """p(x|z, c) for z ``(*sample, batch, latent_dim)`` (c per ``batch``); ``log_prob`` is ``(*sample, batch)``."""
        lead = z.shape[:-1]
        onehot = self.one_hot(c, lead[-1] if lead else 1).expand(*lead, self.num_classes)
        params = self.decoder(z.reshape(-1, z.shape[-1]), onehot.reshape(-1, self.num_classes))
        return self.likelihood(params.reshape(*lead, *params.shape[1:]))

    def condition(self, c) -> Conditioned:
        """This model with c fixed: an object with the unconditional API (encode(x), decode(z),
        transform, reconstruct, sample, prior, ...), so that every objective and evaluation
        written for p(x) works on p(x|c) unchanged."""
        return Conditioned(self, c)

    def transform(self, x: torch.Tensor, c) -> torch.Tensor:
        """Encoder mean E_q[z|x, c], ``(batch, latent_dim)``."""
        return self.condition(c).transform(x)

    def reconstruct(self, x: torch.Tensor, c) -> torch.Tensor:
        """g(μ(x, c), c), ``(batch, *data_shape)``."""
        return self.condition(c).reconstruct(x)

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None, labels=None
    ) -> torch.Tensor:
        """Decoder means of ``n`` draws z ~ p(z) (scale times ``temperature``) given ``labels``: one int, ``(n,)``
        class indices, or None for the classes 0, 1, ..., K−1, 0, 1, ... in turn. ``(n, *data_shape)``."""
        labels = torch.arange(n) % self.num_classes if labels is None else labels
        return self.condition(labels).sample(n, temperature, generator)


class Conditioned:
    """A conditional model with its condition c fixed (see :meth:`CVAE.condition`).

    ``encode(x)`` and ``decode(z)`` pass c on; every other attribute is the model's. The AE
    methods built on encode/decode (transform, reconstruct, sample) are reused as they are.
    Gradients flow into the model's parameters.
    """

    def __init__(self, model: CVAE, c):
        self.model, self.c = model, c

    def __getattr__(self, name):
        if name == "model":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x, c) with the fixed c; x ``(batch, *data_shape)``."""
        return self.model.encode(x, self.c)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z, c) with the fixed c; z ``(*sample, batch, latent_dim)``."""
        return self.model.decode(z, self.c)

    transform = AE.transform
    reconstruct = AE.reconstruct
    sample = AE.sample


def condition(model, c=None):
    """``model`` with condition ``c`` fixed when it is conditional (a :class:`Conditioned` view), else ``model``.

    Raises:
        ValueError: a conditional model without c.
    """
    if not model.conditional:
        return model
    if c is None:
        raise ValueError(f"model {type(model).__name__} is conditional: pass the class labels c")
    return model.condition(c)
