"""Dependencies point one way (DESIGN.md): a module may import only from layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import exporter

PACKAGE = Path(exporter.__file__).parent

# Lower number = lower layer. A module may import its own layer's peers only where listed.
# Fractions order the modules of one package (exporter.config) below the layer above it.
LAYERS: dict[str, float] = {
    "exporter": 0,
    "exporter.phonetable": -1,  # a data structure below the results that carry it
    "exporter.results": 0,
    "exporter.timing": 0,
    "exporter.version": 0,
    "exporter.config.base": 0.1,
    "exporter.config.types": 0.2,
    "exporter.config.secrets": 0.2,
    "exporter.config.credentials": 0.3,
    "exporter.config.probes": 0.3,
    "exporter.config.catalogue": 0.3,
    "exporter.config.targets": 0.4,
    "exporter.config.model": 0.5,
    "exporter.config.load": 0.6,
    "exporter.config": 1,
    "exporter.catalogue": 2,
    "exporter.webconfig": 2,
    "exporter.basicauth": 2,
    "exporter.state": 2,
    "exporter.store": 2,
    "exporter.probes.headcap": 2,
    "exporter.probes.phonexml": 2,
    "exporter.probes.heap": 0,
    "exporter.probes.snmp_session": 2,
    "exporter.probes.snmp": 3,
    "exporter.probes.tlswire": 0,
    "exporter.probes.tlsexchange": 1,
    "exporter.probes.tlsclassify": 1,
    "exporter.probes.cnfxml": 2,
    "exporter.probes.canonical": 0,
    "exporter.probes.targetview": 2,
    "exporter.probes.phoneconfig_result": 2.5,
    "exporter.probes.tftp_http": 2.7,
    "exporter.probes.phoneconfig_pass": 2.9,
    "exporter.probes.phoneconfig": 3,
    "exporter.probes.tls": 2,
    "exporter.probes.risport_result": 1,
    "exporter.inventory_compare": 1,
    "exporter.probes.risport_budget": 1,
    "exporter.probes.risport_soap": 2,
    "exporter.probes.risport": 4,
    "exporter.probes.directory": 3,
    "exporter.probes.spec": 4,
    "exporter.probes.describe": 4,
    "exporter.probes.builtin": 5,
    "exporter.probes.runner": 6,
    "exporter.probes": 7,
    "exporter.perphone": 7,
    "exporter.impact": 8,
    "exporter.phone_summaries": 8.5,
    "exporter.report.model": 9,
    "exporter.report.verdict": 10,
    "exporter.report.render": 10,
    "exporter.report.basis": 10,
    "exporter.report.phones": 10,
    "exporter.report.build": 11,
    "exporter.report": 12,
    "exporter.metrics.freshness": 9,
    "exporter.metrics.probe": 9,
    "exporter.metrics.gauges": 9.5,
    "exporter.metrics.tls": 10,
    "exporter.metrics.directory": 10,
    "exporter.metrics.snmp": 10,
    "exporter.metrics.risport": 10,
    "exporter.metrics.phones": 10,
    "exporter.metrics.nodes": 10,
    "exporter.metrics.selfmetrics": 10,
    "exporter.metrics.frontdoor": 10,
    "exporter.metrics": 11,
    "exporter.metrics.collector": 12,
    "exporter.metrics.exposition": 13,
    "exporter.scheduler": 12,
    "exporter.probegate": 2,
    "exporter.ondemand": 12,
    "exporter.probedebug": 13,
    "exporter.server": 14,
    "exporter.logsetup": 0,
    "exporter.runbook": 0,
    "exporter.frontdoor": 1,
    "exporter.check": 14,
    "exporter.daemon": 15,
    "exporter.healthcheck": 15,
    "exporter.flagvalues": 15,
    "exporter.demo": 16,
    "exporter.cli": 17,
    "exporter.__main__": 18,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "exporter" or name.startswith("exporter.")}


def layer_of(module: str) -> float:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in modules():
        name = module_name(path)
        if not name.startswith("exporter.lab"):
            assert name in LAYERS, f"{name} has no layer in tests/test_layers.py"


def test_no_module_imports_upward() -> None:
    upward = []
    for path in modules():
        name = module_name(path)
        if name.startswith("exporter.lab"):
            continue
        for imported in imports_of(path):
            if imported.startswith("exporter.lab"):
                if name not in ("exporter.demo", "exporter.__main__", "exporter.cli"):
                    upward.append(f"{name} -> {imported} (only the CLI and demo start the lab)")
            elif imported != "exporter" and layer_of(imported) >= layer_of(name):
                upward.append(f"{name} -> {imported}")
    assert upward == []


def test_the_lab_imports_nothing_from_the_exporter() -> None:
    """The lab plays the network; it must not share the exporter's assumptions."""
    leaks = [
        f"{module_name(path)} -> {imported}"
        for path in modules()
        if module_name(path).startswith("exporter.lab")
        for imported in imports_of(path)
        if not imported.startswith("exporter.lab")
    ]
    assert leaks == []


def test_the_check_itself_catches_an_upward_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from exporter.server import serve\nimport exporter.cli\n")
    assert imports_of(sneaky) == {"exporter.server", "exporter.cli"}
    assert layer_of("exporter.server") > layer_of("exporter.metrics.collector")


# The lab's TFTP service, one job per module: the files as CUCM renders them, serving them on
# 6970, attaching and steering them. Each may import only the ones listed below it.
LAB_TFTP_LAYERS: dict[str, int] = {
    "exporter.lab.phonefiles": 0,
    "exporter.lab.tftp": 1,
    "exporter.lab.tftp_control": 2,
}


def test_the_lab_tftp_modules_import_one_way() -> None:
    upward = [
        f"{name} -> {imported}"
        for path in modules()
        if (name := module_name(path)) in LAB_TFTP_LAYERS
        for imported in imports_of(path)
        if imported in LAB_TFTP_LAYERS and LAB_TFTP_LAYERS[imported] >= LAB_TFTP_LAYERS[name]
    ]
    assert upward == []
    found = {module_name(p) for p in modules() if module_name(p).startswith("exporter.lab.")}
    assert set(LAB_TFTP_LAYERS) <= found
