"""pythae (Chadebec et al., NeurIPS 2022 Datasets & Benchmarks) around vaekit's networks, to train
pythae's implementation of a model with the very encoder and decoder bodies (and initial weights)
of a vaekit run, then measure pythae's trained networks with vaekit's estimators.

The adapter only wraps: pythae's model classes, losses and trainers are pythae's own (imported
lazily; ``pip install ".[bench]"``). :data:`PYTHAE` maps a zoo arm to pythae's class, its config
settings (matched to vaekit's defaults for that arm), the trainer pythae's ``TrainingPipeline``
picks for it, and the vaekit model that holds the trained networks for measuring:

* the encoder body returns vaekit's ``(loc, scale)`` (or ``loc`` for a deterministic code); pythae
  gets ``embedding = loc`` and ``log_covariance = 2 log scale`` (a hyperspherical posterior:
  ``log_concentration = softplus⁻¹(Σ scale)``, so that pythae's κ = softplus(·) + 1 equals
  vaekit's κ = 1 + Σ scale);
* the decoder body returns Bernoulli logits; pythae gets ``reconstruction = sigmoid(logits)`` and
  its "bce" reconstruction loss (the same log p(x|z)); pythae's HVAE reads its "bce" input as logits
  and gets the logits.

The adversarial models (AAE, VAE-GAN) give pythae vaekit's own discriminator (logits; pythae gets
``embedding = sigmoid(logits)`` and the l-th hidden block's output as ``embedding_layer_l``). The
AAE's code is pythae's deterministic posterior (a zero log-variance); the Poincaré VAE's loc is mapped
onto the ball by vaekit's exp_0^c, as vaekit's encoder does (pythae's wrapped normal takes a point on
the ball); the VQ-VAE's code is handed to pythae as a (batch, D_e, 1, G) map so that pythae quantizes
the same D_e-vectors.

Back in vaekit (:func:`from_pythae`) the networks are loaded into a copy of the vaekit model; the
VampPrior also takes pythae's pseudo-inputs, the AAE and VAE-GAN their discriminator, the VQ-VAE its
codebook (and a code prior fitted afterwards on pythae's codes: pythae's model has none). pythae's flows (IAF, planar) and leapfrog steps (HVAE)
are not mapped: those are measured as the VAE of their base Gaussian encoder q₀(z|x), whose
importance-sampled log p(x) estimates the same generative model p(z) p(x|z) with a plainer
proposal (a lower estimate at finite K, the same limit).
"""

from __future__ import annotations

import contextlib
import copy
import io as _io
import logging
import math
import tempfile
import time

import torch

