"""The SNMP probe over real UDP: against the lab's agent and against net-snmp's snmpd."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from exporter.config import NodeConfig, SnmpCredentials, SnmpProbeConfig
from exporter.lab import Lab
from exporter.lab.cluster import LAB_COMMUNITY
from exporter.lab.snmp import STATUS_CODES, AgentFault, generate_phones
from exporter.probes.snmp import SnmpProbe
from exporter.results import SnmpOutcome, SnmpProbeResult
from exporter.timing import Deadline

SETTINGS = SnmpProbeConfig(interval=60, timeout=10, request_timeout=1, retries=0, max_repetitions=5)
V2C = SnmpCredentials(version="2c", community=SecretStr(LAB_COMMUNITY))


@pytest.fixture(scope="module")
def snmp_lab() -> Iterator[Lab]:
    with Lab({"snmp": ("pub", "sub")}, restart_downtime=0.0) as lab:
        yield lab


@pytest.fixture
def own_lab() -> Iterator[Lab]:
    """A lab for one test: for tests whose premise is the lab's initial state, or that change
    it for good (the module's lab is shared, in whatever order the tests run)."""
    with Lab({"snmp": ("pub", "sub")}, restart_downtime=0.0) as lab:
        yield lab


def lab_node(lab: Lab, name: str, credentials: SnmpCredentials = V2C) -> NodeConfig:
    state = lab.node(name)
    return NodeConfig(
        name=name, host=state.address, port_map={161: state.ports[161]}, snmp=credentials
    )


@pytest.fixture
async def probe() -> AsyncIterator[SnmpProbe]:
    """A probe whose engine sockets are closed with the test's event loop."""
    created = SnmpProbe()
    yield created
    await created.aclose()


async def poll(probe: SnmpProbe, node: NodeConfig, seconds: float = 10) -> SnmpProbeResult:
    return await probe(node, SETTINGS, Deadline.after(seconds))


def by_model_and_status(result: SnmpProbeResult) -> Counter[tuple[str, str]]:
    return Counter((p.product, p.status) for p in result.phones or ())


# --- against the lab agent ---------------------------------------------------------------


async def test_inventory_matches_the_agent_table(snmp_lab: Lab, probe: SnmpProbe) -> None:
    result = await poll(probe, lab_node(snmp_lab, "sub"))
    assert result.outcome is SnmpOutcome.OK, result.detail
    truth = snmp_lab.phones("sub")
    assert by_model_and_status(result) == Counter((p.product, p.status) for p in truth)
    assert {p.name: p.active_load for p in result.phones or ()} == {
        p.name: p.active_load for p in truth
    }
    scalars = result.scalars
    assert scalars is not None
    assert scalars.registered == sum(p.status == "registered" for p in truth)
    assert scalars.unregistered == sum(p.status == "unregistered" for p in truth) == 2
    assert abs(scalars.boot_time - time.time()) < 3600  # the lab booted just now
    assert scalars.callmanager_start is not None


async def test_an_unchanged_table_costs_only_the_scalar_request(
    snmp_lab: Lab, probe: SnmpProbe
) -> None:
    node = lab_node(snmp_lab, "pub")
    first = await poll(probe, node)
    assert first.walked
    assert first.requests > 1
    before = snmp_lab.snmp_requests("pub")
    second = await poll(probe, node)
    assert not second.walked
    assert second.requests == 1
    assert snmp_lab.snmp_requests("pub") - before == 1  # counted by the agent itself
    assert second.phones == first.phones

    # A phone registering bumps ccmPhoneTableStateId: the next poll walks again.
    added = snmp_lab.add_phones("pub", "Cisco 7962", "SCCP42.9-4-2SR3-1S", 3)
    third = await poll(probe, node)
    assert third.walked
    names = {p.name for p in third.phones or ()}
    assert set(added) <= names


async def test_a_restart_forces_a_walk_even_if_the_state_id_repeats(
    own_lab: Lab, probe: SnmpProbe
) -> None:
    node = lab_node(own_lab, "pub")
    first = await poll(probe, node)
    assert first.walked
    own_lab.set_tls_policy("pub", "1.0", "1.2")  # the node restarts: state id back to 0
    second = await poll(probe, node)
    assert first.scalars is not None
    assert second.scalars is not None
    # The premise: the state id alone says "nothing changed"; only the start time tells.
    assert second.scalars.state_id == first.scalars.state_id
    assert second.walked
    assert second.scalars.callmanager_start != first.scalars.callmanager_start
    assert second.scalars.boot_time >= first.scalars.boot_time


async def test_moving_a_phone_is_followed(own_lab: Lab, probe: SnmpProbe) -> None:
    # A lab of its own: moving back leaves an unregistered row behind on "sub" for good.
    mover = own_lab.phones("pub")[5].name
    own_lab.move_phone(mover, "sub")
    pub = await poll(probe, lab_node(own_lab, "pub"))
    sub = await poll(probe, lab_node(own_lab, "sub"))
    assert {p.status for p in pub.phones or () if p.name == mover} == {"unregistered"}
    assert {p.status for p in sub.phones or () if p.name == mover} == {"registered"}


async def test_a_wrong_community_is_a_timeout(snmp_lab: Lab, probe: SnmpProbe) -> None:
    wrong = SnmpCredentials(version="2c", community=SecretStr("not-the-community"))
    result = await poll(probe, lab_node(snmp_lab, "pub", wrong))
    assert result.outcome is SnmpOutcome.TIMEOUT
    assert "not-the-community" not in result.detail


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (AgentFault.SILENT, SnmpOutcome.TIMEOUT),
        (AgentFault.GARBAGE, SnmpOutcome.TIMEOUT),  # undecodable answers are dropped, then time out
        (AgentFault.NON_INCREASING, SnmpOutcome.NON_INCREASING),
    ],
)
async def test_a_broken_agent_is_a_classified_failure(
    snmp_lab: Lab, probe: SnmpProbe, fault: AgentFault, outcome: SnmpOutcome
) -> None:
    node = lab_node(snmp_lab, "sub")
    if fault is AgentFault.NON_INCREASING:
        # The scalars come first; the fault shows in the walk, so give it a table to walk.
        snmp_lab.add_phones("sub", "Cisco 7942", "SIP42.9-4-2SR3-1S", 1)
    snmp_lab.set_snmp_fault("sub", fault)
    try:
        started = time.monotonic()
        result = await probe(node, SETTINGS, Deadline.after(3))
        elapsed = time.monotonic() - started
    finally:
        snmp_lab.set_snmp_fault("sub", AgentFault.NONE)
    assert result.outcome is outcome, result.detail
    assert elapsed < 3 + 0.5  # within the probe's deadline


