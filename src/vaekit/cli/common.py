"""Helpers shared by the command modules: output, --trust-code, the bounds of numeric flags, one-line usage errors."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import re
import typing


@contextlib.contextmanager
def terminate_as_interrupt(received: list):
    """Within this context SIGTERM (``kill PID``, a scheduler's stop) is handled as Ctrl-C: it
    raises KeyboardInterrupt, so a command stops the same way (files written atomically, a
    training run tells its ``--resume`` command); the signal's number is appended to ``received``.
    Only in the main thread (elsewhere signals cannot be handled); the previous handler is restored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def one_line_warnings():
    """Within this context a Python warning prints as one line on stderr, ``vaekit: warning: ...``,
    without the file, line and source line Python adds (``VAEKIT_DEBUG=1`` keeps Python's form)."""
    import os
    import sys
    import warnings

    if os.environ.get("VAEKIT_DEBUG"):
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"vaekit: warning: {' '.join(str(message).split())}", file=file or sys.stderr, flush=True)

    shown, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = shown


def say(line: str) -> None:
    """Print one line of a command's output (flushed: visible in logs at once)."""
    print(line, flush=True)


#: The flag every command takes: allow loading runs whose config names custom networks.
TRUST_CODE = "--trust-code"
#: The line ``vaekit --help`` and every command's --help add about it.
TRUST_CODE_HELP = (
    f"{TRUST_CODE} (any command): allow importing the custom encoder/decoder a run's config.json "
    "names by import path (docs/custom-networks.md); without it such runs are refused."
)


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


def auto_bool(tyro):
    """How a flag typed ``bool | None`` reads: ``auto`` (None: vaekit decides), ``true`` or ``false``
    (any case), shown as ``{auto,true,false}`` instead of tyro's ``{None,True,False}``."""
    words = {"auto": None, "none": None, "true": True, "false": False}

    def parse(args: list[str]) -> bool | None:
        word = args[0].lower()
        if word not in words:
            raise ValueError(f"expected auto, true or false, got {args[0]!r}")
        return words[word]

    return tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="{auto,true,false}",
        instance_from_str=parse,
        is_instance=lambda value: value is None or isinstance(value, bool),
        str_from_instance=lambda value: ["auto" if value is None else str(value).lower()],
    )


def flag_registry():
    """The tyro constructor registry of vaekit's commands: flags typed ``dict`` (``--encoder``, ``--decoder``)
    take one JSON object, e.g. ``'{"target": "mypkg.nets:Encoder", "kwargs": {"width": 64}}'``, and
    flags typed ``bool | None`` read ``auto``, ``true`` or ``false`` (:func:`auto_bool`)."""
    import json

    import tyro

    def rule(type_info):
        if type_info.type == (bool | None):
            return auto_bool(tyro)
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
            nargs=1,
            metavar="JSON",
            instance_from_str=parse,
            is_instance=lambda value: isinstance(value, dict),
            str_from_instance=lambda value: [json.dumps(value)],
        )

    registry = tyro.constructors.ConstructorRegistry()
    registry.primitive_rule(rule)
    return registry


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric flag, put in its type: ``n: Annotated[int, COUNT] = 64``.

    :class:`Checked` argument dataclasses check every such field after parsing (``vaekit.cli.main``
    calls :func:`vaekit.config.validate`): a finite number (NaN, ±Inf and bools refused), an
    integer where the type is ``int``, within ``[low, high]`` (open ends when asked), and for a
    tuple flag at least one value (unless its default is empty), each checked. ``None`` (an
    optional flag left out) passes.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self, integer: bool) -> str:
        """``"an integer >= 1"``, ``"a finite number in [0, 1]"``, ..."""
        kind = "an integer" if integer else "a finite number"
        low, high = _show(self.low), _show(self.high)
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return kind

    def admits(self, value: float) -> bool:
        """True if the finite ``value`` lies within the bounds."""
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok


def _show(bound: float | None) -> str:
    return (
        str(int(bound))
        if bound is not None and float(bound).is_integer()
        else f"{bound:g}"
        if bound is not None
        else ""
    )


