"""The test command in README installs what the suite needs: ``pip install -e ".[test]"``.

CI runs README's command on a machine with nothing Python installed (``.ci/run``), so a missing
package fails there; these checks say which one before CI does.
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements) -> set[str]:
    """Distribution names of requirement strings, normalised (PEP 503)."""
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", r).group(0)).lower() for r in requirements}


INSTALLED = names(PROJECT["dependencies"]) | names(PROJECT["optional-dependencies"]["test"])
#: extras the suite does not need: the peer libraries of benchmarks/compare_pythae.py (its test skips, saying so)
NOT_TESTED = {"bench"}


def test_every_optional_extra_the_suite_exercises_is_in_test():
    """The trackers, the sweep engine, the flows and PyOD are tested against the real packages,
    so `.[test]` holds each of those extras' packages."""
    for extra, requirements in PROJECT["optional-dependencies"].items():
        if extra in NOT_TESTED | {"test"}:
            continue
        assert names(requirements) <= INSTALLED, f"extra {extra!r} is not in .[test]: {requirements}"


def test_every_package_a_test_imports_is_installed_by_test():
    """Each third-party module a test file imports (at the top, inside a function, or through
    pytest.importorskip of an extra outside the test set) comes from a declared dependency."""
    dists = importlib.metadata.packages_distributions()
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"vaekit", "tests"}
    skipped_ok = names(r for extra in NOT_TESTED for r in PROJECT["optional-dependencies"][extra])
    missing = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules.add(node.module.split(".")[0])
        for module in modules - local - set(sys.stdlib_module_names):
            providers = names(dists.get(module, [module]))
            if not providers & (INSTALLED | skipped_ok):
                missing.setdefault(module, []).append(path.name)
    assert not missing, f"imported by tests but not installed by .[test]: {missing}"


def test_ci_runs_the_readme_test_command_verbatim_then_lint_and_docs():
    """`.ci/run` runs README's one-line test command as written (so README's command is what CI
    proves), then the lint and type checks and the strict docs build."""
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(
        r"^pip install torch==\S+ && pip install -e \"\.\[test\]\" && python3 -m pytest -q -n 2 --dist worksteal$",
        readme,
        re.M,
    )
    assert len(commands) == 1, "README has exactly one test command line"
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert commands[0] in ci
    after = ci[ci.index(commands[0]) :]
    assert "bash .ci/lint" in after and any("mkdocs build --strict" in line for line in after)
