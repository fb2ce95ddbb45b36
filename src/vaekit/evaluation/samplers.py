"""Samplers for generation from any trained model: a distribution over the latent space, fitted
(where it needs fitting) on the model's codes of its training data, whose draws the decoder maps
to data. ``fit_sampler(name, model, x).sample(n)`` draws codes ``(n, latent_dim)``;
:func:`generate` decodes them. ``vaekit sample RUN --sampler NAME`` is the command line.

Samplers (:data:`SAMPLERS`):

* ``prior``: the model's own prior ``model.prior()`` (N(0, I), the VampPrior's mixture of
  posteriors, a learned mixture, ...).
* ``normal``: N(0, I), whatever the model's prior.
* ``gmm``: a Gaussian mixture (scikit-learn ``GaussianMixture``, full covariances, 10 components)
  fitted on the training codes: the ex-post density estimation of Ghosh et al. 2020 (RAE, sec. 3).
* ``two-stage``: a second VAE trained on the training codes, sampled through its own N(0, I) prior
  (Dai & Wipf 2019, "Diagnosing and Enhancing VAE Models", ICLR, sec. 4): the same latent size as
  the codes, a Gaussian decoder with a learned scale γ (their sec. 4 / Theorem 5).
* ``maf``: a masked autoregressive flow (Papamakarios et al. 2017; zuko's ``MAF``) fitted by
  maximum likelihood on the standardised training codes.

The codes are the encoder means E_q[z|x] (``model.transform``). Fitted samplers live in memory
only (they are refitted on each ``vaekit sample`` call from the run's training split).
"""

from __future__ import annotations

import torch

from ..distributions import sample_prior

#: Training settings of the fitted samplers that train a network (two-stage, maf).
EPOCHS, BATCH_SIZE = 60, 128


@torch.no_grad()
def training_codes(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The encoder means of ``x`` ``(N, *data_shape)`` in batches, in eval mode: ``(N, latent_dim)`` on the CPU."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    codes = torch.cat([model.transform(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was)
    return codes.float()


def _train(parameters, loss, y: torch.Tensor, epochs: int, lr: float, seed: int) -> None:
    """Adam on ``loss(batch)`` over shuffled batches of ``y`` for ``epochs`` (global RNG forked, seeded)."""
    parameters = list(parameters)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(y)).split(BATCH_SIZE):
                optimizer.zero_grad()
                loss(y[idx]).backward()
                torch.nn.utils.clip_grad_norm_(parameters, 5.0)
                optimizer.step()


class LatentSampler:
    """A distribution over z: :meth:`fit` it on a model and data, :meth:`sample` codes."""

    name = ""
    needs_data = True

    def fit(self, model, x: torch.Tensor | None = None) -> LatentSampler:
        """Fit the sampler for ``model``: on its codes of the training inputs ``x`` ``(N, *data_shape)``
        (encoder means, :func:`training_codes`) when the sampler is fitted on data, else keep the
        model (its prior). Returns ``self``.

        Raises:
            ValueError: a data-fitted sampler without ``x`` (or with fewer than 2 examples).
        """
        self.latent_dim = model.latent_dim
        if self.needs_data:
            if x is None or not torch.is_tensor(x) or len(x) < 2:
                raise ValueError(
                    f"the {self.name!r} sampler is fitted on the training data: pass x (N >= 2, *data_shape)"
                )
            self._fit(training_codes(model, x))
        else:
            self.model = model
        return self

    def _fit(self, codes: torch.Tensor) -> None:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes ``(n, latent_dim)``, drawn from ``generator`` (default: the global RNG)."""
        raise NotImplementedError


class PriorSampler(LatentSampler):
    """The model's own prior ``model.prior()`` (its VampPrior, mixture, ... or N(0, I)); ``temperature``
    multiplies its scale (:func:`~vaekit.distributions.sample_prior`)."""

    name, needs_data = "prior", False

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    @torch.no_grad()
    def sample(self, n, generator=None):
        """``n`` codes ``(n, latent_dim)`` from the model's prior, its scale × ``temperature``."""
        return sample_prior(self.model.prior(), n, self.temperature, generator)


class NormalSampler(LatentSampler):
    """N(0, temperature² I), whatever the model's prior."""

    name, needs_data = "normal", False

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    def sample(self, n, generator=None):
        """``n`` codes ``(n, latent_dim)`` from N(0, temperature² I), on the model's device."""
        device = next(self.model.parameters()).device
        return self.temperature * torch.randn(n, self.latent_dim, generator=generator).to(device)


