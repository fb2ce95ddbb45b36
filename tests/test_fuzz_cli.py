"""Property-based test of the command line (Hypothesis), issue 12.

Hypothesis draws a command, one of its flags and a value for it (numbers including NaN, ±Inf, 0,
negative and huge ones, bools, words, empty strings), or a malformed data or config file, runs
``vaekit.cli.main(argv)`` in-process and checks that exactly one of two things happened:

* success (exit 0), and every number in what the command wrote is finite; or
* a non-zero exit with exactly one line on stderr, starting ``vaekit: error:``, no traceback and
  no "internal error" (an exception nobody turned into a message);

and in both cases that the existing run folder is byte for byte unchanged. ``vaekit sweep --grid``
items are drawn too (issue 20): setting names (real ones, ``seed``, unknown, empty) with one or
two drawn values, or a bare drawn value; a sweep of the tiny CSV either finishes or says in one line
what is wrong (a point that fails is counted in that line). The example budget is
the ``ci`` profile of tests/conftest.py; ``--hypothesis-profile thorough`` runs a long local search.
"""

import contextlib
import hashlib
import io as _io
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vaekit.cli import main

TINY = [
    "--epochs",
    "1",
    "--latent-dim",
    "2",
    "--hidden",
    "8",
    "--eval-num-samples",
    "2",
    "--no-progress",
    "--kl-diagnostic-points",
    "0",
]

#: Values for any flag: special literals, small integers, any float's repr, huge integers.
SPECIAL = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "0",
    "-0",
    "-1",
    "-3",
    "1e30",
    "-1e30",
    "1e308",
    "1e-320",
    "True",
    "False",
    "true",
    "abc",
    "",
    " ",
    "1.5",
    "0.5",
    "2",
    "3",
    "1e9",
    "0x10",
    "٣",
    "None",
    "[1]",
]
SMALL = st.one_of(st.sampled_from(SPECIAL), st.integers(-5, 12).map(str), st.floats().map(repr))
HUGE = st.integers(2**31, 2**70).map(str)

