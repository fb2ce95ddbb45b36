"""The house rules of the source tree (docs/architecture.md): one folder per layer, imports only
downward or sideways within a layer, no import cycle between modules (imports inside functions
included), and a light ``import vaekit``."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "vaekit"

#: The layers of shared/DESIGN.md, bottom to top, as the design names them: "Data flows one way:
#: data -> models + objectives -> training -> io -> evaluation / detectors -> reporting -> cli".
DESIGN_ORDER = ["data", "models", "training", "io", "evaluation", "reporting", "cli"]

#: bottom to top; a module may import from its own layer or any layer below it. Below DESIGN's
#: data: the runtime (imports nothing of vaekit) and the configs (import no torch); between its
#: reporting and cli: the benchmark protocols and the sweeps they run on.
LAYERS = [
    ["_version", "runtime", "registry"],
    ["config", "options"],
    ["data"],
    ["discretized", "distributions", "custom_nets", "nets", "attacks", "models", "objectives"],
    ["training"],
    ["io"],
    ["evaluation", "detectors", "run"],
    ["reporting"],
    ["benchmarks"],
    ["cli", "__main__", "__init__"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(name: str) -> set[str]:
    """Every vaekit module ``name`` imports, at the top or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYER[parts[1] if len(parts) > 1 else "__init__"]


GRAPH = {name: imports(name) for name in MODULES}


def test_every_module_has_a_layer():
    assert all(layer(name) >= 0 for name in MODULES)


def test_layers_follow_the_design_order():
    """Each layer DESIGN.md names sits above the one before it, so moving a module away from the
    design (e.g. io below training) fails here and in the upward-import test."""
    positions = [LAYER[name] for name in DESIGN_ORDER]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    assert LAYER["detectors"] == LAYER["evaluation"] and LAYER["objectives"] == LAYER["models"]


def test_runtime_imports_nothing_of_vaekit():
    """The bottom layer: runtime/, the registry and the version import no other part of vaekit."""
    bottom = [a for a in GRAPH if layer(a) == 0 and a != "vaekit"]
    assert "vaekit.runtime.distributed" in bottom and "vaekit.registry" in bottom
    leaks = [
        f"{a} -> {b}"
        for a in bottom
        for b in GRAPH[a]
        if not (a.startswith("vaekit.runtime") and b.startswith("vaekit.runtime"))
    ]
    assert not leaks, leaks


def test_evaluation_does_not_import_training():
    """Evaluating a model needs no training loop: evaluation/ reads the runtime (ranks, progress)
    from the bottom layer, not from training/."""
    leaks = [
        f"{a} -> {b}"
        for a in GRAPH
        if a.startswith("vaekit.evaluation")
        for b in GRAPH[a]
        if b.startswith("vaekit.training")
    ]
    assert not leaks, leaks


def reached(name: str) -> set[str]:
    """Every vaekit module ``name`` imports, directly or through others (at the top or inside functions)."""
    seen, todo = set(), [name]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_evaluation_never_reaches_the_benchmarks():
    """Evaluating a run needs no benchmark protocol: evaluation/ reaches no module of benchmarks/
    (sweeps included), and neither does any ``vaekit evaluate ...`` command; the protocols sit on top
    and only call down."""
    from vaekit.cli import COMMANDS

    leaks = {
        a: sorted(b for b in reached(a) if b.startswith("vaekit.benchmarks"))
        for a in GRAPH
        if a.startswith("vaekit.evaluation")
    }
    assert not any(leaks.values()), {a: b for a, b in leaks.items() if b}
    evaluate = {f"vaekit.{c.module}" for name, c in COMMANDS.items() if name.split()[0] == "evaluate"}
    assert evaluate == {"vaekit.cli.evaluate"}, evaluate
    for module in evaluate:
        assert not [b for b in reached(module) if b.startswith("vaekit.benchmarks")], module


def test_train_goes_straight_down():
    """``vaekit train``: the CLI opens one RunFolder and calls one ``vaekit.run.train``; the run
    imports no reporting (figures and report come in as its outputs) and only io owns the folder."""
    assert "vaekit.reporting.runs" not in MODULES  # the old second way to train is gone
    run = reached("vaekit.run")
    assert not [m for m in run if m.startswith(("vaekit.reporting", "vaekit.benchmarks", "vaekit.cli"))], run
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for module in ("vaekit.run", "vaekit.cli.train")
        for node in ast.walk(ast.parse(MODULES[module].read_text()))
        if isinstance(node, ast.Call)
    }
    # RunFolder locks, creates and cleans up, once; fit applies the threads, once
    assert not called & {"hold_run", "discard_unstarted", "create_run_dir", "clean_stale_files", "apply_threads"}, (
        called
    )
    assert {"RunFolder", "in_runs_dir", "train"} <= called


def test_config_imports_no_torch():
    """``import vaekit.config`` reads the registry (plain data), never torch."""
    code = "import sys, vaekit.config; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"},
    ).stdout
    assert out.strip() == "False"


