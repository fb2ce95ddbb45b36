"""Custom encoder/decoder classes named in a config by import path, saved without pickle.

A config may name a network instead of vaekit's MLP/conv bodies::

    "encoder": {"target": "mypkg.nets:Encoder", "kwargs": {"width": 64}}

The run folder keeps only JSON (the import path and the keyword arguments) and safetensors (the
weights). Rebuilding the model imports ``mypkg.nets`` and calls ``Encoder(...)``, i.e. runs code
that the config names, so it needs an explicit opt-in: ``trust_code=True`` in the API,
``--trust-code`` on the command line, or the :func:`trusting` context. Without it vaekit refuses
with :class:`CodeNotTrusted` before importing anything.

The call contract (the same signature as :class:`vaekit.nets.MLPEncoder` / ``MLPDecoder``, so
``"vaekit.nets:MLPEncoder"`` is a valid target too):

- encoder: ``target(data_shape=tuple, latent_dim=int, **kwargs)``, plus ``stochastic=False`` for
  a deterministic model (``ae``) and ``cond_dim=K`` for a conditional one (``cvae``). Its forward
  maps ``x (batch, *data_shape)`` (and ``c (batch, K)``) to ``(loc, scale)``, each
  ``(batch, latent_dim)`` with scale > 0, or to ``loc`` alone when deterministic.
- decoder: ``target(data_shape=tuple, latent_dim=int, **kwargs)``, plus ``cond_dim=K`` for a
  conditional model. Its forward maps ``z (batch, latent_dim)`` (and ``c``) to the likelihood's
  parameters ``(batch, *data_shape)``.

:func:`check_nets` runs both on a batch of two zero inputs when the model is built and raises a
ValueError naming what came back if a shape is wrong.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib

import torch
from torch import nn

ROLES = ("encoder", "decoder")
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("vaekit_trust_code", default=False)


class CodeNotTrusted(ValueError):
    """A config names code to import (a custom encoder/decoder) and trust was not given."""


@contextlib.contextmanager
def trusting(enabled: bool = True):
    """Within this block, models whose config names custom networks may be built and loaded
    (``trust_code=None`` means "as the block says"). ``vaekit ... --trust-code`` runs the
    command inside it."""
    token = _TRUSTED.set(bool(enabled))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def code_trusted(trust_code: bool | None = None) -> bool:
    """``trust_code`` when given, else the setting of the enclosing :func:`trusting` block (default False)."""
    return _TRUSTED.get() if trust_code is None else bool(trust_code)


def named(config) -> dict[str, str]:
    """``{"encoder": target, ...}`` for the roles ``config`` fills with custom networks."""
    return {role: getattr(config, role)["target"] for role in ROLES if getattr(config, role, None)}


def require_trust(config, trust_code: bool | None = None) -> None:
    """Refuse to build a model whose config names code, unless trusted (see :func:`code_trusted`).

    Raises:
        CodeNotTrusted: one line naming the targets and how to opt in.
    """
    targets = named(config)
    if targets and not code_trusted(trust_code):
        listed = ", ".join(f"{role} {target!r}" for role, target in targets.items())
        raise CodeNotTrusted(
            f"this config names code to import ({listed}); building the model runs it. "
            "If you trust its source pass trust_code=True (CLI: --trust-code)"
        )


def import_target(target: str, role: str = "network"):
    """The object ``module.path:Name`` names (``Name`` may be dotted, e.g. ``Outer.Inner``).

    Raises:
        ImportError: the module cannot be imported or has no such attribute (saying where to look).
    """
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(
            f"cannot import the {role} {target!r}: {e}; install its package or put its folder on PYTHONPATH"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportError(f"cannot import the {role} {target!r}: {obj.__name__} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


def build_custom(
    role: str, spec: dict, data_shape, latent_dim: int, stochastic: bool = True, cond_dim: int = 0
) -> nn.Module:
    """Instantiate the ``role`` ("encoder"/"decoder") a config's spec names (the contract in the module doc).

    Raises:
        ImportError: see :func:`import_target`. TypeError: the target did not accept the arguments or
        did not return an ``nn.Module``.
    """
    cls = import_target(spec["target"], role)
    kwargs = dict(spec.get("kwargs", {}), data_shape=tuple(data_shape), latent_dim=int(latent_dim))
    if role == "encoder" and not stochastic:
        kwargs["stochastic"] = False
    if cond_dim:
        kwargs["cond_dim"] = int(cond_dim)
    try:
        module = cls(**kwargs)
    except TypeError as e:
        raise TypeError(f"{role} {spec['target']!r} could not be built with {sorted(kwargs)}: {e}") from None
    if not isinstance(module, nn.Module):
        raise TypeError(f"{role} {spec['target']!r} returned {type(module).__name__}, expected a torch.nn.Module")
    return module


@torch.no_grad()
def check_nets(
    encoder: nn.Module, decoder: nn.Module, data_shape, latent_dim: int, stochastic: bool = True, cond_dim: int = 0
) -> None:
    """Run both networks on two zero inputs (in eval mode) and check the shapes of what they return.

    Raises:
        ValueError: the encoder does not return ``(loc, scale)`` (or ``loc``) of shape
        ``(2, latent_dim)``, or the decoder does not return ``(2, *data_shape)``.
    """
    modes = encoder.training, decoder.training
    encoder.eval(), decoder.eval()
    try:
        param = next(iter(encoder.parameters()), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        c = (torch.zeros(2, cond_dim, dtype=dtype),) if cond_dim else ()
        out = encoder(torch.zeros(2, *data_shape, dtype=dtype), *c)
        parts = out if stochastic else (out,)
        if stochastic and not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError(
                f"the encoder must return (loc, scale), each (batch, {latent_dim}); it returned {type(out).__name__}"
            )
        shapes = [tuple(p.shape) if torch.is_tensor(p) else type(p).__name__ for p in parts]
        if any(s != (2, latent_dim) for s in shapes):
            raise ValueError(
                f"the encoder returned {shapes} for a batch of 2; expected "
                f"{'(loc, scale), each' if stochastic else 'loc'} (2, {latent_dim})"
            )
        params = decoder(torch.zeros(2, latent_dim, dtype=dtype), *c)
        expected = (2, *data_shape)
        if not torch.is_tensor(params) or tuple(params.shape) != expected:
            got = tuple(params.shape) if torch.is_tensor(params) else type(params).__name__
            raise ValueError(f"the decoder returned {got} for a batch of 2 latent codes; expected {expected}")
    finally:
        encoder.train(modes[0]), decoder.train(modes[1])
