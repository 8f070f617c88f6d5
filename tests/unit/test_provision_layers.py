"""provision/ decides and acts, it never prints: no rich, no typer, no command modules.
Its progress goes through orchestrator/provision/progress.py, rendered by the command."""

import ast
from pathlib import Path

import pytest

PROVISION = Path(__file__).resolve().parents[2] / "orchestrator" / "provision"
FORBIDDEN = ("rich", "typer", "orchestrator.commands", "orchestrator.output", "orchestrator.cli")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("path", sorted(PROVISION.glob("*.py")), ids=lambda p: p.name)
def test_provision_modules_import_no_ui(path):
    bad = [m for m in _imports(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"{path.name} imports {bad}"
