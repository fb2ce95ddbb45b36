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

Back in vaekit (:func:`from_pythae`) the networks are loaded into a copy of the vaekit model; the
VampPrior also takes pythae's pseudo-inputs. pythae's flows (IAF, planar) and leapfrog steps (HVAE)
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
#: trainer: "base", "coupled" (RAE-L2: weight decay on the decoder only; PIWAE: two optimizers) or
#: "adversarial" (FactorVAE), as pythae's TrainingPipeline chooses.
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
}

#: zoo arms pythae implements but this adapter does not train, and why (the zoo table says so).
NOT_WIRED: dict[str, str] = {
    "aae": "pythae's Adversarial_AE trains with its own discriminator and adversarial trainer: not wired into this adapter",
    "vaegan": "pythae's VAEGAN trains with its own discriminator and coupled adversarial trainer: not wired into this adapter",
    "vqvae": "pythae's VQVAE quantizes with its own codebook inside the model: not wired into this adapter",
    "poincare": "pythae's PoincareVAE has its own ball geometry and prior classes: not wired into this adapter",
}

#: pythae models whose "bce" reads the decoder output as Bernoulli logits (the others: probabilities).
_LOGITS = {"HVAE"}
#: pythae models whose config has no ``reconstruction_loss`` (their own fixed one).
_NO_RECONSTRUCTION_LOSS = {"AE", "MSSSIM_VAE", "RAE_L2", "RAE_GP"}


def available() -> str | None:
    """None when pythae imports, else why not (one line)."""
    try:
        import pythae  # noqa: F401
    except ImportError as error:
        return f"{type(error).__name__}: {error}"
    return None


def _classes():
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        """A vaekit encoder body in pythae's interface (see the module docstring)."""

        def __init__(self, net, kind: str):
            super().__init__()
            self.net, self.kind = net, kind

        def forward(self, x):
            out = self.net(x)
            if self.kind == "deterministic":
                return ModelOutput(embedding=out)
            loc, scale = out
            if self.kind == "hyperspherical":
                s = scale.sum(-1, keepdim=True).clamp_min(1e-6)
                return ModelOutput(embedding=loc, log_concentration=s + torch.log(-torch.expm1(-s)))
            return ModelOutput(embedding=loc, log_covariance=2 * scale.log())

    class Decoder(BaseDecoder):
        """A vaekit decoder body (Bernoulli logits) in pythae's interface (probabilities)."""

        def __init__(self, net, logits: bool = False):
            super().__init__()
            self.net, self.logits = net, logits

        def forward(self, z):
            out = self.net(z)
            return ModelOutput(reconstruction=out if self.logits else torch.sigmoid(out))

    return Encoder, Decoder


def to_pythae(arm: str, model):
    """pythae's model for ``arm`` around copies of vaekit ``model``'s encoder and decoder bodies
    (same initial weights).

    Raises:
        KeyError: an arm pythae does not implement (not in :data:`PYTHAE`).
    """
    import pythae.models as pm

    name, config_name, settings, _, _ = PYTHAE[arm]
    if arm == "vampprior":  # as many pseudo-inputs as the vaekit model
        settings = {**settings, "number_components": model.num_components}
    encoder_cls, decoder_cls = _classes()
    kind = "hyperspherical" if arm == "hyperspherical" else ("stochastic" if model.stochastic else "deterministic")
    extra = {} if name in _NO_RECONSTRUCTION_LOSS else {"reconstruction_loss": "bce"}
    config = getattr(pm, config_name)(
        input_dim=tuple(model.data_shape), latent_dim=model.latent_dim, **extra, **settings
    )
    return getattr(pm, name)(
        config,
        encoder=encoder_cls(copy.deepcopy(model.encoder), kind),
        decoder=decoder_cls(copy.deepcopy(model.decoder), logits=name in _LOGITS),
    )


def train_pythae(arm: str, pmodel, train_x, val_x, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """Train ``pmodel`` with the trainer pythae's pipeline uses for ``arm`` (Adam at ``lr``,
    validation every epoch, as vaekit's loop); returns the wall seconds of ``trainer.train()``."""
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import (
        AdversarialTrainer,
        AdversarialTrainerConfig,
        BaseTrainer,
        BaseTrainerConfig,
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


def from_pythae(arm: str, pmodel, holder):
    """A vaekit model holding the networks pythae trained: ``holder`` (a vaekit model of the
    arm's holder class, :data:`PYTHAE`) copied, its encoder and decoder bodies (and the VampPrior's
    pseudo-inputs) loaded from ``pmodel``. In eval mode, on the CPU."""
    model = copy.deepcopy(holder).cpu()
    model.encoder.load_state_dict(pmodel.encoder.net.state_dict())
    model.decoder.load_state_dict(pmodel.decoder.net.state_dict())
    if arm == "vampprior" and getattr(model, "parameterization", "free") == "linear":
        # the same parameterisation as pythae's (a linear layer on the identity): copy W and b
        (layer,) = [m for m in pmodel.pseudo_inputs.modules() if isinstance(m, torch.nn.Linear)]
        model.pseudo_input_layer.load_state_dict(layer.state_dict())
    elif arm == "vampprior":
        with torch.no_grad():
            u = pmodel.pseudo_inputs(pmodel.idle_input).reshape(model.pseudo_inputs.shape)
            model.pseudo_inputs.copy_(u)
    return model.eval()


def per_epoch(seconds: float, epochs: int) -> float:
    """Seconds per epoch of a timed training (NaN for no epochs)."""
    return seconds / epochs if epochs else math.nan
