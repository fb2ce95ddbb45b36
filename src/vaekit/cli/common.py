"""Helpers shared by the command modules."""

from __future__ import annotations


def say(line: str) -> None:
    """Print one line of a command's output (flushed: visible in logs at once)."""
    print(line, flush=True)
