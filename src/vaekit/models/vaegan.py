"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric", ICML, sec. 2, eq. 5-9 and Algorithm 1): a VAE whose reconstruction likelihood is
a Gaussian on the features of a GAN discriminator's l-th layer, trained together with that GAN."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions import Likelihood, diagonal_normal
from .discriminator import call_detached, check_hidden, mlp_discriminator
from .vae import VAE


class FeatureLikelihood(Distribution):
    """p(Dis_l(x) | z) = N(Dis_l(x) | Dis_l(x̃), I), x̃ = g(z) the decoder's mean image (Larsen et al.
    2016, eq. 5): ``log_prob(x)`` ``(*lead,)`` = −½‖Dis_l(x) − Dis_l(x̃)‖² − (k/2)·log 2π in nats, summed
    over the k features of the discriminator's l-th layer. **A density over the features, not over the
    pixels**: it has no ``sample``; ``mean`` is the decoder's image x̃ ``(*lead, *data_shape)``."""

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, mean: torch.Tensor, model: VAEGAN):
        self._mean, self._model = mean, model
        event = tuple(model.data_shape or ())  # set: VAEGAN refuses to build without data_shape
        lead = mean.shape[: mean.dim() - len(event)]
        super().__init__(batch_shape=lead, event_shape=mean.shape[len(lead) :], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        """The decoded image whose discriminator features the likelihood compares with, ``(*batch, *data_shape)``."""
        return self._mean

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lead = torch.broadcast_shapes(self.batch_shape, x.shape[: x.dim() - len(self.event_shape)])
        mean = self._mean.expand(*lead, *self.event_shape)
        f_x = self._model.features(x.expand(*lead, *self.event_shape).reshape(-1, *self.event_shape))
        f_mean = self._model.features(mean.reshape(-1, *self.event_shape))
        return feature_log_prob(f_x, f_mean, self._model.feature_scale).reshape(lead)


def feature_log_prob(f_x: torch.Tensor, f_mean: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """log N(f_x | f_mean, scale² I) ``(batch,)`` in nats for features ``(batch, k)`` (Larsen et al. 2016,
    eq. 5-6, where scale = 1)."""
    return diagonal_normal(f_mean, torch.full_like(f_mean, scale)).log_prob(f_x)


class VAEGAN(VAE):
    """VAE-GAN (Larsen et al. 2016): encoder q(z|x), decoder/generator x̃ = g(z) and a discriminator
    Dis (an MLP on the flattened image, :func:`vaekit.models.discriminator.mlp_discriminator`, inside
    the model) whose ``feature_layer``-th hidden layer Dis_l gives the reconstruction likelihood
    p(Dis_l(x) | z) = N(Dis_l(x) | Dis_l(g(z)), I) (eq. 5). The loss is L_prior + L_llike^Dis_l + L_GAN
    (eq. 9), each network trained on its share (sec. 2.2, Algorithm 1):

    - encoder: L_prior + L_llike^Dis_l (no GAN gradient);
    - decoder: γ·L_llike^Dis_l + the generator's GAN loss on reconstructions g(z) and prior samples
      g(z_p) (the non-saturating −log Dis(·) of Goodfellow et al. 2014, sec. 3, for the paper's
      log(1 − Dis(·))); γ weighs reconstruction against fooling Dis;
    - discriminator: the cross-entropy of L_GAN, x against g(z) and g(z_p) (no L_llike, no prior gradient).

    One training loop, one optimizer (:class:`vaekit.objectives.vaegan_terms.VAEGANLoss`): the encoder's and
    decoder's terms call Dis with *detached* parameters (``torch.func.functional_call``,
    :func:`~vaekit.models.discriminator.call_detached`), Dis's cross-entropy sees *detached* images, the
    GAN images are decoded from *detached* codes, and the code entering L_llike's decoder carries its
    gradient scaled by 1/γ so that the encoder gets L_llike at weight 1 and the decoder at weight γ.
    The paper updates the three networks with separate RMSProp steps; here one optimizer steps all
    three on the summed loss (each parameter sees only its own terms, so the update is the same as
    three optimizers of the run's kind stepping at once).

    **Its "log-likelihood"** is the feature likelihood: :meth:`decode` returns a
    :class:`FeatureLikelihood`, so its ELBO is log N(Dis_l(x) | Dis_l(g(z)), I) − KL(q(z|x) ‖ p(z)),
    a bound on log p(Dis_l(x)) under this run's own learned (and moving) feature map Dis_l, in nats
    over the k features, not a pixel log p(x). It is not comparable with another model's, nor across
    runs, checkpoints or ``feature_layer`` values, so the registry marks it
    ``tractable_likelihood=False``: no IS log p(x) is reported for it. The decoder's pixel head is
    used only for its mean g(z) (samples and reconstructions are means, as for every model); its
    learned scale would get no gradient, so a learned scale is refused.

    Args: as :class:`~vaekit.models.VAE`, plus
        gamma: γ > 0, the decoder's weight on L_llike^Dis_l against the GAN term (Algorithm 1).
        disc_hidden: Dis's hidden widths (the paper: a conv net with a 512-unit dense layer; an MLP here).
        feature_layer: l, the hidden layer of Dis (1-based, <= len(disc_hidden)) whose leaky-ReLU
            output is Dis_l (the paper: the 4th of Dis's layers on CelebA).
        feature_scale: σ > 0 of N(Dis_l(x) | Dis_l(g(z)), σ² I); the paper's σ = 1 by default (eq. 5).
            A smaller σ weighs L_llike up against the KL for both encoder and decoder.

    What it does here (docs/models.md, the commands there): with an MLP Dis of 256 features on the
    8×8 digits the paper's σ = 1 loses to the KL (0 active units after 5 epochs) and σ = 0.1 keeps
    the code active but the generator collapses to one image; the paper's conv Dis with batch norm
    on 64×64 faces was not reproduced.

    Raises:
        ValueError: γ not > 0, bad widths, ``feature_layer`` outside 1..len(disc_hidden), or a model
            built without ``data_shape``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        data_shape=None,
        noise_std: float = 0.0,
        config=None,
        gamma: float = 1.0,
        disc_hidden=(256, 256),
        feature_layer: int = 2,
        feature_scale: float = 1.0,
    ):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape, noise_std, config)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (0 < gamma < math.inf):
            raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
        self.gamma, self.disc_hidden = float(gamma), check_hidden(disc_hidden)
        if (
            isinstance(feature_layer, bool)
            or not isinstance(feature_layer, int)
            or not 1 <= feature_layer <= len(self.disc_hidden)
        ):
            raise ValueError(
                f"feature_layer must be an integer in 1..{len(self.disc_hidden)} (a hidden layer of disc_hidden "
                f"{list(self.disc_hidden)}), got {feature_layer!r}"
            )
        if self.data_shape is None:
            raise ValueError("VAEGAN needs data_shape: its discriminator takes the flattened image")
        if (
            isinstance(feature_scale, bool)
            or not isinstance(feature_scale, (int, float))
            or not 0 < feature_scale < math.inf
        ):
            raise ValueError(f"feature_scale must be a finite number > 0, got {feature_scale!r}")
        self.feature_layer, self.feature_scale = feature_layer, float(feature_scale)
        self.discriminator = mlp_discriminator(math.prod(self.data_shape), self.disc_hidden)

    @classmethod
    def refuses(cls, data_shape, likelihood_scale) -> str | None:
        """A learned head scale: the pixel head gives only the decoder's mean, its scale would never train."""
        if likelihood_scale == "learned":
            return "VAE-GAN's reconstruction term is the discriminator-feature likelihood; no pixel scale to learn"
        return None

    def extra_config(self) -> dict:
        """γ, Dis's widths and the feature layer l."""
        return {
            "gamma": self.gamma,
            "disc_hidden": list(self.disc_hidden),
            "feature_layer": self.feature_layer,
            "feature_scale": self.feature_scale,
        }

    def decode(self, z: torch.Tensor) -> FeatureLikelihood:
        """p(Dis_l(x) | z) for z ``(*sample, batch, latent_dim)`` (:class:`FeatureLikelihood`); its
        ``mean`` is the image g(z) ``(*sample, batch, *data_shape)``, ``log_prob(x)`` ``(*sample, batch)``."""
        return FeatureLikelihood(self.generate(z), self)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's image g(z) ``(*lead, *data_shape)``: the mean of the pixel head."""
        return super().decode(z).mean

    def feature_log_prob(self, f_x: torch.Tensor, f_mean: torch.Tensor) -> torch.Tensor:
        """log N(f_x | f_mean, feature_scale² I) ``(batch,)`` in nats (:func:`feature_log_prob`)."""
        return feature_log_prob(f_x, f_mean, self.feature_scale)

    def _parts(self) -> tuple[nn.Module, nn.Module]:
        """Dis split at layer l: (x -> Dis_l(x), Dis_l(x) -> logit)."""
        cut = 2 * self.feature_layer  # each hidden layer is Linear + LeakyReLU
        return self.discriminator[:cut], self.discriminator[cut:]

    def features(self, x: torch.Tensor, detach_discriminator: bool = False) -> torch.Tensor:
        """Dis_l(x) ``(batch, k)`` for images ``(batch, *data_shape)``; with ``detach_discriminator`` the
        gradient reaches x only, not Dis's parameters."""
        head, _ = self._parts()
        flat = x.reshape(len(x), -1)
        return call_detached(head, flat) if detach_discriminator else head(flat)

    def critic(self, x: torch.Tensor, detach_discriminator: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(Dis_l(x) ``(batch, k)``, Dis's logit that x is data ``(batch,)``) in one pass; with
        ``detach_discriminator`` the gradient reaches x only."""
        _, tail = self._parts()
        f = self.features(x, detach_discriminator)
        logit = call_detached(tail, f) if detach_discriminator else tail(f)
        return f, logit.squeeze(-1)
