"""Helpers shared by the command modules."""

from __future__ import annotations


def say(line: str) -> None:
    """Print one line of a command's output (flushed: visible in logs at once)."""
    print(line, flush=True)


#: The flag every command takes: allow loading runs whose config names custom networks.
TRUST_CODE = "--trust-code"
#: The line ``vaekit --help`` and every command's --help add about it.
TRUST_CODE_HELP = (f"{TRUST_CODE} (any command): allow importing the custom encoder/decoder a run's config.json "
                   "names by import path (docs/custom-networks.md); without it such runs are refused.")


def split_trust_code(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--trust-code``, and whether it was there."""
    rest = [a for a in argv if a != TRUST_CODE]
    return rest, len(rest) != len(argv)


def trust_code(enabled: bool):
    """The context a command runs in: models naming custom networks build and load only when ``enabled``."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from ..custom_nets import trusting

    return trusting()


def json_registry():
    """A tyro constructor registry under which flags typed ``dict`` (``--encoder``, ``--decoder``)
    take one JSON object, e.g. ``'{"target": "mypkg.nets:Encoder", "kwargs": {"width": 64}}'``."""
    import json

    import tyro

    def rule(type_info):
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

    registry = tyro.constructors.ConstructorRegistry()
    registry.primitive_rule(rule)
    return registry
