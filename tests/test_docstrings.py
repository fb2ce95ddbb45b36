"""Every public function, class and method of vaekit has a docstring (its own, or for an override of
torch's the one it inherits): the guide's rule that docstrings give shapes, units, errors and sources
starts with there being one."""

import ast
import importlib
import inspect
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vaekit"


def undocumented(path: Path) -> list[str]:
    module = importlib.import_module(
        ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
    )
    missing = []
    for node in ast.parse(path.read_text()).body:
        if node.name.startswith("_") if hasattr(node, "name") else True:
            continue
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and ast.get_docstring(node) is None:
            missing.append(node.name)
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(module, node.name)
        for item in node.body:
            if not isinstance(item, ast.FunctionDef) or item.name.startswith("_") or ast.get_docstring(item):
                continue
            static = inspect.getattr_static(cls, item.name)
            doc = static.__doc__ if isinstance(static, property) else inspect.getdoc(getattr(cls, item.name))
            if not doc:  # an override of a documented method (torch's forward, log_prob, ...) inherits its docstring
                missing.append(f"{node.name}.{item.name}")
    return [f"{path.relative_to(SRC.parent)}: {name}" for name in missing]


def test_every_public_name_has_a_docstring():
    paths = [p for p in sorted(SRC.rglob("*.py")) if p.name != "__main__.py"]
    missing = [name for path in paths for name in undocumented(path)]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