def target_addresses(probe: SnmpProbe) -> int:
    """Rows in the SNMP-TARGET-MIB of every engine the probe holds."""
    rows = 0
    for engine in probe._engines.values():  # white box: the rows are pysnmp's, not ours
        (status,) = engine.get_mib_builder().import_symbols(
            "SNMP-TARGET-MIB", "snmpTargetAddrRowStatus"
        )
        rows += len(status._vars)
    return rows


async def test_a_node_holds_no_target_in_the_engine_between_polls(
    snmp_lab: Lab, probe: SnmpProbe
) -> None:
    # Each target row is ~18 KB of pysnmp objects: at a thousand nodes that is 18 MB held for
    # nothing between polls, so a poll removes its own, however it ends.
    assert (await poll(probe, lab_node(snmp_lab, "pub"))).outcome is SnmpOutcome.OK
    assert (await poll(probe, lab_node(snmp_lab, "sub"))).outcome is SnmpOutcome.OK
    assert target_addresses(probe) == 0
    snmp_lab.set_snmp_fault("sub", AgentFault.SILENT)
    try:
        # Cut short by its deadline with a request (and its retries) still pending.
        cut = await probe(lab_node(snmp_lab, "sub"), SETTINGS.model_copy(update={"retries": 3}),
                          Deadline.after(0.5))  # fmt: skip
    finally:
        snmp_lab.set_snmp_fault("sub", AgentFault.NONE)
    assert cut.outcome is SnmpOutcome.TIMEOUT
    assert target_addresses(probe) == 0
    await asyncio.sleep(1.5)  # the pending request's retries run out without its target
    again = await poll(probe, lab_node(snmp_lab, "sub"))
    assert again.outcome is SnmpOutcome.OK, again.detail
    assert target_addresses(probe) == 0


# --- against net-snmp's snmpd, an agent that is not ours ---------------------------------

V3_USER, V3_AUTH, V3_PRIV = "exporter", "auth-secret-4b2a", "priv-secret-9c7e"