def test_registry_names_match_the_classes():
    """The one torch-free model registry agrees with the classes it names: each entry loads a class
    whose capabilities (stochastic, conditional) are the entry's; the likelihood and precision names
    match their builders. Five registry names are one now (no ModelKind/ModelSpec/MODEL_KINDS/CLASSES)."""
    import vaekit.models as models
    from vaekit.distributions import LIKELIHOODS
    from vaekit.registry import LIKELIHOOD_NAMES, MODELS, PRECISION_NAMES
    from vaekit.runtime import PRECISIONS

    assert models.MODELS is MODELS
    for gone in ("ModelKind", "ModelSpec", "MODEL_KINDS", "CLASSES"):
        assert not hasattr(models, gone) and not hasattr(__import__("vaekit.registry").registry, gone), gone
    for name, entry in MODELS.items():
        cls = entry.load()
        assert (cls.stochastic, cls.conditional) == (entry.stochastic, entry.conditional), name
    assert set(LIKELIHOODS) == set(LIKELIHOOD_NAMES) and set(PRECISIONS) == set(PRECISION_NAMES)


def test_no_import_runs_up_a_layer():
    upward = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a) and a != "vaekit"]
    assert not upward, "imports from a higher layer: " + ", ".join(sorted(upward))


def test_no_import_cycle():
    """Tarjan-free check: depth-first search for a back edge over every module."""
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt.startswith(node + ".") or node == "vaekit":
                continue  # a package importing its own children (re-exports) is not a cycle
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_no_two_modules_share_a_name_for_different_things():
    """``anomaly`` is the one allowed repeat pair only where one is the scores and one the
    detector; every other file name is unique."""
    stems = {}
    for name in MODULES:
        stem = name.rsplit(".", 1)[-1]
        if stem not in ("__init__", "vaekit", "common"):
            stems.setdefault(stem, []).append(name)
    repeated = {stem: names for stem, names in stems.items() if len(names) > 1}
    assert set(repeated) <= {"anomaly", "robustness", "disentanglement", "explore", "train", "ood", "sweep"}, repeated


@pytest.mark.parametrize(
    "code",
    [
        "import vaekit, sys; print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib','jinja2','sklearn','scipy'}))",
        "import sys; from vaekit.cli import main; main(['--help']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib','jinja2','sklearn','scipy','torch'}))",
    ],
)
def test_light_imports(code):
    """``import vaekit`` loads no plotting, templating or scikit-learn/SciPy; ``vaekit --help`` not even torch."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"},
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


FIXTURE = Path(__file__).parent / "fixtures" / "v1-run"


def test_old_run_folder_loads(tmp_path, capsys):
    """A run folder written by vaekit 0.1 (flat config.json, format 1) loads, evaluates to the
    numbers that version wrote in its summary, reports, and resumes."""
    import json
    import shutil

    from vaekit import io
    from vaekit.cli import main

    record = json.loads((FIXTURE / "config.json").read_text())
    assert record["format_version"] == 1 and record["config"]["model"] == "vae"  # written by vaekit 0.1
    run = tmp_path / "v1-run"
    shutil.copytree(FIXTURE, run)
    config = io.load_config(run)
    assert config.model.latent_dim == 2 and config.model.hidden == (16,) and config.train.epochs == 1
    assert io.load(run).config == config.model
    assert main(["evaluate", str(run), "--num-samples", "10", "--output", str(tmp_path / "e.json")]) == 0
    old, new = io.read_json(run / "summary.json")["test"], io.read_json(tmp_path / "e.json")["test"]
    for key in ("elbo", "log_likelihood", "kl", "reconstruction"):
        assert new[key] == pytest.approx(old[key], abs=1e-4), key
    assert main(["report", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert len(io.read_json_lines(run / "metrics.jsonl")) == 2
    assert io.read_json(run / "config.json")["format_version"] == 2  # rewritten in the new format
    capsys.readouterr()


def test_no_merge_conflict_markers_in_the_docs_or_sources():
    root = SRC.parents[1]
    files = [root / "README.md", *(root / "docs").rglob("*.md"), *SRC.rglob("*.py"), *(root / "tests").glob("*.py")]
    marked = [
        f"{path.relative_to(root)}:{i}"
        for path in files
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=" * 7
    ]
    assert not marked, f"unresolved merge conflict markers: {marked}"


def test_build_model_takes_a_model_config():
    """``build_model`` takes the model section; a whole run Config is refused with the fix."""
    from vaekit.config import Config
    from vaekit.models import build_model

    config = Config.from_flat(latent_dim=2, hidden=(8,), seed=3)
    with pytest.raises(TypeError, match=r"pass config\.model"):
        build_model(config, (1, 8, 8))
    model = build_model(config.model, (1, 8, 8), seed=config.train.seed)
    assert model.config == config.model.__class__(**{**vars(config.model), "decoder_activation": "sigmoid"})