#: (command words, flag, output suffix, whether huge integers are safe: False where a huge value
#: is a legitimate, merely slow request, e.g. 10**12 importance samples).
FLAGS = [
    # --num-samples is bounded (issue 30: at most 100000), so huge values are safe to draw
    (["evaluate"], "--num-samples", ".json", True),
    (["evaluate"], "--batch-size", ".json", True),
    (["sample"], "--n", ".npy", True),
    (["sample"], "--temperature", ".npy", True),
    (["sample"], "--seed", ".npy", True),
    (["sample"], "--label", ".npy", True),
    (["reconstruct"], "--n", ".npy", True),
    (["manifold"], "--n", ".npy", True),
    (["manifold"], "--label", ".npy", True),
    (["interpolate"], "--num-steps", ".npy", True),
    (["interpolate"], "--index", ".npy", True),
    (["traverse"], "--num-values", ".npy", True),
    (["traverse"], "--span", ".npy", True),
    (["traverse"], "--num-dims", ".npy", True),
    (["traverse"], "--index", ".npy", True),
    (["traverse"], "--dims", ".npy", True),
    (["iterate"], "--num-steps", ".npy", True),
    (["iterate"], "--index", ".npy", True),
    (["embed"], "--seed", "", True),
]
#: Settings of ``vaekit train`` (on a tiny CSV): whether huge integers are safe (no for
#: num_samples: 10**12 Monte Carlo samples is a legitimate, merely huge request; a huge latent_dim
#: is refused by vaekit.models.MAX_PARAMETERS).
TRAIN_FLAGS = {
    "--lr": True,
    "--beta": True,
    "--noise-std": True,
    "--weight-decay": True,
    "--grad-clip": True,
    "--rho": True,
    "--val-fraction": True,
    "--likelihood-scale": True,
    "--batch-size": True,
    "--warmup-epochs": True,
    "--patience": True,
    "--latent-dim": True,
    "--num-samples": False,
    "--alpha": True,
    "--epsilon": True,
    "--capacity-max": True,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained run, a tiny CSV to train on, and a scratch folder."""
    root = tmp_path_factory.mktemp("fuzz")
    assert main(["train", "--runs-dir", str(root / "runs"), "--name", "r", *TINY]) == 0
    rng = np.random.default_rng(0)
    np.savetxt(root / "tiny.csv", rng.random((24, 3)), delimiter=",", fmt="%.5f")
    return {"run": root / "runs" / "r", "csv": root / "tiny.csv", "root": root}


def _hashes(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _check(world, argv: list[str], written: list[Path]) -> None:
    """Run ``argv`` and check the two allowed outcomes (module docstring)."""
    before = _hashes(world["run"])
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code == 0:
        for path in written:
            if path.suffix == ".npy" and path.is_file():
                assert np.isfinite(np.load(path)).all(), (argv, path)
            if path.suffix == ".json" and path.is_file():
                assert _finite(json.loads(path.read_text())), (argv, path)
    else:
        assert len(lines) == 1, (argv, err.getvalue())
        assert lines[0].startswith("vaekit: error:") and "Traceback" not in err.getvalue(), (argv, lines)
    assert _hashes(world["run"]) == before, argv


@given(spec=st.sampled_from(FLAGS), data=st.data())
def test_fuzz_flags_of_the_run_commands(world, spec, data):
    words, flag, suffix, huge_ok = spec
    values = data.draw(st.lists(st.one_of(SMALL, HUGE) if huge_ok else SMALL, min_size=0, max_size=2), label="values")
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        out = Path(scratch) / f"out{suffix}"
        argv = [*words, str(world["run"]), flag, *values, "--output", str(out)]
        written = [out] if suffix else [out.with_name("out.npy"), out.with_name("out.csv")]
        _check(world, argv, written)


@given(flag=st.sampled_from(sorted(TRAIN_FLAGS)), data=st.data())
def test_fuzz_train_settings(world, flag, data):
    value = data.draw(st.one_of(SMALL, HUGE) if TRAIN_FLAGS[flag] else SMALL, label="value")
    name = data.draw(st.sampled_from(["new", "r"]), label="name")  # "r": the existing run, never touched
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        runs = world["run"].parent if name == "r" else Path(scratch)
        argv = [
            "train",
            "--data",
            "array",
            "--path",
            str(world["csv"]),
            "--likelihood",
            "gaussian",
            "--runs-dir",
            str(runs),
            "--name",
            name,
            *TINY,
            flag,
            value,
        ]
        _check(world, argv, [runs / name / "summary.json"])


CSV_TEXT = st.lists(
    st.sampled_from(
        ["0.1", "1", "-2", "nan", "inf", "", "x", ",", "\n", "\r\n", '"', " ", "1e400", "y,z", "0,1", "\x00"]
    ),
    max_size=40,
).map("".join)
RAW = st.one_of(
    CSV_TEXT.map(lambda t: t.encode()), st.binary(max_size=200), CSV_TEXT.map(lambda t: t.encode() + b"\xe9\xff")
)
NPY = st.sampled_from(
    [b"", b"\x93NUMPY", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }"]
)
CONFIG = st.one_of(
    st.dictionaries(
        st.sampled_from(
            ["epochs", "lr", "beta", "latent_dim", "model", "data", "hidden", "seed", "nope", "train", "model_x"]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 3),
            st.floats(),
            st.text(max_size=5),
            st.lists(st.integers(-1, 3), max_size=3),
            st.dictionaries(st.just("epochs"), st.integers(-1, 2)),
        ),
        max_size=4,
    ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"{", b"[]", b"null", b'{"epochs": NaN}', b'{"lr": -Infinity}', b"\xff\xfe{}", b'"text"']),
)


@given(kind=st.sampled_from(["csv", "npy", "config", "score"]), data=st.data())
def test_fuzz_malformed_files(world, kind, data):
    raw = data.draw({"csv": RAW, "npy": NPY, "config": CONFIG, "score": RAW}[kind], label="bytes")
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        scratch = Path(scratch)
        path = scratch / ("c.json" if kind == "config" else f"f.{'npy' if kind == 'npy' else 'csv'}")
        path.write_bytes(raw)
        if kind == "score":
            argv = [
                "score",
                str(world["run"]),
                "--input",
                str(path),
                "--output",
                str(scratch / "s.csv"),
                "--num-samples",
                "1",
                "--no-progress",
            ]
        elif kind == "config":
            argv = ["train", "--config-file", str(path), "--runs-dir", str(scratch), "--name", "c", *TINY]
        else:
            argv = [
                "train",
                "--data",
                "array",
                "--path",
                str(path),
                "--likelihood",
                "gaussian",
                "--runs-dir",
                str(scratch),
                "--name",
                "f",
                *TINY,
            ]
        _check(world, argv, [scratch / "c" / "summary.json", scratch / "f" / "summary.json"])


#: Run names: the ones that once deleted the runs folder or its parent (issue 20), paths, and any text.
NAMES = st.one_of(
    st.sampled_from(
        [
            ".",
            "..",
            "/",
            "r",
            "r/",
            "./r",
            "../r",
            "r/..",
            "a/b",
            "",
            " ",
            "~",
            "...",
            "\\",
            "/tmp",
            "r\x00",
            "-",
            "--overwrite",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)


@given(name=NAMES, overwrite=st.booleans())
def test_fuzz_run_names(world, name, overwrite):
    """``train --name NAME [--overwrite]`` in the folder holding the existing run: the run, the
    runs folder and the folder above it survive every name (issue 20)."""
    assume(not (overwrite and name == "r"))  # replacing the run by its own name is what --overwrite is for
    runs = world["run"].parent
    argv = [
        "train",
        "--data",
        "array",
        "--path",
        str(world["csv"]),
        "--likelihood",
        "gaussian",
        "--runs-dir",
        str(runs),
        "--name",
        name,
        *(["--overwrite"] if overwrite else []),
        *TINY,
    ]
    before = set(runs.iterdir())
    try:
        _check(world, argv, [])
        assert world["csv"].is_file() and world["run"].is_dir()
    finally:  # remove the new run folder a valid name made
        for made in set(runs.iterdir()) - before:
            shutil.rmtree(made)


#: Commands that take --output, with the flags that make them quick.
OUTPUT_COMMANDS = [
    ["evaluate", "--num-samples", "2"],
    ["sample", "--n", "4"],
    ["reconstruct", "--n", "2"],
    ["embed"],
    ["report"],
    [
        "evaluate",
        "robustness",
        "--num-steps",
        "1",
        "--epsilons",
        "0",
        "--consistency-steps",
        "0",
        "--fid-epochs",
        "0",
        "--max-test",
        "4",
    ],
]


@given(command=st.sampled_from(OUTPUT_COMMANDS), data=st.data())
def test_fuzz_output_paths(world, command, data):
    """``--output`` onto any file of the existing run (also through ``./`` and ``../r/``), or a new
    file: the run stays byte for byte unchanged (issue 20)."""
    run = world["run"]
    # the run's files as trained, listed once: a command may add a file of its own (an output with its
    # suffix appended), and Hypothesis needs the same choices in every example
    kept = world.setdefault("trained_files", sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()))
    target = data.draw(
        st.one_of(st.sampled_from(kept), st.sampled_from(["out.npy", "out.png", "out.json", "out"])), label="target"
    )
    spelling = data.draw(st.sampled_from(["{run}/{t}", "{run}/./{t}", "{run}/../r/{t}"]), label="spelling")
    words = command[:2] if command[:2] == ["evaluate", "robustness"] else command[:1]
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        output = spelling.format(run=run, t=target) if target in kept else str(Path(scratch) / target)
        _check(world, [*words, str(run), *command[len(words) :], "--output", output], [])


@given(
    command=st.sampled_from(
        [["score", "--threshold", "0"], ["ood", "--score", "log_likelihood", "--num-samples", "2"]]
    ),
    target=st.sampled_from(["input", "./input", "sub/../input", "link", "mine", "new"]),
    overwrite=st.booleans(),
)
def test_fuzz_output_onto_the_inputs(world, command, target, overwrite):
    """``--output`` onto the command's own ``--input`` (any spelling, a link), onto the user's existing
    file, or a new one, with or without ``--overwrite`` (issue 30): the input is never replaced, an
    existing file only with ``--overwrite``; one error line or exit 0; the run is unchanged."""
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        scratch = Path(scratch)
        (scratch / "sub").mkdir()
        rows = scratch / "input"
        np.savetxt(rows, np.random.default_rng(0).random((3, 64)), delimiter=",", fmt="%.4f")
        rows = rows.rename(scratch / "input")
        (scratch / "link").symlink_to(rows)
        (scratch / "mine").write_text("my notes")
        before = rows.read_bytes()
        output = {
            "input": str(rows),
            "./input": f"{scratch}/./input",
            "sub/../input": f"{scratch}/sub/../input",
            "link": str(scratch / "link"),
            "mine": str(scratch / "mine"),
            "new": str(scratch / "new.csv"),
        }[target]
        argv = [
            command[0],
            str(world["run"]),
            "--input",
            str(rows),
            "--output",
            output,
            *command[1:],
            "--no-progress",
            *(["--overwrite"] if overwrite else []),
        ]
        _check(world, argv, [])
        assert rows.read_bytes() == before, argv
        if target == "mine" and not overwrite:
            assert (scratch / "mine").read_text() == "my notes"


#: Settings a ``--grid`` item names: real ones, ``seed`` (refused: --seeds), an unknown and an empty name.
GRID_NAMES = [
    "lr",
    "beta",
    "latent_dim",
    "noise_std",
    "model",
    "likelihood",
    "hidden",
    "batch_size",
    "seed",
    "nope",
    "",
]
_NAMED = st.tuples(st.sampled_from(GRID_NAMES), st.lists(SMALL, min_size=1, max_size=2)).map(
    lambda t: f"{t[0]}={','.join(t[1])}"
)
GRID_ITEM = st.one_of(_NAMED, _NAMED, _NAMED, SMALL)  # mostly SETTING=VALUES, sometimes a bare value


@given(items=st.lists(GRID_ITEM, min_size=1, max_size=2))
def test_fuzz_sweep_grid(world, items):
    with tempfile.TemporaryDirectory(dir=world["root"]) as scratch:
        base = {
            "data": "array",
            "path": str(world["csv"]),
            "likelihood": "gaussian",
            "epochs": 1,
            "hidden": [8],
            "latent_dim": 2,
            "eval_num_samples": 2,
            "kl_diagnostic_points": 0,
        }
        argv = [
            "sweep",
            *(a for item in items for a in ("--grid", item)),
            *(a for k, v in base.items() for a in ("--set", f"{k}={json.dumps(v) if k != 'path' else v}")),
            "--out",
            str(Path(scratch) / "sweep"),
        ]
        _check(world, argv, [])  # the report's intervals are NaN for one seed: only the exit contract
