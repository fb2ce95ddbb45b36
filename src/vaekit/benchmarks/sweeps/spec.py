"""What a sweep runs: named arms (settings) × seeds, from ``--grid`` flags or a JSON file.

A sweep file is a JSON object::

    {"base": {"data": "color-digits", "epochs": 40},          # settings shared by every arm
     "grid": {"model": ["vae", "avae"], "noise_std": [0, 0.2]},  # a product of values ...
     "arms": {"AVAE (sampled)": {"model": "avae", "aux_sample": true}},  # ... and/or named arms
     "seeds": [0, 1, 2],
     "evaluate": {"robustness": {"epsilons": [0, 0.1], "max_test": 1000}}}

Every (arm, seed) is a *point*: one :class:`vaekit.config.Config` and one run folder
``runs/<key>``. Keys are readable and stable, so a restarted sweep finds its folders again.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

from ...config import FLAT, Config


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep: arm name, seed, the full settings (a Config dict) and the folder key."""

    arm: str
    seed: int
    settings: dict
    key: str

    def config(self) -> Config:
        """The point's :class:`Config` (validated)."""
        return Config.from_flat(**self.settings)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: shared ``base`` settings, ``arms`` (name -> changes), ``seeds``, and the
    evaluations run on every finished point (name -> keyword arguments, see
    :data:`vaekit.benchmarks.sweeps.points.EVALUATIONS`)."""

    base: dict
    arms: dict
    seeds: tuple
    evaluate: dict = dataclasses.field(default_factory=dict)

    def points(self) -> list[Point]:
        """Every (arm, seed) point, seeds outer and arms inner (a partial sweep has whole seeds).

        Raises:
            ValueError: a setting that is not a config field or an invalid value (naming the arm).
        """
        for arm, changes in [(None, self.base), *self.arms.items()]:
            if "seed" in changes:
                where = "the base settings" if arm is None else f"sweep arm {arm!r}"
                raise ValueError(
                    f"{where} set 'seed', which the sweep sets itself for every point; "
                    f'list the seeds instead: --seeds {changes["seed"]} (or "seeds" in the sweep file)'
                )
        points, keys = [], set()
        for seed in self.seeds:
            for arm, changes in self.arms.items():
                values = {**self.base, **changes, "seed": int(seed)}
                try:
                    settings = Config.from_flat(**values).to_flat()
                except (ValueError, TypeError) as e:
                    raise ValueError(f"sweep arm {arm!r}: {e}") from None
                key = f"{slug(arm)}-seed{seed}"
                if key in keys:
                    raise ValueError(f"two sweep arms share the folder name {key!r}; rename one of them")
                keys.add(key)
                points.append(Point(arm, int(seed), json.loads(json.dumps(settings)), key))
        return points

    def to_dict(self) -> dict:
        """JSON-ready dict (what :func:`from_dict` reads)."""
        return {"base": self.base, "arms": self.arms, "seeds": list(self.seeds), "evaluate": self.evaluate}


def slug(name: str) -> str:
    """A folder-safe form of an arm name: "AVAE (sampled)" -> "avae-sampled", "noise_std=0.2" -> "noise_std-0.2"."""
    text = name.lower().replace("ε", "eps").replace("+", "plus").replace("=", "-")
    return re.sub(r"[^a-z0-9_.-]+", "-", text).strip("-") or "arm"


def parse_value(text: str):
    """A flag value: JSON when it parses (0.2, true, [200, 200], null), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items, what: str = "--grid") -> dict[str, list]:
    """``["model=vae,avae", "noise_std=0,0.2"]`` -> ``{"model": ["vae", "avae"], "noise_std": [0, 0.2]}``.

    A value starting with a bracket or brace is read as one JSON value (``hidden=[200,200]``,
    ``encoder={"target": ...}``). A setting given twice gets the values of both, in order, each
    once (``--grid beta=1 --grid beta=4,1`` is ``beta=1,4``).

    Raises:
        ValueError: an item without ``=``, an unknown setting, or ``seed`` (a sweep's seeds are
        ``--seeds``: a seed in the settings would be overwritten by the point's own).
    """
    fields = set(FLAT)
    out: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what} {item!r}: expected SETTING=VALUE[,VALUE...], e.g. {what} model=vae,avae")
        name, _, text = item.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if name == "seed":
            raise ValueError(
                f"{what} {item!r}: seeds are not a setting of a sweep's arms; pass them as "
                f"--seeds {' '.join(text.replace(',', ' ').split()) or '0 1 2'}"
            )
        if name not in fields:
            raise ValueError(f"{what} {item!r}: {name!r} is not a setting; valid: {', '.join(sorted(fields))}")
        whole = text.lstrip().startswith(("[", "{"))
        values = [parse_value(text)] if whole else [parse_value(v) for v in text.split(",")]
        merged = out.setdefault(name, [])
        merged.extend(v for v in values if not any(_same(v, m) for m in merged))
    return out


def _same(a, b) -> bool:
    """Equal as settings: 1 and 1.0 are one value, True and 1 are not."""
    return (
        a == b
        and type(a) is type(b)
        or (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and not isinstance(a, bool)
            and not isinstance(b, bool)
            and a == b
        )
    )


def grid_arms(grid: dict[str, list]) -> dict[str, dict]:
    """Named arms of the product of ``grid`` values: ``{"model=vae,noise_std=0": {...}, ...}``."""
    if not grid:
        return {}
    names = list(grid)
    arms = {}
    for values in itertools.product(*(grid[n] for n in names)):
        arms[",".join(f"{n}={json.dumps(v) if not isinstance(v, str) else v}" for n, v in zip(names, values))] = dict(
            zip(names, values)
        )
    return arms


def from_dict(values: dict, seeds=None) -> SweepSpec:
    """A :class:`SweepSpec` from a sweep-file dict; ``seeds`` (when given) replaces the file's.

    Raises:
        ValueError: unknown keys, no arms, no seeds, or a bad grid.
    """
    unknown = sorted(set(values) - {"base", "grid", "arms", "seeds", "evaluate"})
    if unknown:
        raise ValueError(f"unknown sweep-file key(s) {unknown}; valid: base, grid, arms, seeds, evaluate")
    grid = values.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"sweep 'grid' must map settings to non-empty lists of values, got {grid!r}")
    arms = {**grid_arms(grid), **values.get("arms", {})}
    if not arms:
        arms = {"base": {}}
    seeds = tuple(int(s) for s in (seeds if seeds else values.get("seeds", [0])))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {list(seeds)}")
    return SweepSpec(dict(values.get("base", {})), arms, seeds, dict(values.get("evaluate", {})))


def read(path, seeds=None) -> SweepSpec:
    """Read a sweep file (see the module docstring).

    Raises:
        ValueError: not valid JSON, not an object, or a bad spec. FileNotFoundError: no file.
    """
    try:
        values = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"sweep file {path} is not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"sweep file {path} must hold a JSON object, got {type(values).__name__}")
    return from_dict(values, seeds)