def snmpd_rows(community_phones: int) -> tuple[list[list[Any]], list[tuple[str, str]]]:
    """CISCO-CCM-MIB rows for snmpd to serve, and the (model, status) of every phone."""
    phones = generate_phones(7)[:community_phones]
    phones[0].status = "unregistered"
    phones[1].status = "rejected"
    products = sorted({p.product for p in phones})
    index = {name: i for i, name in enumerate(products, start=1)}
    ccm = "1.3.6.1.4.1.9.9.156.1"
    rows: list[list[Any]] = [[f"{ccm}.1.8.1.3.{i}", "string", name] for name, i in index.items()]
    for row, phone in enumerate(phones, start=1):
        rows += [
            [f"{ccm}.2.1.1.7.{row}", "integer", STATUS_CODES[phone.status]],
            [f"{ccm}.2.1.1.18.{row}", "gauge", index[phone.product]],
            [f"{ccm}.2.1.1.20.{row}", "string", phone.name],
            [f"{ccm}.2.1.1.25.{row}", "string", phone.active_load or " "],
        ]
    counts = Counter(p.status for p in phones)
    rows += [
        [f"{ccm}.5.5.0", "counter", counts["registered"]],
        [f"{ccm}.5.6.0", "counter", counts["unregistered"]],
        [f"{ccm}.5.7.0", "counter", counts["rejected"]],
        [f"{ccm}.5.20.0", "octet", "07 EA 0B 1C 0C 00 00 00 2B 00 00"],
        [f"{ccm}.5.21.0", "integer", 42],
        [f"{ccm}.5.31.0", "counter", 0],
    ]
    return rows, [(p.product, p.status) for p in phones]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    binary = shutil.which("snmpd") or (
        "/usr/sbin/snmpd" if os.path.exists("/usr/sbin/snmpd") else None
    )
    assert binary, "snmpd is missing: run scripts/system-deps (Debian package snmpd)"
    directory = tmp_path_factory.mktemp("snmpd")
    rows, phones = snmpd_rows(24)
    (directory / "ccm.json").write_text(json.dumps(rows))
    port = free_udp_port()
    handler = Path(__file__).parent / "agents" / "ccm_pass_persist.py"
    (directory / "snmpd.conf").write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        "rocommunity independent-community 127.0.0.1\n"
        f'createUser {V3_USER} SHA "{V3_AUTH}" AES "{V3_PRIV}"\n'
        f"rouser {V3_USER} priv\n"
        f'createUser sha256user SHA-256 "{V3_AUTH}"\n'
        "rouser sha256user auth\n"
        f"pass_persist .1.3.6.1.4.1.9.9.156 {sys.executable} {handler} {directory / 'ccm.json'}\n"
    )
    log = (directory / "snmpd.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "-f",
            "-Lf",
            str(directory / "snmpd.log"),
            "-C",
            "-c",
            str(directory / "snmpd.conf"),
            "-I",
            "-smux",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(directory / "persist"), "MIBS": ""},
    )
    try:
        deadline = time.monotonic() + 15
        while (
            subprocess.run(
                [
                    "snmpget",
                    "-v2c",
                    "-c",
                    "independent-community",
                    "-t",
                    "0.5",
                    "-r",
                    "0",
                    f"127.0.0.1:{port}",
                    "1.3.6.1.4.1.9.9.156.1.5.21.0",
                ],
                capture_output=True,
            ).returncode
            != 0
        ):
            assert process.poll() is None, (directory / "snmpd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "snmpd did not answer within 15 s"
            time.sleep(0.2)
        yield port, phones
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def snmpd_node(port: int, credentials: SnmpCredentials) -> NodeConfig:
    return NodeConfig(name="independent", host="127.0.0.1", port_map={161: port}, snmp=credentials)


V3 = SnmpCredentials(
    version="3",
    username=V3_USER,
    auth_protocol="SHA",
    auth_password=SecretStr(V3_AUTH),
    priv_protocol="AES",
    priv_password=SecretStr(V3_PRIV),
)


@pytest.mark.parametrize(
    "credentials",
    [
        SnmpCredentials(version="2c", community=SecretStr("independent-community")),
        V3,
        SnmpCredentials(
            version="3",
            username="sha256user",
            auth_protocol="SHA256",
            auth_password=SecretStr(V3_AUTH),
        ),
    ],
    ids=["v2c", "v3-authPriv-SHA-AES", "v3-authNoPriv-SHA256"],
)
async def test_the_independent_agent_gives_the_same_inventory(
    snmpd: tuple[int, list[tuple[str, str]]], probe: SnmpProbe, credentials: SnmpCredentials
) -> None:
    port, phones = snmpd
    result = await poll(probe, snmpd_node(port, credentials))
    assert result.outcome is SnmpOutcome.OK, result.detail
    assert by_model_and_status(result) == Counter(phones)
    assert result.scalars is not None
    assert (result.scalars.registered, result.scalars.unregistered, result.scalars.rejected) == (
        22,
        1,
        1,
    )
    assert result.scalars.state_id == 42
    assert result.scalars.callmanager_start == 1795867200.0  # 2026-11-28 12:00:00 UTC


async def test_a_wrong_v3_key_is_an_auth_error(
    snmpd: tuple[int, list[tuple[str, str]]], probe: SnmpProbe
) -> None:
    port, _ = snmpd
    wrong = V3.model_copy(update={"auth_password": SecretStr("wrong-secret-0000")})
    result = await poll(probe, snmpd_node(port, wrong))
    assert result.outcome is SnmpOutcome.AUTH_ERROR, result.detail
    assert "wrong-secret-0000" not in result.detail
    unknown = V3.model_copy(update={"username": "nobody-here"})
    assert (await poll(probe, snmpd_node(port, unknown))).outcome is SnmpOutcome.AUTH_ERROR
