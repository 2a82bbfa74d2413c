"""The phoneconfig probe on a cluster whose inventory is RisPort70's alone (`inventory:
risport`): no SNMP poll runs, yet every registered phone's file is read and judged. Against
the lab, which serves RisPort70 and TFTP from one phone table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exporter.catalogue import load_catalogue
from exporter.config import ExporterConfig, parse_config
from exporter.impact import Basis, cluster_phones
from exporter.lab import Lab
from exporter.probes import ProbeRunner
from exporter.probes.phoneconfig import ConfigReason, PhoneConfigEntry, PhoneConfigProbeResult
from exporter.results import ProbeRun
from exporter.store import ResultStore
from tests.conftest import risport_config_data


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


def risport_only(lab: Lab) -> ExporterConfig:
    data = risport_config_data(lab)
    data["probes"]["phoneconfig"] = {
        "enabled": True,
        "interval": "300s",
        "timeout": "30s",
        "jitter": "0s",
        "request_timeout": "2s",
    }
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


async def test_a_risport_only_cluster_gets_per_phone_verdicts(lab: Lab) -> None:
    config = risport_only(lab)
    cluster = config.clusters[0]
    store = ResultStore()
    runner = ProbeRunner(latest=store.snapshot)
    runs: dict[tuple[str, str, str], ProbeRun] = {}
    try:
        # The order of a round (`check`): inventories first, then what reads them.
        for reads in (False, True):
            for node in cluster.nodes:
                for spec in runner.specs.values():
                    if spec.reads_inventory is not reads or not spec.enabled(config):
                        continue
                    if spec.applies_to(cluster, node):
                        run = await runner.run(config, cluster, node, spec.name)
                        store.put(run)
                        runs[(cluster.name, node.name, spec.name)] = run
    finally:
        await runner.aclose()
    probes = {key[2] for key in runs}
    assert "snmp" not in probes
    assert "risport" in probes
    phones: dict[str, PhoneConfigEntry] = {}
    for (_, _, probe), run in runs.items():
        if probe == "phoneconfig":
            assert isinstance(run.result, PhoneConfigProbeResult), run.reason
            phones.update(run.result.phones)
    registered = {
        phone.name
        for _, phone in lab.risport["lab"].devices()
        if phone.status == "registered" and phone.name.startswith("SEP")
    }
    assert registered  # the lab has registered hardware phones
    assert phones.keys() == registered
    assert {entry.reason for entry in phones.values()} == {ConfigReason.OK}
    summary = cluster_phones(
        runs, runner.specs, load_catalogue(config.catalogue), [n.name for n in cluster.nodes]
    )
    on_files = sum(n for (_, on, _), n in summary.basis.items() if on is Basis.CONFIG)
    assert on_files == len(registered)
    assert summary.sources == ("risport",)