#: arm -> (pythae model class, pythae config class, config settings, trainer, vaekit holder model).
#: trainer: "base", "coupled" (RAE-L2: weight decay on the decoder only; PIWAE: two optimizers),
#: "adversarial" (FactorVAE, AAE) or "coupled-adversarial" (VAE-GAN: encoder, decoder and discriminator
#: optimizers), as pythae's TrainingPipeline chooses. Settings read from the vaekit model: :func:`_settings_of`.
PYTHAE: dict[str, tuple[str, str, dict, str, str]] = {
    "ae": ("AE", "AEConfig", {}, "base", "ae"),
    "vae": ("VAE", "VAEConfig", {}, "base", "vae"),
    "beta-vae": ("BetaVAE", "BetaVAEConfig", {"beta": 4.0}, "base", "vae"),
    "betatc": ("BetaTCVAE", "BetaTCVAEConfig", {"alpha": 1.0, "beta": 6.0, "gamma": 1.0}, "base", "vae"),
    "iwae": ("IWAE", "IWAEConfig", {"number_samples": 5}, "base", "vae"),
    "miwae": ("MIWAE", "MIWAEConfig", {"number_gradient_estimates": 2, "number_samples": 4}, "base", "vae"),
    "piwae": ("PIWAE", "PIWAEConfig", {"number_gradient_estimates": 2, "number_samples": 4}, "coupled", "vae"),
    "ciwae": ("CIWAE", "CIWAEConfig", {"beta": 0.5, "number_samples": 8}, "base", "vae"),
    "vampprior": ("VAMP", "VAMPConfig", {"number_components": 50}, "base", "vampprior"),
    # vaekit's HVAE defaults (5 leapfrog steps of 0.05, β_0 = 0.5, both learned); pythae's are 3, 0.001, 0.3, fixed
    "hvae": (
        "HVAE",
        "HVAEConfig",
        {"n_lf": 5, "eps_lf": 0.05, "beta_zero": 0.5, "learn_eps_lf": True, "learn_beta_zero": True},
        "base",
        "vae",
    ),
    "iaf": ("VAE_IAF", "VAE_IAF_Config", {}, "base", "vae"),
    "planar-flow": ("VAE_LinNF", "VAE_LinNF_Config", {"flows": ["Planar", "Planar"]}, "base", "vae"),
    "radial-flow": ("VAE_LinNF", "VAE_LinNF_Config", {"flows": ["Radial", "Radial"]}, "base", "vae"),
    "hyperspherical": ("SVAE", "SVAEConfig", {}, "base", "hyperspherical"),
    "wae": ("WAE_MMD", "WAE_MMD_Config", {"kernel_choice": "imq", "reg_weight": 10.0}, "base", "wae"),
    "wae-rbf": ("WAE_MMD", "WAE_MMD_Config", {"kernel_choice": "rbf", "reg_weight": 10.0}, "base", "wae-rbf"),
    "infovae": (
        "INFOVAE_MMD",
        "INFOVAE_MMD_Config",
        {"kernel_choice": "imq", "alpha": 0.0, "lbd": 1000.0},
        "base",
        "infovae",
    ),
    "rae-l2": ("RAE_L2", "RAE_L2_Config", {"embedding_weight": 1.0, "reg_weight": 1e-3}, "coupled", "rae-l2"),
    "rae-gp": ("RAE_GP", "RAE_GP_Config", {"embedding_weight": 1.0, "reg_weight": 1e-3}, "base", "rae-gp"),
    "factorvae": ("FactorVAE", "FactorVAEConfig", {"gamma": 10.0}, "adversarial", "vae"),
    "msssim-vae": ("MSSSIM_VAE", "MSSSIM_VAEConfig", {}, "base", "msssim-vae"),
    # the code z = f(x) (Dirac posterior); pythae's adversarial scale is vaekit's λ = 1 on the encoder's term
    "aae": (
        "Adversarial_AE",
        "Adversarial_AE_Config",
        {"deterministic_posterior": True, "adversarial_loss_scale": 1.0},
        "adversarial",
        "aae",
    ),
    # reconstruction : GAN = (1 − s) : s on the decoder, vaekit's γ : 1 at γ = 1 (s = 1 / (1 + γ));
    # the features of the discriminator's 2nd hidden layer (vaekit's feature_layer); pythae's margins kept
    "vaegan": (
        "VAEGAN",
        "VAEGANConfig",
        {"adversarial_loss_scale": 0.5, "reconstruction_layer": 2},
        "coupled-adversarial",
        "vaegan",
    ),
    # EMA codebook (decay 0.99, β = 0.25, K from the model); pythae's VQ-VAE has an MSE reconstruction only
    "vqvae": (
        "VQVAE",
        "VQVAEConfig",
        {"use_ema": True, "decay": 0.99, "commitment_loss_factor": 0.25},
        "base",
        "vqvae",
    ),
    # the wrapped normal for posterior and prior, curvature from the model
    "poincare": (
        "PoincareVAE",
        "PoincareVAEConfig",
        {"prior_distribution": "wrapped_normal", "posterior_distribution": "wrapped_normal"},
        "base",
        "poincare",
    ),
}

#: zoo arms pythae implements but this adapter does not train, and why (the zoo table says so).
NOT_WIRED: dict[str, str] = {}

#: pythae models whose "bce" reads the decoder output as Bernoulli logits (the others: probabilities).
_LOGITS = {"HVAE"}
#: pythae models whose config has no ``reconstruction_loss`` (their own fixed one).
_NO_RECONSTRUCTION_LOSS = {"AE", "MSSSIM_VAE", "RAE_L2", "RAE_GP", "VQVAE"}


