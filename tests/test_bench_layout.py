"""bench/ reaches the exporter (and its lab) through bench/exporter_api.py alone, so a refactor
of the product touches one benchmark file."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
GATEWAY = BENCH / "exporter_api.py"


def exporter_imports(path: Path) -> list[str]:
    """The `exporter...` modules `path` imports, at any depth of its tree."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names if name == "exporter" or name.startswith("exporter.")]
    return found


def test_only_the_gateway_imports_the_exporter() -> None:
    offenders = {
        str(path.relative_to(BENCH)): imports
        for path in sorted(BENCH.rglob("*.py"))
        if path != GATEWAY and (imports := exporter_imports(path))
    }
    assert offenders == {}


def test_the_gateway_does_import_the_exporter(tmp_path: Path) -> None:
    # The check above would pass on an empty tree: make sure it sees an import when there is one.
    assert exporter_imports(GATEWAY)
    stray = tmp_path / "stray.py"
    stray.write_text("def f() -> None:\n    from exporter.lab import Lab\n")
    assert exporter_imports(stray) == ["exporter.lab"]
