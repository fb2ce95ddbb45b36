"""What vaekit can build, as plain data: the one model registry (name -> class, objective,
capabilities) and the likelihood names. No torch is imported here (classes are named by import path
and loaded on use), so :mod:`vaekit.config` validates a config against these tables without loading
torch. A new model is one file plus one :func:`register_model` call (``tests/test_custom_model.py``
defines one inside the test file and runs the whole contract suite on it).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: the class that builds it, the objective that trains it, what it can and needs.

    Attributes:
        cls: the class (an ``nn.Module`` with ``encode``, ``decode``, ``prior``), or its import path
            ``"module.path:ClassName"`` so that this table stays free of torch (:meth:`load` imports it).
        objective: the family of its training loss, a name of :data:`vaekit.objectives.OBJECTIVES`
            (elbo, betatc, coupling, self-supervised, ...), or a callable ``(config, dataset_size) ->
            objective`` for a model that brings its own.
        summary: one line for ``--help`` and README.
        stochastic: the encoder is a distribution (a VAE), not a point (an AE).
        conditional: encoder and decoder take a condition c (class labels).
        tractable_likelihood: the model has an importance-sampled log p(x) (a density q(z|x) and a
            prior with ``log_prob``); False for an AE and for models trained without a likelihood.
        needs_labels: trains on labelled data (the condition of a conditional model).
        needs_init: refines a trained run (``--init RUN``).
    """

    cls: Any
    objective: Any = "elbo"
    summary: str = ""
    stochastic: bool = True
    conditional: bool = False
    tractable_likelihood: bool = True
    needs_labels: bool = False
    needs_init: bool = False

    def load(self) -> type:
        """The model class (imported on first use when given as ``"module:Name"``)."""
        if isinstance(self.cls, str):
            module, _, name = self.cls.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.cls