def available() -> str | None:
    """None when pythae imports, else why not (one line)."""
    try:
        import pythae  # noqa: F401
    except ImportError as error:
        return f"{type(error).__name__}: {error}"
    return None


def _classes():
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder

    class Encoder(BaseEncoder):
        """A vaekit encoder body in pythae's interface (see the module docstring). ``kind``:
        "stochastic", "deterministic", "dirac" (a code with a zero log-variance, pythae's
        deterministic-posterior AAE), "hyperspherical", "ball" (loc mapped onto the Poincaré ball by
        ``to_ball``) or "codes": the VQ-VAE's G groups of D_e as pythae's (batch, D_e, 1, G) feature map,
        so that pythae's quantizer takes the same D_e-vectors as vaekit's (given a flat (batch, d) code,
        pythae quantizes each of the d coordinates against a codebook of scalars)."""

        def __init__(self, net, kind: str, to_ball=None, groups: int = 1):
            super().__init__()
            self.net, self.kind, self.to_ball, self.groups = net, kind, to_ball, groups

        def forward(self, x):
            out = self.net(x)
            if self.kind == "deterministic":
                return ModelOutput(embedding=out)
            if self.kind == "dirac":
                return ModelOutput(embedding=out, log_covariance=torch.zeros_like(out))
            if self.kind == "codes":  # a flat code would make pythae quantize each coordinate on its own
                return ModelOutput(embedding=out.reshape(len(out), self.groups, -1).permute(0, 2, 1)[:, :, None])
            loc, scale = out
            if self.kind == "hyperspherical":
                s = scale.sum(-1, keepdim=True).clamp_min(1e-6)
                return ModelOutput(embedding=loc, log_concentration=s + torch.log(-torch.expm1(-s)))
            if self.kind == "ball":
                loc = self.to_ball(loc)
            return ModelOutput(embedding=loc, log_covariance=2 * scale.log())

    class Decoder(BaseDecoder):
        """A vaekit decoder body (Bernoulli logits) in pythae's interface (probabilities); a
        (batch, D_e, 1, G) code map from pythae's quantizer is flattened back in vaekit's group order."""

        def __init__(self, net, logits: bool = False):
            super().__init__()
            self.net, self.logits = net, logits

        def forward(self, z):
            if z.dim() == 4:
                z = z.permute(0, 2, 3, 1).reshape(len(z), -1)
            out = self.net(z)
            return ModelOutput(reconstruction=out if self.logits else torch.sigmoid(out))

    class Discriminator(BaseDiscriminator):
        """A vaekit MLP discriminator (:func:`vaekit.models.discriminator.mlp_discriminator`: logits)
        in pythae's interface: ``embedding`` the probability, ``embedding_layer_l`` the output of the
        l-th hidden block (linear + leaky ReLU), as pythae's ``Discriminator_MLP`` numbers them."""

        def __init__(self, net):
            super().__init__()
            self.net = net
            self.blocks = [net[i : i + 2] for i in range(0, len(net) - 1, 2)] + [net[-1:]]
            self.depth = len(self.blocks)

        def forward(self, x, output_layer_levels=None):
            output, out = ModelOutput(), x.reshape(len(x), -1)
            for i, block in enumerate(self.blocks, start=1):
                out = block(out)
                if output_layer_levels is not None and (
                    i in output_layer_levels or (-1 in output_layer_levels and i == self.depth)
                ):
                    output[f"embedding_layer_{i}"] = out
            output["embedding"] = torch.sigmoid(out)
            return output

    return Encoder, Decoder, Discriminator