#: A count or a size: an integer >= 1 (--n, --batch-size, --num-samples, --epochs...).
COUNT = Range(1)
#: An integer or number >= 0 (--seed, --consistency-steps...).
NONNEGATIVE = Range(0)
#: A seed: an integer in [0, 2**32 - 1] (NumPy's and scikit-learn's range).
SEED = Range(0, 2**32 - 1)
#: The length of a figure's strip (images per row): an integer in [1, 1000].
FIGURE_SIZE = Range(1, 1000)
#: A fraction or radius in [0, 1] pixel units (--epsilons).
UNIT = Range(0, 1)
#: Any finite number (--threshold).
FINITE = Range()
#: Importance / Monte Carlo samples per example (--num-samples): [1, config.MAX_NUM_SAMPLES = 100000].
NUM_SAMPLES = Range(1, 100_000)
#: Optimisation steps per example (--regret-steps) and posterior samples / ensemble members
#: (--num-posterior-samples, each a decoder trained or stored): bounded likewise.
STEPS = Range(1, 100_000)
POSTERIOR_SAMPLES = Range(1, 1000)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _example(field: dataclasses.Field) -> str:
    """How to fix a bad value: the flag with its default, or leave it out."""
    default = field.default
    if default is None or default is dataclasses.MISSING or default == ():
        return f"or leave {_flag(field.name)} out for the default"
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else str(default)
    return f"e.g. {_flag(field.name)} {shown} (the default)"


def check_args(args) -> None:
    """Check every field of the argument dataclass ``args`` whose type carries a :class:`Range`
    or an :class:`Output`.

    Raises:
        ValueError / TypeError: naming the flag, the value received, what is expected and an example.
    """
    hints = typing.get_type_hints(type(args), include_extras=True)
    for field in dataclasses.fields(args):
        hint = hints[field.name]
        bounds = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Range)]
        value = getattr(args, field.name)
        for output in (m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Output)):
            for suffix in output.suffixes if value is not None else ():
                check_output(f"{value}{suffix}", _flag(field.name), output.allow)
                check_output_onto_inputs(f"{value}{suffix}", _flag(field.name), args, output.allow)
        if not bounds or value is None:
            continue
        integer = int in _scalar_types(hint.__origin__)
        values = value if isinstance(value, tuple) else (value,)
        expected = bounds[0].describe(integer)
        if not values and field.default != ():  # an empty tuple is refused unless it is the default
            raise ValueError(f"{_flag(field.name)} needs at least one value ({expected}); {_example(field)}")
        for v in values:
            kind_ok = (
                isinstance(v, numbers.Real)
                and not isinstance(v, bool)
                and (not integer or isinstance(v, numbers.Integral))
            )
            if not kind_ok:
                raise TypeError(f"{_flag(field.name)} must be {expected}, got {v!r}; {_example(field)}")
            if not (math.isfinite(v) and bounds[0].admits(v)):
                raise ValueError(f"{_flag(field.name)} must be {expected}, got {v!r}; {_example(field)}")


@dataclasses.dataclass(frozen=True)
class Output:
    """Marker of a flag naming a file a command writes, put in its type:
    ``output: Annotated[Optional[str], OUTPUT] = None``. :func:`check_args` refuses a path that is
    a file a run keeps (:func:`check_output`).

    ``suffixes``: the flag is a path prefix and the command writes PREFIX + each suffix
    (``vaekit embed``). ``allow``: names of run files the command may rewrite (``report.html``
    for ``vaekit report``).
    """

    suffixes: tuple[str, ...] = ("",)
    allow: tuple[str, ...] = ()


#: A flag naming one output file.
OUTPUT = Output()


def run_files() -> tuple[frozenset[str], frozenset[str]]:
    """What a run folder keeps: ``(names of its files, names of its subfolders)``, from the
    constants of the code that writes them (``vaekit train``: config, weights, checkpoint,
    metrics, summary, scaler, data record, report, environment, tracker state and figures; a saved
    AnomalyDetector's record; the fitted parts ``vaekit ood`` caches)."""
    from .. import io
    from ..detectors.anomaly import DETECTOR
    from ..detectors.ood import CACHE
    from ..io import checks as runcheck
    from ..reporting import gallery, report, tracking

    files = {
        io.CONFIG,
        io.WEIGHTS,
        io.METRICS,
        io.SUMMARY,
        io.SCALER,
        runcheck.DATA_RECORD,
        report.REPORT,
        report.ENVIRONMENT,
        tracking.STATE,
        DETECTOR,
        *gallery.CAPTIONS,
    }
    return frozenset(files), frozenset({io.CHECKPOINT.parts[0], CACHE, tracking.EVENTS})


