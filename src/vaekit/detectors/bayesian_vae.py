"""The Bayesian VAE (Daxberger & Hernández-Lobato 2019, arXiv 1912.05651, sec. 3): one amortised
encoder and M samples θ_1..θ_M of the decoder weights from an approximate posterior p(θ|D).

Three posteriors (:data:`KINDS`):

* ``sghmc``: stochastic gradient HMC over the decoder weights (Chen et al. 2014; the sampler of
  Daxberger & Hernández-Lobato, sec. 3), starting from a trained VAE; the encoder keeps training
  with Adam on the ELBO alongside the chain and the final encoder is shared by all M samples.
* ``swag``: SWA-Gaussian over the decoder weights (Maddox et al. 2019): SGD at a constant learning
  rate from the trained VAE, moments collected along the way, M draws from the Gaussian.
* ``ensemble``: M independently trained VAEs (Lakshminarayanan et al. 2017; the generative
  ensembles of Choi et al. 2018, sec. 3), each with its own encoder; member 0 is the given model.

Storage: a folder with ``posterior.json`` (kind, settings, the model record of vaekit.io) and M
files ``sample-000.safetensors`` ... each holding the full weights of one member (encoder included,
so every file rebuilds a working VAE with :func:`vaekit.io.load_weights`). Reloading is exact:
the same x gives bit-identical log-likelihoods (tests/test_ood.py).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import torch

from .. import io
from ..config import Config
from ..data.preprocess import binarize
from ..evaluation.likelihood import log_likelihood
from ..models import build_model
from ..objectives import ELBO
from ..runtime.progress import track
from ..training import fit
from ..training.posterior import SGHMC, SWAG

KINDS = ("sghmc", "swag", "ensemble")
RECORD = "posterior.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PosteriorSettings:
    """How the M decoder samples are drawn.

    Attributes:
        kind: "sghmc", "swag" or "ensemble".
        num_posterior_samples: M >= 2.
        burn_in_epochs: epochs of SGHMC / constant-lr SGD before the first sample or collection.
        epochs: epochs over which the M SGHMC samples (evenly spaced) or the SWAG iterates are taken;
            ignored by "ensemble" (its members train for the model config's epochs).
        lr: per-example learning rate l; SGHMC uses η = l / N on U = −Σ_n ELBO_n − log p(θ), i.e.
            momentum SGD with step l on the mean negative ELBO plus the injected noise; SWAG runs
            SGD with momentum 0.9 and step l. 1e-3: the largest step of {1e-4, 3e-4, 1e-3, 3e-3}
            whose held-out Fashion-MNIST log-likelihood stays within 1 nat of the smallest step's
            (benchmarks/results/ood/posterior_lr.json).
        friction: SGHMC α (1 − α is the momentum).
        temperature: SGHMC noise temperature (1 = the posterior).
        prior_std: std of the Gaussian prior N(0, prior_std² I) on the decoder weights (SGHMC).
        max_rank: SWAG rank K = number of iterates collected (0: diagonal SWAG, 20 collections).
        seed: seed of the chain, the minibatches, the SWAG draws and the ensemble members.
    """

    kind: str = "sghmc"
    num_posterior_samples: int = 5
    burn_in_epochs: int = 2
    epochs: int = 5
    lr: float = 1e-3
    friction: float = 0.1
    temperature: float = 1.0
    prior_std: float = 1.0
    max_rank: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown posterior {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if not isinstance(self.num_posterior_samples, int) or self.num_posterior_samples < 2:
            raise ValueError(f"num_posterior_samples must be an integer >= 2, got {self.num_posterior_samples!r}")
        if self.burn_in_epochs < 0 or self.epochs < 1:
            raise ValueError(
                f"burn_in_epochs must be >= 0 and epochs >= 1, got {self.burn_in_epochs} and {self.epochs}"
            )
        if not (self.lr > 0 and self.prior_std > 0 and 0 < self.friction <= 1 and self.temperature >= 0):
            raise ValueError(
                f"need lr > 0, prior_std > 0, friction in (0, 1], temperature >= 0; got {self.lr}, "
                f"{self.prior_std}, {self.friction}, {self.temperature}"
            )
        if self.max_rank < 0:
            raise ValueError(f"max_rank must be >= 0, got {self.max_rank}")


class BayesianVAE:
    """M VAEs that share the architecture (and, for SGHMC/SWAG, the encoder): θ_1..θ_M.

    Args:
        models: the M members, each a VAE built from the same :class:`~vaekit.config.ModelConfig`
            for the same data shape (in eval mode).
        settings: the :class:`PosteriorSettings` that drew them.
        config: the run :class:`~vaekit.config.Config` they were trained under (saved with them).

    Raises:
        ValueError: fewer than two members, or members of different architectures.
    """

    def __init__(self, models: list, settings: PosteriorSettings, config: Config):
        if len(models) < 2:
            raise ValueError(f"a posterior needs at least 2 samples, got {len(models)}")
        if any(m.config != models[0].config or m.data_shape != models[0].data_shape for m in models):
            raise ValueError("posterior samples must share one model config (architecture, likelihood) and data shape")
        self.models = [m.eval() for m in models]
        self.settings = settings
        self.config = config

    @property
    def num_posterior_samples(self) -> int:
        """M."""
        return len(self.models)

    @torch.no_grad()
    def log_likelihoods(
        self, x: torch.Tensor, num_samples: int = 100, batch_size: int = 500, seed: int = 0
    ) -> torch.Tensor:
        """Importance-sampled log p(x | θ_m) of every member (:func:`vaekit.evaluation.log_likelihood`).

        Every member is evaluated with the same seed, so with a shared encoder the M estimates use
        the same z draws and differ only through the decoder weights (common random numbers).

        Args:
            x: ``(batch, *data_shape)`` as the model sees it (binarized for a Bernoulli likelihood).
            num_samples: K importance samples per example and member.

        Returns:
            ``(M, batch)`` nats per example.
        """
        out = []
        for model in self.models:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                out.append(log_likelihood(model, x, num_samples, batch_size=batch_size))
        return torch.stack(out)

    def save(self, folder) -> Path:
        """Write ``posterior.json`` and ``sample-XXX.safetensors`` (one per member) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for m, model in enumerate(self.models):
            io.save_weights(model, folder / f"sample-{m:03d}.safetensors")
        io.write_json(
            folder / RECORD,
            {
                "format_version": FORMAT_VERSION,
                "settings": dataclasses.asdict(self.settings),
                "num_posterior_samples": len(self.models),
                "model": io.model_record(self.models[0], self.config),
            },
        )
        return folder

    @classmethod
    def load(cls, folder) -> BayesianVAE:
        """Rebuild a posterior written by :meth:`save`; bit-identical weights.

        Raises:
            FileNotFoundError: no posterior.json or a missing sample file.
            ValueError: a corrupt record or weights that do not fit it.
        """
        folder = Path(folder)
        record = io.read_json(folder / RECORD)
        if not isinstance(record, dict) or not {"settings", "num_posterior_samples", "model"} <= set(record):
            raise ValueError(f"{folder / RECORD} is not a vaekit posterior record")
        settings = PosteriorSettings(**record["settings"])
        model_record = record["model"]
        config = Config.from_dict(model_record["config"])
        models = []
        for m in range(int(record["num_posterior_samples"])):
            model = build_model(
                io.model_config(model_record), tuple(model_record["data_shape"]), **model_record.get("extra", {})
            )
            io.load_weights(model, folder / f"sample-{m:03d}.safetensors")
            models.append(model.eval())
        return cls(models, settings, config)


def decoder_parameters(model) -> list[torch.nn.Parameter]:
    """The generative parameters θ: every parameter outside the encoder (decoder, learned likelihood scale)."""
    encoder = {id(p) for p in model.encoder.parameters()}
    return [p for p in model.parameters() if id(p) not in encoder]


def _epochs(x: torch.Tensor, generator: torch.Generator, config: Config, epochs: int):
    """Minibatches of ``epochs`` passes over ``x``, dynamically binarized when the config says so."""
    batch_size = config.train.batch_size
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            xb = x[order[start : start + batch_size]]
            yield binarize(xb) if config.binarize == "dynamic" else xb


def _step_loss(model, xb: torch.Tensor) -> torch.Tensor:
    return ELBO()(model, xb).loss


def _walk(
    model,
    decoder_optimizer,
    x: torch.Tensor,
    config: Config,
    settings: PosteriorSettings,
    name: str,
    total: int,
    progress: bool,
    adjust_gradient=None,
):
    """The loop SGHMC and SWAG share: ``burn_in_epochs + epochs`` seeded passes over ``x``; at each
    minibatch the negative ELBO's gradient (``adjust_gradient()`` may rewrite the decoder's, under
    no_grad) steps ``decoder_optimizer`` on the decoder and Adam (lr 1e-3) on the encoder. Yields
    each step's index after its update, inside the forked, seeded torch RNG.

    Raises:
        RuntimeError: a gradient became NaN/Inf.
    """
    adam = torch.optim.Adam(model.encoder.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        batches = _epochs(x, generator, config, settings.burn_in_epochs + settings.epochs)
        for step, xb in enumerate(track(batches, name, "step", total=total, enabled=progress)):
            decoder_optimizer.zero_grad(set_to_none=True)
            adam.zero_grad(set_to_none=True)
            _step_loss(model, xb).backward()
            _check_finite(model, step)
            if adjust_gradient is not None:
                with torch.no_grad():
                    adjust_gradient()
            decoder_optimizer.step()
            adam.step()
            yield step


def _schedule(n: int, config: Config, settings: PosteriorSettings, count: int) -> tuple[int, set[int]]:
    """``(total steps, the steps at which to keep an iterate)`` of a sampler over ``n`` examples:
    ``burn_in_epochs`` of burn-in, then ``count`` iterates at evenly spaced steps over ``epochs``."""
    steps_per_epoch = math.ceil(n / config.train.batch_size)
    burn = settings.burn_in_epochs * steps_per_epoch
    total = burn + settings.epochs * steps_per_epoch
    return total, {burn + round((k + 1) * (total - burn) / count) - 1 for k in range(count)}


def sample_sghmc(model, x: torch.Tensor, config: Config, settings: PosteriorSettings, progress: bool = False) -> list:
    """M decoder samples by SGHMC (Chen et al. 2014, eq. 15) from a trained VAE ``model``.

    The potential over the decoder weights θ is U(θ) = −Σ_n ELBO(x_n; φ, θ) − log N(θ; 0, σ_p² I),
    the ELBO standing in for log p(x_n|θ) as in Daxberger & Hernández-Lobato (sec. 3); its minibatch
    estimate is N times the mean over the batch. The encoder φ is updated by Adam (lr 1e-3) on the
    same loss at every step. After ``burn_in_epochs``, M samples are taken at evenly spaced steps of
    the next ``epochs`` epochs; every sample gets the final encoder.

    Args:
        model: a trained VAE (not modified: the chain runs on a copy).
        x: ``(N, *data_shape)`` training data as :func:`vaekit.fit` takes them (grey values are
            binarized per batch when the config's binarization is dynamic).
        config: the model's run :class:`~vaekit.config.Config` (batch size, binarization).

    Returns:
        M models (eval mode).
    """
    chain = copy.deepcopy(model).train()
    n = len(x)
    theta = decoder_parameters(chain)
    sampler = SGHMC(theta, lr=settings.lr / n, friction=settings.friction, temperature=settings.temperature)
    total, take = _schedule(n, config, settings, settings.num_posterior_samples)

    def potential_gradient():  # minibatch mean -> N × mean, plus the Gaussian prior's gradient
        for p in theta:
            p.grad.mul_(n).add_(p, alpha=1.0 / settings.prior_std**2)

    decoders = [
        [p.detach().clone() for p in theta]
        for step in _walk(chain, sampler, x, config, settings, "sghmc", total, progress, potential_gradient)
        if step in take
    ]
    return _members(chain, decoders)


def sample_swag(model, x: torch.Tensor, config: Config, settings: PosteriorSettings, progress: bool = False) -> list:
    """M decoder draws from SWAG (Maddox et al. 2019, sec. 3) around a trained VAE ``model``.

    SGD (momentum 0.9, constant step ``lr`` on the mean negative ELBO) runs over the decoder
    weights for ``burn_in_epochs``, then ``max_rank`` (20 for diagonal SWAG) iterates are
    collected at evenly spaced steps over ``epochs`` epochs; the encoder trains with Adam alongside.
    The M draws (seeded) share the final encoder.

    Returns:
        M models (eval mode).
    """
    walker = copy.deepcopy(model).train()
    theta = decoder_parameters(walker)
    sgd = torch.optim.SGD(theta, lr=settings.lr, momentum=0.9)
    total, when = _schedule(len(x), config, settings, settings.max_rank or 20)
    flat = torch.nn.utils.parameters_to_vector
    swag = SWAG(sum(p.numel() for p in theta), settings.max_rank)
    for step in _walk(walker, sgd, x, config, settings, "swag", total, progress):
        if step in when:
            swag.collect(flat([p.detach() for p in theta]))
    draws = torch.Generator().manual_seed(settings.seed + 1)
    decoders = []
    for _ in range(settings.num_posterior_samples):
        vector = swag.sample(draws).to(theta[0].dtype)
        shaped = [torch.empty_like(p) for p in theta]
        torch.nn.utils.vector_to_parameters(vector, shaped)
        decoders.append(shaped)
    return _members(walker, decoders)


def train_ensemble(model, x: torch.Tensor, config: Config, settings: PosteriorSettings, progress: bool = False) -> list:
    """M independently trained VAEs: ``model`` and M − 1 more built and trained by :func:`vaekit.fit`
    with the run ``config`` and seeds ``settings.seed * 1000 + m`` (m = 1..M−1).

    Returns:
        M models (eval mode); member 0 is ``model`` itself.
    """
    members = [model.eval()]
    for m in range(1, settings.num_posterior_samples):
        member_config = config.replace(seed=settings.seed * 1000 + m)
        member = build_model(
            member_config.model, model.data_shape, seed=member_config.train.seed, **model.extra_config()
        )
        fit(member, x, member_config)
        members.append(member.eval())
    return members


def _members(model, decoders: list[list[torch.Tensor]]) -> list:
    """Copies of ``model`` (its encoder) with each decoder weight list in turn."""
    out = []
    for weights in decoders:
        member = copy.deepcopy(model).eval()
        with torch.no_grad():
            for p, w in zip(decoder_parameters(member), weights):
                p.copy_(w)
        out.append(member)
    return out


def _check_finite(model, step: int) -> None:
    if not all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
        raise RuntimeError(
            f"the posterior sampler's gradient became NaN/Inf at step {step + 1}; lower the posterior lr"
        )


SAMPLERS = {"sghmc": sample_sghmc, "swag": sample_swag, "ensemble": train_ensemble}


def fit_posterior(
    model, x: torch.Tensor, config: Config, settings: PosteriorSettings | None = None, progress: bool = False, **options
) -> BayesianVAE:
    """The Bayesian VAE of a trained ``model`` on its training data ``x`` ``(N, *data_shape)``.

    Args:
        config: the run :class:`~vaekit.config.Config` the model was trained under.
        settings: a :class:`PosteriorSettings`, or None to build one from ``options``
            (e.g. ``kind="swag", num_posterior_samples=5``).

    Raises:
        ValueError: bad settings, or a deterministic AE (it has no likelihood).
    """
    settings = settings or PosteriorSettings(**options)
    if not model.stochastic or model.conditional:
        raise ValueError(f"a Bayesian VAE needs an unconditional VAE; got model {model.config.name!r}")
    return BayesianVAE(SAMPLERS[settings.kind](model, x, config, settings, progress), settings, config)