#: The one model registry: name -> :class:`ModelEntry`. Add a model with :func:`register_model`.
MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Register ``entry`` under ``name`` (the ``--model`` value): after this call the model is built,
    trained, saved, loaded and evaluated like the built-in ones.

    Raises:
        TypeError: ``entry`` is not a :class:`ModelEntry`.
        ValueError: a name that is not lower-case letters, digits and ``-``, or one already taken
            (unless ``replace``).
    """
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"register_model takes a vaekit.registry.ModelEntry, got {type(entry).__name__}")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"a model name is lower-case letters, digits and '-', got {name!r}")
    if name in MODELS and not replace:
        raise ValueError(f"model {name!r} is already registered; pass replace=True to replace it")
    MODELS[name] = entry
    return entry


def unregister_model(name: str) -> None:
    """Remove a registered model (tests that register one of their own clean up with it)."""
    MODELS.pop(name, None)


_M = "vaekit.models."
for _name, _entry in {
    "ae": ModelEntry(_M + "ae:AE", "elbo", "(denoising) autoencoder", stochastic=False, tractable_likelihood=False),
    "vae": ModelEntry(_M + "vae:VAE", "elbo", "VAE / beta-VAE / IWAE"),
    "cvae": ModelEntry(_M + "cvae:CVAE", "elbo", "conditional VAE", conditional=True, needs_labels=True),
    "betatc": ModelEntry(_M + "vae:VAE", "betatc", "beta-TCVAE"),
    "avae": ModelEntry(_M + "vae:VAE", "coupling", "autoencoding VAE"),
    "se": ModelEntry(_M + "vae:VAE", "coupling", "smooth encoder"),
    "se-avae": ModelEntry(_M + "vae:VAE", "coupling", "smooth encoder + AVAE"),
    "avae-ss": ModelEntry(_M + "vae:VAE", "self-supervised", "AVAE-SS refinement of a trained VAE", needs_init=True),
    "vampprior": ModelEntry(_M + "vampprior:VampPrior", "elbo", "VAE with a VampPrior (Tomczak & Welling 2018)"),
    "mixture-prior": ModelEntry(
        _M + "mixture_prior:MixturePriorVAE", "elbo", "VAE with a learned Gaussian-mixture prior"
    ),
    "miwae": ModelEntry(
        _M + "importance_weighted:ImportanceWeightedVAE",
        "miwae",
        "VAE trained with MIWAE(M, K) (Rainforth et al. 2018)",
    ),
    "ciwae": ModelEntry(
        _M + "importance_weighted:ImportanceWeightedVAE",
        "ciwae",
        "VAE trained with CIWAE(beta) (Rainforth et al. 2018)",
    ),
    "ladder": ModelEntry(_M + "ladder:LadderVAE", "elbo", "Ladder VAE, two stochastic layers (Sonderby et al. 2016)"),
    "planar-flow": ModelEntry(
        _M + "flow_posterior:PlanarFlowVAE", "elbo", "VAE with a planar-flow posterior (Rezende & Mohamed 2015)"
    ),
    "radial-flow": ModelEntry(
        _M + "flow_posterior:RadialFlowVAE", "elbo", "VAE with a radial-flow posterior (Rezende & Mohamed 2015)"
    ),
    "iaf": ModelEntry(
        _M + "flow_posterior:IAFVAE", "elbo", "VAE with an inverse autoregressive flow posterior (Kingma et al. 2016)"
    ),
    "hvae": ModelEntry(
        _M + "hamiltonian:HamiltonianVAE", "hvae", "Hamiltonian VAE, tempered leapfrog posterior (Caterini et al. 2018)"
    ),
    "hyperspherical": ModelEntry(
        _M + "hyperspherical:HypersphericalVAE",
        "elbo",
        "S-VAE, von Mises-Fisher posterior, uniform prior (Davidson et al. 2018)",
    ),
    "piwae": ModelEntry(
        _M + "importance_weighted:ImportanceWeightedVAE",
        "piwae",
        "VAE trained with PIWAE(M, K) (Rainforth et al. 2018)",
    ),
    "wae": ModelEntry(
        _M + "wae:WAE",
        "mmd",
        "WAE-MMD, IMQ kernel (Tolstikhin et al. 2018)",
        stochastic=False,
        tractable_likelihood=False,
    ),
    "wae-rbf": ModelEntry(
        _M + "wae:WAERBF",
        "mmd",
        "WAE-MMD, RBF kernel (Tolstikhin et al. 2018)",
        stochastic=False,
        tractable_likelihood=False,
    ),
    "infovae": ModelEntry(_M + "infovae:InfoVAE", "mmd", "InfoVAE-MMD (Zhao et al. 2019)"),
    "swae": ModelEntry(
        _M + "swae:SWAE",
        "sliced-wasserstein",
        "sliced-Wasserstein AE (Kolouri et al. 2019)",
        stochastic=False,
        tractable_likelihood=False,
    ),
    "rae-l2": ModelEntry(
        _M + "rae:RAE", "rae", "RAE-L2 (Ghosh et al. 2020)", stochastic=False, tractable_likelihood=False
    ),
    "logcosh-vae": ModelEntry(_M + "logcosh:LogCoshVAE", "elbo", "VAE with the log-cosh reconstruction density"),
    "msssim-vae": ModelEntry(
        _M + "msssim:MSSSIMVAE",
        "elbo",
        "VAE with the MS-SSIM reconstruction score (Snell et al. 2017)",
        tractable_likelihood=False,
    ),
    "factorvae": ModelEntry(_M + "factorvae:FactorVAE", "factor", "FactorVAE (Kim & Mnih 2018)"),
    "dip-vae-i": ModelEntry(_M + "dipvae:DIPVAE", "dip", "DIP-VAE-I (Kumar et al. 2018)"),
    "dip-vae-ii": ModelEntry(_M + "dipvae:DIPVAEII", "dip", "DIP-VAE-II (Kumar et al. 2018)"),
    "aae": ModelEntry(
        _M + "aae:AdversarialAE",
        "adversarial",
        "adversarial autoencoder (Makhzani et al. 2016)",
        stochastic=False,
        tractable_likelihood=False,
    ),
    "vqvae": ModelEntry(
        _M + "vqvae:VQVAE",
        "vq",
        "VQ-VAE with EMA codebook and an autoregressive code prior (van den Oord et al. 2017)",
        stochastic=False,
        tractable_likelihood=False,
    ),
    "rae-gp": ModelEntry(
        _M + "rae:RAEGP", "rae", "RAE-GP (Ghosh et al. 2020)", stochastic=False, tractable_likelihood=False
    ),
    "categorical": ModelEntry(
        _M + "categorical:CategoricalVAE",
        "gumbel-softmax",
        "categorical VAE, Gumbel-softmax relaxation, uniform prior (Jang et al. 2017)",
    ),
    "jointvae": ModelEntry(
        _M + "jointvae:JointVAE",
        "jointvae",
        "JointVAE, Gaussian + Gumbel-softmax latents, two capacities (Dupont 2018)",
    ),
    "poincare": ModelEntry(
        _M + "poincare:PoincareVAE",
        "elbo",
        "P-VAE, wrapped normals on the Poincare ball, gyroplane decoder (Mathieu et al. 2019)",
    ),
    "vaegan": ModelEntry(
        _M + "vaegan:VAEGAN",
        "vaegan",
        "VAE-GAN, discriminator-feature likelihood (Larsen et al. 2016)",
        tractable_likelihood=False,
    ),
}.items():
    register_model(_name, _entry)

#: likelihood heads of :data:`vaekit.distributions.LIKELIHOODS`, by name.
LIKELIHOOD_NAMES: tuple[str, ...] = ("bernoulli", "continuous-bernoulli", "gaussian", "discretized-logistic")

#: numerical precisions of a run (:data:`vaekit.runtime.device.PRECISIONS` maps each to its dtype).
PRECISION_NAMES: tuple[str, ...] = ("32", "bf16", "16-mixed")

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_spec(role: str, spec) -> None:
    """Validate a config's ``encoder`` / ``decoder`` entry without importing anything.

    Raises:
        ValueError: not None or ``{"target": "module:Name", "kwargs": {...}}`` with JSON-ready kwargs.
    """
    if spec is None:
        return
    example = f'{{"target": "mypkg.nets:{role.capitalize()}", "kwargs": {{"width": 64}}}}'
    if not isinstance(spec, dict) or not isinstance(spec.get("target"), str) or set(spec) - {"target", "kwargs"}:
        raise ValueError(f"{role} must be an object like {example}, got {spec!r}")
    if not _TARGET.match(spec["target"]):
        raise ValueError(f"{role} target must be 'module.path:ClassName', got {spec['target']!r}")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"{role} kwargs must be a JSON object of keyword arguments, got {kwargs!r}")
    reserved = sorted({"data_shape", "latent_dim", "stochastic", "cond_dim"} & set(kwargs))
    if reserved:
        raise ValueError(
            f"{role} kwargs may not set {', '.join(reserved)}: vaekit passes them from the config and data"
        )
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{role} kwargs must be JSON (numbers, strings, lists, objects) so the run folder "
            f"stays JSON + safetensors; {e}"
        ) from None


def check_options(options) -> None:
    """Validate a config's model ``options`` without importing anything (the model class checks the
    names when it is built).

    Raises:
        ValueError: not None or a JSON object of finite values keyed by identifiers.
    """
    if options is None:
        return
    if not isinstance(options, dict) or not all(isinstance(k, str) and k.isidentifier() for k in options):
        raise ValueError(
            f'options must be a JSON object of model settings like {{"num_components": 50}}, got {options!r}'
        )
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"options must be JSON with finite numbers (the run folder stays JSON + safetensors); {e}"
        ) from None