def check_output(path, flag: str = "--output", allow: tuple[str, ...] = ()) -> None:
    """Refuse to write a command's output onto a file a run keeps (:func:`run_files`): a file of
    that name in a folder holding ``config.json`` (a run folder or a saved model), or any file in
    one of its subfolders (``checkpoint/``, ...). Links and ``..`` are resolved first.

    Raises:
        ValueError: naming the flag, the path, the run file and the run.
    """
    import os
    from pathlib import Path

    from ..io import CONFIG

    target = Path(os.path.realpath(path))
    for folder in target.parents:
        if not (folder / CONFIG).is_file():
            continue
        parts = target.relative_to(folder).parts
        files, subfolders = run_files()
        if (len(parts) == 1 and parts[0] in files and parts[0] not in allow) or (
            len(parts) > 1 and parts[0] in subfolders
        ):
            raise ValueError(
                f"{flag} {path} would replace {'/'.join(parts)}, a file the run {folder} keeps; "
                f"choose another file name (without {flag} the command writes its own file)"
            )


def _input_paths(args, skip: str) -> list[tuple[str, str]]:
    """``(flag, path)`` of every other text flag of ``args`` (one path or a tuple) naming an existing file or folder."""
    import os

    found = []
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if field.name == skip or value is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, (str, os.PathLike)) and str(v) and os.path.exists(v):
                found.append((_flag(field.name), str(v)))
    return found


def check_output_onto_inputs(path, flag: str, args, allow: tuple[str, ...] = ()) -> None:
    """Refuse an output path that is one of the command's inputs (``--input in.csv --output in.csv``,
    spelt any way: links and ``..`` resolved), a folder, or an existing file without ``--overwrite``.

    Every text flag of ``args`` naming an existing file or folder counts as an input (``--input``,
    ``--images``, a run folder and the files inside it, ``--config-file``), so a new flag is covered
    by declaring it. The command then writes the file atomically (``runtime.files``). A file named
    in ``allow`` (``report.html`` for ``vaekit report``) is the command's own and is rewritten.

    Raises:
        ValueError: naming the flag, the path and what to do.
    """
    import os

    target = os.path.realpath(path)
    name = next((field.name for field in dataclasses.fields(args) if _flag(field.name) == flag), "")
    for other, source in _input_paths(args, name):
        real = os.path.realpath(source)
        if target == real:
            raise ValueError(
                f"{flag} {path} is the file {other} {source} that the command reads; writing there would "
                f"replace its input: choose another file name"
            )
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; pass the name of a file to write (in that folder or elsewhere)")
    if os.path.lexists(path) and not getattr(args, "overwrite", False) and os.path.basename(path) not in allow:
        raise ValueError(f"{flag} {path} exists; pass --overwrite to replace it, or choose another file name")


def _scalar_types(tp) -> set:
    """The scalar types inside ``Optional[...]`` / ``tuple[..., ...]``."""
    args = typing.get_args(tp)
    if not args:
        return {tp}
    return set().union(*(_scalar_types(a) for a in args if a is not Ellipsis and a is not type(None)))


class Checked:
    """Mixin of the argument dataclasses: their :class:`Range` fields are checked by
    :func:`vaekit.config.validate` (which ``vaekit.cli.main`` calls after parsing)."""

    def _validate(self) -> None:
        check_args(self)


def usage_error_line(text: str, prog: str) -> str:
    """tyro's boxed usage error (several lines) as one line: the message, a "perhaps you meant"
    suggestion when tyro has one, and where the help is."""
    sections, current = [], []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw or raw.startswith(("╭", "╰", "+")):  # the box's top and bottom borders (unicode or ASCII)
            continue
        line = raw.strip("│|").strip()
        if line and set(line) <= {"─", "-"}:
            sections.append(current)
            current = []
        elif line:
            current.append(line)
    sections.append(current)
    sections = [s for s in sections if s and not s[0].startswith(("For full helptext", "Argument helptext"))]
    if len(sections) > 1 and len(sections[0]) == 1 and not sections[1][0].lower().startswith("perhaps"):
        sections = sections[1:]  # a title line above the message (tyro's layout without a box)
    if not sections:
        return f"invalid arguments; see {prog} --help"
    message = " ".join(sections[0]).rstrip(".")
    suggestions = [
        flag
        for s in sections[1:]
        if s[0].lower().startswith("perhaps")
        for flag in re.findall(r"(--[\w-]+)", " ".join(s))
    ]
    hint = f"; perhaps you meant {' or '.join(dict.fromkeys(suggestions))}" if suggestions else ""
    return f"{message}{hint}; see {prog} --help"


def benchmark_command(default: str = "") -> str:
    """The ``vaekit benchmark ...`` command line of this process, recorded in a benchmark's results:
    without ``--collect-only``, so that it names the run that produced (and reproduces) them."""
    import sys

    if sys.argv[1:2] != ["benchmark"]:
        return default
    return "vaekit " + " ".join(a for a in sys.argv[1:] if a != "--collect-only")