def to_pythae(arm: str, model):
    """pythae's model for ``arm`` around copies of vaekit ``model``'s encoder and decoder bodies
    (same initial weights).

    Raises:
        KeyError: an arm pythae does not implement (not in :data:`PYTHAE`).
    """
    import pythae.models as pm

    name, config_name, settings, _, _ = PYTHAE[arm]
    settings = {**settings, **_settings_of(arm, model)}
    encoder_cls, decoder_cls, discriminator_cls = _classes()
    kind = {"hyperspherical": "hyperspherical", "aae": "dirac", "vqvae": "codes", "poincare": "ball"}.get(
        arm, "stochastic" if model.stochastic else "deterministic"
    )
    to_ball = None
    if arm == "poincare":  # vaekit's μ = exp_0^c(loc), in float64 as vaekit's encoder
        from ..models.poincare import poincare_ball

        ball = poincare_ball(model.curvature)
        to_ball = lambda loc: ball.expmap0(loc.double()).to(loc.dtype)  # noqa: E731
    extra = {} if name in _NO_RECONSTRUCTION_LOSS else {"reconstruction_loss": "bce"}
    config = getattr(pm, config_name)(
        input_dim=tuple(model.data_shape), latent_dim=model.latent_dim, **extra, **settings
    )
    nets = {
        "encoder": encoder_cls(
            copy.deepcopy(model.encoder), kind, to_ball=to_ball, groups=getattr(model, "num_groups", 1)
        ),
        "decoder": decoder_cls(copy.deepcopy(model.decoder), logits=name in _LOGITS),
    }
    if hasattr(model, "discriminator"):  # the AAE's D on codes, the VAE-GAN's Dis on images: vaekit's net
        nets["discriminator"] = discriminator_cls(copy.deepcopy(model.discriminator))
    return getattr(pm, name)(config, **nets)


def _settings_of(arm: str, model) -> dict:
    """pythae config settings read from the vaekit model (its options, so that both train the same model).

    Raises:
        ValueError: a VAE-GAN feature scale other than 1 or a Poincaré prior scale other than 1
            (pythae fixes both at 1).
    """
    if arm == "vampprior":  # as many pseudo-inputs as the vaekit model
        return {"number_components": model.num_components}
    if arm == "aae":
        return {"adversarial_loss_scale": model.reg_weight}
    if arm == "vaegan":
        if model.feature_scale != 1.0:
            raise ValueError(f"pythae's VAE-GAN has feature scale 1, the model {model.feature_scale}")
        return {"adversarial_loss_scale": 1 / (1 + model.gamma), "reconstruction_layer": model.feature_layer}
    if arm == "vqvae":
        return {"num_embeddings": model.num_codes, "commitment_loss_factor": model.commitment, "decay": model.decay}
    if arm == "poincare":
        if model.prior_sigma != 1.0:
            raise ValueError(f"pythae's Poincaré VAE has prior scale 1, the model {model.prior_sigma}")
        return {"curvature": model.curvature}
    return {}


