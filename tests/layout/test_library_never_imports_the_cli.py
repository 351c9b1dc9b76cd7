"""The library (`salova/`) never imports the CLI (`salova_cli`) or its framework (typer): STYLE.md and the
README's layout. Checked statically on every module's syntax tree (imports inside functions included) and at
run time by importing every module in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.cli_helpers import ROOT, cli_env

FORBIDDEN = ("salova_cli", "typer")


def _forbidden(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] in FORBIDDEN


def cli_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import of the CLI or typer, including importlib/__import__ with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _forbidden(node.module):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and _forbidden(str(node.args[0].value)):
                found.append((node.lineno, node.args[0].value))
    return found


def test_no_library_module_imports_the_cli():
    files = sorted((ROOT / "salova").rglob("*.py"))
    assert len(files) > 30
    found = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in files
             for line, name in cli_imports(ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))]
    assert found == []


def test_the_scan_finds_every_form_of_import():
    code = """
import typer
import salova_cli.main as m
from salova_cli.common import index_dir
from typer.testing import CliRunner
def f():
    import salova_cli
    importlib.import_module("salova_cli.ask_cmd")
    __import__("typer")
from . import typer_like  # relative: the library's own module
import typer_extras  # another package
"""
    assert [name for _, name in cli_imports(ast.parse(code))] == [
        "typer", "salova_cli.main", "salova_cli.common", "typer.testing", "salova_cli", "salova_cli.ask_cmd", "typer",
    ]


def test_importing_every_library_module_loads_no_cli():
    code = """
import importlib, pkgutil, sys
import salova
names = [m.name for m in pkgutil.walk_packages(salova.__path__, "salova.")]
OPTIONAL = {"salova.eval.lmms_plugin"}  # imports lmms-eval, an optional dependency, by design
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if name not in OPTIONAL:
            raise
loaded = sorted(k for k in sys.modules if k.split(".")[0] in ("salova_cli", "typer"))
print(len(names), loaded)
"""
    run = subprocess.run([sys.executable, "-c", code], env=cli_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    count, loaded = run.stdout.strip().split(" ", 1)
    assert int(count) > 30 and loaded == "[]"