class GaussianMixtureSampler(LatentSampler):
    """scikit-learn's ``GaussianMixture`` on the training codes (Ghosh et al. 2020, sec. 3: 10 components,
    full covariances); drawn in torch (component by weight, then mean + L ε, L the Cholesky factor)."""

    name = "gmm"

    def __init__(self, num_components: int = 10, covariance_type: str = "full", random_state: int = 0):
        if isinstance(num_components, bool) or not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be an integer >= 1, got {num_components!r}")
        self.num_components, self.covariance_type, self.random_state = num_components, covariance_type, random_state

    def _fit(self, codes):
        from sklearn.mixture import GaussianMixture

        if len(codes) < self.num_components:
            raise ValueError(f"{len(codes)} codes cannot fit {self.num_components} mixture components")
        gmm = GaussianMixture(
            self.num_components, covariance_type="full", random_state=self.random_state, reg_covar=1e-5
        ).fit(codes.double().numpy())
        self.gmm = gmm
        self.weights = torch.as_tensor(gmm.weights_)
        self.means = torch.as_tensor(gmm.means_)
        self.scale_tril = torch.linalg.cholesky(torch.as_tensor(gmm.covariances_))

    def sample(self, n, generator=None):
        """``n`` codes ``(n, latent_dim)`` float32: a component k by weight, then μ_k + L_k ε (float64 inside)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, dtype=torch.float64)
        return (self.means[k] + (self.scale_tril[k] @ eps).squeeze(-1)).float()

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """log density of the fitted mixture at ``z`` ``(n, latent_dim)``, nats: ``(n,)``."""
        return torch.as_tensor(self.gmm.score_samples(z.double().numpy()))


class TwoStageSampler(LatentSampler):
    """A second VAE on the codes (Dai & Wipf 2019, sec. 4): an MLP VAE with ``latent_dim`` equal to
    the codes', a Gaussian decoder of learned scale γ, trained on the ELBO with Adam for ``epochs``;
    z = decoder mean of u ~ N(0, I). The codes are standardised per dimension first (undone on
    sampling). The decoder mean loses the variance of γ, which shrinks with training (Dai & Wipf,
    Theorem 5): short fits under-disperse (on a 2-D mixture the sample std is 0.73× the codes'
    after 30 epochs, 0.89× after 100, ``tests/test_samplers.py``)."""

    name = "two-stage"

    def __init__(self, hidden: tuple = (256, 256), epochs: int = 2 * EPOCHS, lr: float = 1e-3, seed: int = 0):
        self.hidden, self.epochs, self.lr, self.seed = tuple(hidden), int(epochs), float(lr), int(seed)

    def _fit(self, codes):
        from ..config import Config
        from ..models import build_model
        from ..objectives import ELBO

        self.loc, self.scale = codes.mean(0), codes.std(0).clamp_min(1e-6)
        y = (codes - self.loc) / self.scale
        config = Config.from_flat(
            model="vae",
            net="mlp",
            likelihood="gaussian",
            likelihood_scale="learned",
            latent_dim=codes.shape[1],
            hidden=self.hidden,
            decoder_activation="identity",
        )
        self.second = build_model(config.model, (codes.shape[1],), unit_interval=False, seed=self.seed)
        objective = ELBO()
        _train(
            self.second.parameters(),
            lambda batch: objective(self.second, batch).loss,
            y,
            self.epochs,
            self.lr,
            self.seed,
        )
        self.second.eval()

    @torch.no_grad()
    def sample(self, n, generator=None):
        """``n`` codes ``(n, latent_dim)``: u ~ N(0, I) decoded by the second VAE (its decoder mean), unstandardised."""
        u = torch.randn(n, self.latent_dim, generator=generator)
        return self.second.decode(u).mean * self.scale + self.loc


class MAFSampler(LatentSampler):
    """zuko's masked autoregressive flow (Papamakarios et al. 2017) fitted by maximum likelihood (Adam,
    ``epochs`` over the codes, batches of 128) on the standardised codes."""

    name = "maf"

    def __init__(
        self, transforms: int = 3, hidden: tuple = (64, 64), epochs: int = EPOCHS, lr: float = 1e-3, seed: int = 0
    ):
        self.transforms, self.hidden, self.epochs, self.lr, self.seed = transforms, tuple(hidden), int(epochs), lr, seed

    def _fit(self, codes):
        import zuko

        self.loc, self.scale = codes.mean(0), codes.std(0).clamp_min(1e-6)
        y = (codes - self.loc) / self.scale
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.flow = zuko.flows.MAF(codes.shape[1], transforms=self.transforms, hidden_features=self.hidden)
        _train(
            self.flow.parameters(),
            lambda batch: -self.flow().log_prob(batch).mean(),
            y,
            self.epochs,
            self.lr,
            self.seed,
        )
        self.flow.eval()

    @torch.no_grad()
    def sample(self, n, generator=None):
        """``n`` codes ``(n, latent_dim)`` from the flow, unstandardised; zuko draws from the global RNG,
        seeded from ``generator`` when one is given (the global RNG's state is kept)."""
        if generator is None:
            return self.flow().sample((n,)) * self.scale + self.loc
        with torch.random.fork_rng(devices=[]):  # zuko draws from the global RNG: seed it from generator
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
            return self.flow().sample((n,)) * self.scale + self.loc

    @torch.no_grad()
    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """log density of the fitted flow at codes ``z`` ``(n, latent_dim)`` (standardisation included): ``(n,)`` nats."""
        return self.flow().log_prob((z - self.loc) / self.scale) - self.scale.log().sum()


#: sampler name -> class (``vaekit sample --sampler NAME``).
SAMPLERS: dict[str, type[LatentSampler]] = {
    "prior": PriorSampler,
    "normal": NormalSampler,
    "gmm": GaussianMixtureSampler,
    "two-stage": TwoStageSampler,
    "maf": MAFSampler,
}


def fit_sampler(name: str, model, x: torch.Tensor | None = None, **options) -> LatentSampler:
    """The sampler ``name`` of :data:`SAMPLERS` fitted on ``model``'s codes of ``x`` ``(N, *data_shape)``
    (``prior`` and ``normal`` need no data). ``options``: the sampler's keyword arguments.

    Raises:
        ValueError: an unknown sampler, a conditional model with a fitted sampler, missing data.
        TypeError: an option the sampler does not take.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    cls = SAMPLERS[name]
    if cls.needs_data and getattr(model, "conditional", False):
        raise ValueError(
            f"the {name!r} sampler fits the codes of an unconditional model; use --sampler prior for a CVAE"
        )
    return cls(**options).fit(model, x)


@torch.no_grad()
def generate(model, sampler: LatentSampler, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoder means of ``n`` codes drawn from ``sampler``: ``(n, *data_shape)``."""
    device = next(model.parameters()).device
    z = sampler.sample(n, generator).to(device=device, dtype=next(model.parameters()).dtype)
    return model.decode(z).mean