def train_pythae(arm: str, pmodel, train_x, val_x, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """Train ``pmodel`` with the trainer pythae's pipeline uses for ``arm`` (Adam at ``lr``,
    validation every epoch, as vaekit's loop); returns the wall seconds of ``trainer.train()``."""
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import (
        AdversarialTrainer,
        AdversarialTrainerConfig,
        BaseTrainer,
        BaseTrainerConfig,
        CoupledOptimizerAdversarialTrainer,
        CoupledOptimizerAdversarialTrainerConfig,
        CoupledOptimizerTrainer,
        CoupledOptimizerTrainerConfig,
    )

    for logger in [n for n in logging.root.manager.loggerDict if n.startswith("pythae")]:
        logging.getLogger(logger).setLevel(logging.ERROR)  # pythae logs every epoch
    kind = PYTHAE[arm][3]
    common = dict(
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        num_epochs=epochs,
        no_cuda=True,
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "adversarial":
            cfg = AdversarialTrainerConfig(
                output_dir=tmp,
                autoencoder_learning_rate=lr,
                discriminator_learning_rate=lr,
                autoencoder_optimizer_cls="Adam",
                discriminator_optimizer_cls="Adam",
                **common,
            )
            trainer_cls = AdversarialTrainer
        elif kind == "coupled-adversarial":
            cfg = CoupledOptimizerAdversarialTrainerConfig(
                output_dir=tmp,
                encoder_learning_rate=lr,
                decoder_learning_rate=lr,
                discriminator_learning_rate=lr,
                encoder_optimizer_cls="Adam",
                decoder_optimizer_cls="Adam",
                discriminator_optimizer_cls="Adam",
                **common,
            )
            trainer_cls = CoupledOptimizerAdversarialTrainer
        elif kind == "coupled":
            decay = PYTHAE[arm][2].get("reg_weight", 0.0) if arm == "rae-l2" else 0.0
            cfg = CoupledOptimizerTrainerConfig(
                output_dir=tmp,
                encoder_learning_rate=lr,
                decoder_learning_rate=lr,
                encoder_optimizer_cls="Adam",
                decoder_optimizer_cls="Adam",
                decoder_optimizer_params={"weight_decay": decay},
                **common,
            )
            trainer_cls = CoupledOptimizerTrainer
        else:
            cfg = BaseTrainerConfig(output_dir=tmp, learning_rate=lr, optimizer_cls="Adam", **common)
            trainer_cls = BaseTrainer
        quiet = _io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            trainer = trainer_cls(
                pmodel,
                BaseDataset(train_x, torch.zeros(len(train_x))),
                BaseDataset(val_x, torch.zeros(len(val_x))),
                cfg,
            )
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
    return seconds


def from_pythae(
    arm: str, pmodel, holder, train_x=None, epochs: int = 1, batch_size: int = 100, lr: float = 1e-3, seed: int = 0
):
    """A vaekit model holding the networks pythae trained: ``holder`` (a vaekit model of the
    arm's holder class, :data:`PYTHAE`) copied, its encoder and decoder bodies (the VampPrior's
    pseudo-inputs, the AAE's and VAE-GAN's discriminator, the VQ-VAE's codebook) loaded from ``pmodel``.
    pythae's VQ-VAE has no prior over its codes: the holder's autoregressive code prior is fitted
    afterwards on the codes of ``train_x`` ``(n, *data_shape)`` (``epochs`` of Adam at ``lr``, as
    the VQ-VAE paper, sec. 3.2, fits its prior after the model). In eval mode, on the CPU.

    Raises:
        ValueError: a VQ-VAE without ``train_x``.
    """
    model = copy.deepcopy(holder).cpu()
    model.encoder.load_state_dict(pmodel.encoder.net.state_dict())
    model.decoder.load_state_dict(pmodel.decoder.net.state_dict())
    if hasattr(model, "discriminator") and hasattr(pmodel, "discriminator"):
        model.discriminator.load_state_dict(pmodel.discriminator.net.state_dict())
    if arm == "vampprior" and getattr(model, "parameterization", "free") == "linear":
        # the same parameterisation as pythae's (a linear layer on the identity): copy W and b
        (layer,) = [m for m in pmodel.pseudo_inputs.modules() if isinstance(m, torch.nn.Linear)]
        model.pseudo_input_layer.load_state_dict(layer.state_dict())
    elif arm == "vampprior":
        with torch.no_grad():
            u = pmodel.pseudo_inputs(pmodel.idle_input).reshape(model.pseudo_inputs.shape)
            model.pseudo_inputs.copy_(u)
    elif arm == "vqvae":
        if train_x is None:
            raise ValueError("a VQ-VAE from pythae needs train_x to fit its code prior")
        codebook = pmodel.quantizer.embeddings
        codebook = codebook.weight if isinstance(codebook, torch.nn.Embedding) else codebook
        if codebook.shape != model.codebook.shape:
            raise ValueError(f"pythae's codebook is {tuple(codebook.shape)}, the model's {tuple(model.codebook.shape)}")
        with torch.no_grad():
            model.codebook.copy_(codebook)
        _fit_code_prior(model, train_x, epochs, batch_size, lr, seed)
    return model.eval()


def _fit_code_prior(model, train_x, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """Train ``model.code_prior`` alone by the cross-entropy of the codes of ``train_x`` (the term
    vaekit's VQ loss trains it with), minibatches of ``batch_size`` in a seeded order."""
    model.eval()
    with torch.no_grad():
        codes = torch.cat([model.quantize(model._encoder_output(b))[0] for b in train_x.split(1000)])
    optimizer = torch.optim.Adam(model.code_prior.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(codes), generator=generator).split(batch_size):
            loss = model.code_nll(codes[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def per_epoch(seconds: float, epochs: int) -> float:
    """Seconds per epoch of a timed training (NaN for no epochs)."""
    return seconds / epochs if epochs else math.nan
