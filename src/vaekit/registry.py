"""What vaekit can build, as plain data: the model names and what each can and needs, and the
likelihood names. No torch is imported here, so :mod:`vaekit.config` validates a config against these
tables without loading torch; :mod:`vaekit.models` and :mod:`vaekit.distributions` map each name to
its class (``tests/test_layout.py`` checks that the name sets agree).
"""

from __future__ import annotations

import dataclasses
import json
import re


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """What a model name is: its graphical model, the family of its training loss, what it needs.

    Attributes:
        graph: the graphical model, "ae", "vae" or "cvae" (names that share one share a class of
            :mod:`vaekit.models`; their objective differs).
        objective: the family of its training loss in :mod:`vaekit.objectives` (elbo, betatc,
            coupling, self-supervised).
        summary: one line for ``--help`` and README.
        needs_labels: trains on labelled data (the condition of a conditional model).
        needs_init: refines a trained run (``--init RUN``).
    """

    graph: str
    objective: str
    summary: str
    needs_labels: bool = False
    needs_init: bool = False

    @property
    def stochastic(self) -> bool:
        """Whether the encoder is a distribution (a VAE) rather than a point (an AE)."""
        return self.graph != "ae"

    @property
    def conditional(self) -> bool:
        """Whether encoder and decoder take a condition c."""
        return self.graph == "cvae"


#: model name -> :class:`ModelKind`.
MODEL_KINDS: dict[str, ModelKind] = {
    "ae": ModelKind("ae", "elbo", "(denoising) autoencoder"),
    "vae": ModelKind("vae", "elbo", "VAE / beta-VAE / IWAE"),
    "cvae": ModelKind("cvae", "elbo", "conditional VAE", needs_labels=True),
    "betatc": ModelKind("vae", "betatc", "beta-TCVAE"),
    "avae": ModelKind("vae", "coupling", "autoencoding VAE"),
    "se": ModelKind("vae", "coupling", "smooth encoder"),
    "se-avae": ModelKind("vae", "coupling", "smooth encoder + AVAE"),
    "avae-ss": ModelKind("vae", "self-supervised", "AVAE-SS refinement of a trained VAE", needs_init=True),
}

#: likelihood heads of :data:`vaekit.distributions.LIKELIHOODS`, by name.
LIKELIHOOD_NAMES: tuple[str, ...] = ("bernoulli", "continuous-bernoulli", "gaussian")

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
        raise ValueError(f"{role} kwargs may not set {', '.join(reserved)}: vaekit passes them from the config and data")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{role} kwargs must be JSON (numbers, strings, lists, objects) so the run folder "
                         f"stays JSON + safetensors; {e}") from None
