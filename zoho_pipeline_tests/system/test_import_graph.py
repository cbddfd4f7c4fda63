"""The layers of design.md, kept by walking every module's imports (the AST, so lazy imports inside functions
count too): `cli → defs → monitor → sync → {source, zoho}`, each layer importing only the ones below it; `source`
and `zoho` never each other; `emulator` nothing of ours; `dagster` only in `defs/`, `cli/` and definitions.py; the
environment read only in env.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "zoho_pipeline"
# layer → rank; a module may import a layer of lower rank, or its own. Equal ranks of different layers are
# siblings that must not import each other.
RANK = {"env": -1, "zoho": 0, "source": 0, "sync": 1, "monitor": 2, "defs": 3, "definitions": 3.5, "cli": 4}
DAGSTER_LAYERS = {"defs", "definitions", "cli"}


def layer_of(module: str) -> str:
    """`zoho_pipeline.monitor.health` → `monitor`; `zoho_pipeline.definitions` → `definitions`."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    """`zoho_pipeline/sync/entities/__init__.py` → `zoho_pipeline.sync.entities.__init__` (so relative imports
    resolve against the package itself)."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import, relative ones resolved."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join(package + ([base] if base else []))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines reading the environment directly: os.environ, os.getenv, `from os import environ|getenv`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "getenv") for a in node.names):
                lines.append(node.lineno)
    return lines


def violations(source: str, module: str) -> list[str]:
    """What `module` (its text `source`) does against the layer rules."""
    tree = ast.parse(source)
    layer = layer_of(module) if module.count(".") > 1 or not module.endswith("__init__") else "package"
    found = []
    for line, target in imports(tree, module):
        where = f"{module}:{line} imports {target}"
        if target.split(".")[0] == "dagster" and layer not in DAGSTER_LAYERS:
            found.append(f"{where}: dagster is imported only in defs/, cli/ and definitions.py")
        if not target.startswith("zoho_pipeline.") or target.count(".") < 1:
            continue
        other = layer_of(target)
        if layer == "emulator":
            if other != "emulator":
                found.append(f"{where}: the emulator imports nothing of ours")
        elif other == "emulator":
            if layer not in ("cli",):  # the CLI runs it; nothing else links against it
                found.append(f"{where}: only the CLI starts the emulator")
        elif other != layer and layer in RANK and RANK[other] >= RANK[layer]:
            found.append(
                f"{where}: {layer} may import only the layers below it (cli → defs → monitor → sync → {{source, zoho}})"
            )
    if module != "zoho_pipeline.env":
        found += [f"{module}:{line} reads the environment: use zoho_pipeline.env" for line in environment_reads(tree)]
    return found


def test_every_module_keeps_the_layers():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    problems = [v for path in modules for v in violations(path.read_text(), module_name(path))]
    assert problems == []


@pytest.mark.parametrize(
    "module, source, broken",
    [
        ("zoho_pipeline.sync.engine", "from zoho_pipeline.monitor import queries", "may import only the layers below"),
        ("zoho_pipeline.monitor.health", "import dagster as dg", "dagster is imported only"),
        ("zoho_pipeline.defs.checks", "def f():\n    from zoho_pipeline.cli import common", "may import only"),
        ("zoho_pipeline.zoho.client", "from zoho_pipeline.source import tables", "may import only"),
        ("zoho_pipeline.source.demo", "from zoho_pipeline.zoho.errors import ZohoError", "may import only"),
        ("zoho_pipeline.emulator.server", "from zoho_pipeline.zoho import config", "imports nothing of ours"),
        ("zoho_pipeline.emulator.server", "from zoho_pipeline import env", "imports nothing of ours"),
        ("zoho_pipeline.monitor.alerts", "import os\nx = os.environ.get('X')", "reads the environment"),
        ("zoho_pipeline.cli.sync", "from os import getenv", "reads the environment"),
    ],
)
def test_a_broken_rule_is_named(module, source, broken):
    """The walk sees each kind of break (so the test above can fail)."""
    found = violations(source, module)
    assert found and broken in found[0], found
