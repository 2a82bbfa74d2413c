"""The phoneconfig probe over real HTTP: against the lab's TFTP service (its files follow the
SNMP phone table) and against an independent server (python -m http.server) serving files
in CUCM's format from a temp directory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from exporter.config import ExporterConfig, parse_config
from exporter.lab import Lab
from exporter.lab.tftp import ConfigFault, DirectoryMode
from exporter.lab.tls import unused_port
from exporter.probes import ProbeRunner
from exporter.probes.cnfxml import BUILTIN_DIRECTORY
from exporter.probes.phoneconfig import (
    ConfigReason,
    PhoneConfigEntry,
    PhoneConfigProbe,
    PhoneConfigProbeResult,
    TftpOutcome,
)
from exporter.probes.spec import Target
from exporter.results import PhoneRow, ProbeRun
from exporter.store import ResultStore as Store
from exporter.timing import Deadline
from tests.test_daemon import wait_for


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


def lab_config(lab: Lab, pub_tftp_port: int | None = None, **phoneconfig: Any) -> ExporterConfig:
    data = lab.exporter_config(interval=30.0, timeout=20.0)
    if pub_tftp_port is not None:
        data["clusters"][0]["nodes"][0]["port_map"][6970] = pub_tftp_port
    data["probes"]["phoneconfig"] = {
        "enabled": True,
        "interval": "30s",
        "timeout": "20s",
        "jitter": "0s",
        "request_timeout": "2s",
        **phoneconfig,
    }
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


class Poller:
    """The snmp probe on every node, then phoneconfig on every node, through one runner."""

    made: ClassVar[list[Poller]] = []

    def __init__(self) -> None:
        self.store = Store()
        self.runner = ProbeRunner(latest=self.store.snapshot)
        Poller.made.append(self)

    async def poll(self, config: ExporterConfig) -> dict[str, PhoneConfigProbeResult]:
        cluster = config.clusters[0]
        for node in cluster.nodes:
            self.store.put(await self.runner.run(config, cluster, node, "snmp"))
        results = {}
        for node in cluster.nodes:
            run = await self.runner.run(config, cluster, node, "phoneconfig")
            self.store.put(run)
            assert isinstance(run.result, PhoneConfigProbeResult), run.reason
            results[node.name] = run.result
        return results


@pytest.fixture(autouse=True)
async def close_pollers() -> AsyncIterator[None]:
    yield
    while Poller.made:
        await Poller.made.pop().runner.aclose()


def merged(results: dict[str, PhoneConfigProbeResult]) -> dict[str, PhoneConfigEntry]:
    phones: dict[str, PhoneConfigEntry] = {}
    for result in results.values():
        assert not phones.keys() & result.phones.keys()  # each file is read from one node
        phones.update(result.phones)
    return phones


def registered_sep(lab: Lab) -> dict[str, str]:
    return {
        p.name: node
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.status == "registered" and p.name.startswith("SEP")
    }


async def test_every_registered_phone_is_read_once_from_one_tftp_node(lab: Lab) -> None:
    poller = Poller()
    results = await poller.poll(lab_config(lab))
    phones = merged(results)
    truth = registered_sep(lab)
    assert phones.keys() == truth.keys()
    assert all(result.outcome is TftpOutcome.OK for result in results.values())
    assert {entry.reason for entry in phones.values()} == {ConfigReason.OK}
    files = lab.config_files()
    loads = {p.name: p.active_load for n in ("cucm-pub", "cucm-sub1") for p in lab.phones(n)}
    for name, entry in phones.items():
        config = entry.config
        assert config is not None
        node = truth[name]
        assert config.cm_group[0] == f"{node}.lab.test"
        assert config.tvs == config.cm_group
        assert config.load == loads[name]
        mode = files.settings(name).directory
        assert BUILTIN_DIRECTORY in config.directory_services
        has_service = f"http://{node}.lab.test:8080/ccmcip/xmldirectoryinput.jsp"
        assert (has_service in config.directory_services) is (mode is DirectoryMode.HTTP_SERVICE)
        assert (config.secure_directory_url == "") is (mode is DirectoryMode.HTTP_URL)
        assert config.directory_url == f"http://{node}.lab.test:8080/ccmcip/xmldirectory.jsp"


async def test_an_unchanged_cluster_costs_the_cache_list_only(lab: Lab) -> None:
    poller = Poller()
    config = lab_config(lab)
    await poller.poll(config)
    files = lab.config_files()
    before = files.requests
    again = await poller.poll(config)
    assert files.requests == before  # counted by the server: no file was asked for
    assert all(r.requests == 1 for r in again.values())  # ConfigFileCacheList.txt, once a node
    assert all(r.fetched == 0 for r in again.values())


async def test_the_full_pass_skips_what_the_cache_list_shows_unchanged(lab: Lab) -> None:
    poller = Poller()
    config = lab_config(lab, refresh="1ms")
    first = await poller.poll(config)
    total = sum(len(r.phones) for r in first.values())
    await asyncio.sleep(0.01)
    again = await poller.poll(config)
    assert sum(r.unchanged_in_list for r in again.values()) == total
    assert sum(r.fetched for r in again.values()) == 0


async def test_without_the_cache_list_the_full_pass_asks_conditionally(lab: Lab) -> None:
    poller = Poller()
    config = lab_config(lab, refresh="1ms", use_cache_list=False)
    first = await poller.poll(config)
    total = sum(len(r.phones) for r in first.values())
    files = lab.config_files()
    before = files.not_modified
    await asyncio.sleep(0.01)
    again = await poller.poll(config)
    assert sum(r.not_modified for r in again.values()) == total
    assert files.not_modified - before == total  # the server answered 304 each time
    assert sum(r.bytes for r in again.values()) == 0


async def test_a_changed_file_or_a_changed_registration_is_fetched_again(lab: Lab) -> None:
    poller = Poller()
    config = lab_config(lab)
    await poller.poll(config)
    files = lab.config_files()
    phone = next(p.name for p in lab.phones("cucm-pub") if p.product == "Cisco 7942")
    files.configure(phone, directory=DirectoryMode.HTTP_SERVICE)
    try:
        changed = merged(await poller.poll(config))[phone].config
        assert changed is not None
        assert any("8080/ccmcip/xmldirectoryinput" in u for u in changed.directory_services)
    finally:
        files.configure(phone, directory=DirectoryMode.SECURE)
    moved = next(p.name for p in lab.phones("cucm-pub") if p.product == "Cisco 7841")
    lab.move_phone(moved, "cucm-sub1")
    try:
        results = await poller.poll(config)
        assert sum(r.fetched for r in results.values()) == 2  # the reverted one and the mover
        entry = merged(results)[moved]
        assert entry.config is not None
        assert entry.config.cm_group[0] == "cucm-sub1.lab.test"
    finally:
        lab.move_phone(moved, "cucm-pub")


async def test_every_bad_file_is_a_reason_within_the_deadline(lab: Lab) -> None:
    files = lab.config_files()
    phones = [p.name for p in lab.phones("cucm-sub1") if p.product in ("Cisco 7841", "Cisco 8845")]
    faults = {
        ConfigFault.MISSING: ConfigReason.MISSING,
        ConfigFault.ENCRYPTED: ConfigReason.ENCRYPTED,
        ConfigFault.MALFORMED: ConfigReason.MALFORMED,
        ConfigFault.OVERSIZED: ConfigReason.OVERSIZED,
        ConfigFault.ENTITY_BOMB: ConfigReason.UNSAFE,
        ConfigFault.TRICKLE: ConfigReason.TIMEOUT,
    }
    chosen = dict(zip(phones, faults, strict=False))
    for name, fault in chosen.items():
        files.configure(name, fault=fault)
    try:
        for use_list in (True, False):
            poller = Poller()
            started = time.monotonic()
            results = await poller.poll(lab_config(lab, use_cache_list=use_list))
            assert time.monotonic() - started < 2 * 20  # two runs, each within its deadline
            phones_now = merged(results)
            for name, fault in chosen.items():
                assert phones_now[name].reason is faults[fault], (name, fault, use_list)
                assert phones_now[name].config is None
            assert any(r.outcome is TftpOutcome.PARTIAL for r in results.values())
    finally:
        for name in chosen:
            files.configure(name, fault=ConfigFault.NONE)


async def test_only_the_configured_tftp_nodes_are_asked(lab: Lab) -> None:
    poller = Poller()
    results = await poller.poll(lab_config(lab, tftp_nodes=["cucm-pub"]))
    assert results["cucm-sub1"].outcome is TftpOutcome.NOT_TFTP
    assert results["cucm-pub"].phones.keys() == registered_sep(lab).keys()


async def test_an_unreachable_tftp_node_is_classified(lab: Lab) -> None:
    results = await Poller().poll(lab_config(lab, pub_tftp_port=unused_port()))
    assert results["cucm-pub"].outcome is TftpOutcome.UNREACHABLE
    assert {e.reason for e in results["cucm-pub"].phones.values()} == {ConfigReason.UNREACHABLE}


# --- an independent server: python -m http.server over files written in CUCM's format ------

# Written by hand after the layout of a CUCM 12.5 capture (acaeti/friendly-waldo), abridged,
# with the undeclared xsi: prefix real files carry; not produced by the lab.
REAL_FORMAT = """<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="94" uuid="{{6a2c1e41-54d6-f0c9-2b8f-4c1f0b1d2e3a}}">
<fullConfig>true</fullConfig>
<deviceProtocol>SCCP</deviceProtocol>
<devicePool uuid="{{1b1b9eb6-7803-11d3-bdf0-00108302ead1}}">
<revertPriority>0</revertPriority>
<name>HQ</name>
<callManagerGroup>
<name>HQ-Group</name>
<tftpDefault>true</tftpDefault>
<members>
<member priority="1">
<callManager>
<name>cucm-sub1</name>
<ports><ethernetPhonePort>2000</ethernetPhonePort></ports>
<processNodeName>10.1.1.12</processNodeName>
</callManager>
</member>
<member priority="0">
<callManager>
<name>cucm-sub2</name>
<ports><ethernetPhonePort>2000</ethernetPhonePort></ports>
<processNodeName>10.1.1.13</processNodeName>
</callManager>
</member>
</members>
</callManagerGroup>
</devicePool>
<TVS>
<members>
<member priority="0">
<port>2445</port>
<address>10.1.1.11</address>
</member>
</members>
</TVS>
<loadInformation>SCCP42.9-4-2SR4-3S</loadInformation>
<directoryURL>http://10.1.1.13:8080/ccmcip/xmldirectory.jsp</directoryURL>
<secureDirectoryURL>{secure}</secureDirectoryURL>
<phoneServices useHTTPS="true">
<provisioning>0</provisioning>
<phoneService type="1" category="0">
<name>Missed Calls</name>
<url>Application:Cisco/MissedCalls</url>
<vendor></vendor>
<version></version>
</phoneService>
<phoneService type="0" category="0">
<name>Weather</name>
<url>http://10.9.9.9/weather.jsp</url>
</phoneService>
{services}
</phoneServices>
</device>
"""
HTTP_SERVICE = (
    '<phoneService type="1" category="0"><name>Directory (HTTP)</name>'
    "<url>http://10.1.1.13:8080/ccmcip/xmldirectoryinput.jsp</url></phoneService>"
)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = unused_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _listening(port), 10, "http.server")
        yield port, tmp_path
    finally:
        server.terminate()
        server.wait(timeout=10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def peer_target(port: int, phones: list[str], **settings: Any) -> Target:
    config = parse_config(
        yaml.safe_dump(
            {
                "probes": {"phoneconfig": {"enabled": True, "request_timeout": "2s", **settings}},
                "clusters": [
                    {
                        "name": "peer",
                        "nodes": [{"name": "tftp", "host": "127.0.0.1", "port_map": {6970: port}}],
                    }
                ],
            }
        ),
        base_dir=Path.cwd(),
    )
    cluster = config.clusters[0]
    rows = [PhoneRow(name, "registered", "Cisco 7962", "SCCP42.9-4-2SR4-3S") for name in phones]
    run = ProbeRun("peer", "tftp", "inventory", 0.0, 0.0, True, "ok", result=Rows(tuple(rows)))
    return Target(config, cluster, cluster.nodes[0], config.probes.phoneconfig, {run_key(run): run})


def run_key(run: ProbeRun) -> tuple[str, str, str]:
    return (run.cluster, run.node, run.probe)


@dataclass(frozen=True)
class Rows:
    """An inventory result as the peer test hands it over (the rows are the input here)."""

    rows: tuple[PhoneRow, ...]
    success: bool = True
    reason: str = "ok"


def rows_of(run: ProbeRun) -> Mapping[str, Sequence[PhoneRow]] | None:
    return {run.node: run.result.rows} if isinstance(run.result, Rows) else None


async def test_an_independent_server_in_the_real_format(http_server: tuple[int, Path]) -> None:
    port, root = http_server
    names = ["SEP00AA00BB0001", "SEP00AA00BB0002", "SEP00AA00BB0003", "SEP00AA00BB0004"]
    secure = "https://10.1.1.13:8443/ccmcip/xmldirectory.jsp"
    (root / f"{names[0]}.cnf.xml").write_text(REAL_FORMAT.format(secure=secure, services=""))
    (root / f"{names[1]}.cnf.xml").write_text(
        REAL_FORMAT.format(secure=secure, services=HTTP_SERVICE)
    )
    (root / f"{names[2]}.cnf.xml.enc.sgn").write_bytes(b"\x01\x02" * 700)
    # names[3]: no file at all. http.server has no ConfigFileCacheList.txt either (404).
    probe = PhoneConfigProbe(rows_of)
    target = peer_target(port, names)
    result = await probe.run(target, Deadline.after(20))
    phones = result.phones
    assert [phones[n].reason for n in names] == [
        ConfigReason.OK,
        ConfigReason.OK,
        ConfigReason.ENCRYPTED,
        ConfigReason.MISSING,
    ]
    first = phones[names[0]].config
    assert first is not None
    assert first.cm_group == ("10.1.1.13", "10.1.1.12")  # by priority, not file order
    assert first.tvs == ("10.1.1.11",)
    assert first.secure_directory_url == secure
    assert first.directory_services == ()  # Missed Calls and Weather are no directory
    second = phones[names[1]].config
    assert second is not None
    assert second.directory_services == ("http://10.1.1.13:8080/ccmcip/xmldirectoryinput.jsp",)
    # A full pass without a cache list: If-Modified-Since (http.server sends no ETag) -> 304.
    again_target = peer_target(port, names, refresh="1ms")
    await asyncio.sleep(0.01)
    again = await probe.run(again_target, Deadline.after(20))
    assert again.not_modified == 2
    assert again.fetched == 0
    assert again.phones[names[1]].config == second
