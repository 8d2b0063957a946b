"""Imports point one way: model/ needs no web stack and no image library, bench/ no test code."""

import ast
import subprocess
import sys

from conftest import REPO


def test_importing_the_model_package_imports_neither_flask_nor_pillow():
    code = ("import sys, model, model.artifact, model.inference, model.recipes, model.trainset, model.feedback, "
            "model.store, model.training; print(sorted(m for m in ('flask', 'PIL', 'service', 'imaging') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path) -> set[str]:
    """Return the top-level packages a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_model_imports_no_service_and_bench_imports_no_tests():
    for path in (REPO / "model").rglob("*.py"):
        assert not _imports(path) & {"service", "imaging", "evaluation", "flask"}, path
    for path in [*(REPO / "bench").rglob("*.py"), *(REPO / "tools").rglob("*.py")]:
        assert "tests" not in _imports(path), path
    for path in (REPO / "imaging").rglob("*.py"):
        assert not _imports(path) & {"service", "flask"}, path
