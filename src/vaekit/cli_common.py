"""Options every ``vaekit`` command shares: ``--trust-code``, and JSON objects as flag values."""

from __future__ import annotations

import json

import tyro

from .custom_nets import trusting

TRUST_CODE = "--trust-code"
#: Appended to every command's --help.
TRUST_CODE_HELP = (f"{TRUST_CODE} (any command): allow importing the custom encoder/decoder a run's config.json "
                   "names by import path; without it such runs are refused.")


def split_trust_code(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--trust-code``, and whether it was there."""
    rest = [a for a in argv if a != TRUST_CODE]
    return rest, len(rest) != len(argv)


def trust_code(enabled: bool):
    """The context a command runs in: models naming custom networks load only when ``enabled``."""
    return trusting(enabled)


def _json_object_rule(type_info):
    """Flags typed ``dict`` (e.g. ``--encoder``) take one JSON object: ``'{"target": "m:E", "kwargs": {}}'``."""
    if type_info.type is not dict:
        return None

    def parse(args: list[str]) -> dict:
        try:
            value = json.loads(args[0])
        except json.JSONDecodeError as e:
            raise ValueError(f"expected a JSON object, got {args[0]!r} ({e})") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {args[0]!r}")
        return value

    return tyro.constructors.PrimitiveConstructorSpec(
        nargs=1, metavar="JSON", instance_from_str=parse,
        is_instance=lambda value: isinstance(value, dict), str_from_instance=lambda value: [json.dumps(value)])


REGISTRY = tyro.constructors.ConstructorRegistry()
REGISTRY.primitive_rule(_json_object_rule)
