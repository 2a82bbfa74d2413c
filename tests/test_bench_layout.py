"""bench/ reaches the exporter (and its lab) through bench/exporter_api.py alone, so a refactor
of the product touches one benchmark file."""

from __future__ import annotations

import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
GATEWAY = BENCH / "exporter_api.py"


IMPORT = re.compile(
    r"^\s*(?:from\s+(exporter(?:\.[\w.]+)?)\s+import|import\s+(exporter(?:\.[\w.]+)?))\b", re.M
)


def exporter_imports(path: Path) -> list[str]:
    """The `exporter...` modules `path` imports, at any indentation. (Read as text: ast.parse
    trips CPython 3.11.7's recursion check after the asyncio tests of this suite.)"""
    return [a or b for a, b in IMPORT.findall(path.read_text())]


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
