"""/probe's policy (issue 14, finding 3): configured nodes only by default, a flood spends one
probe per target and interval, a cap on probes in flight, and debug text one line per line.
Against the lab over real HTTP; each flood bounded in count."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.config import ExporterConfig, parse_config
from exporter.lab import Lab
from exporter.lab.tls import PortFault
from exporter.metrics.exposition import RegistryBodies
from exporter.ondemand import OnDemandProber
from exporter.probegate import ProbeGate
from exporter.probes import ProbeRunner
from exporter.server import ExporterApp, ListenAddress, serve
from exporter.state import ExporterState
from exporter.store import ResultStore

FLOOD, AT_ONCE = 300, 50


@pytest.fixture(scope="module")
def policy_lab() -> Iterator[Lab]:
    with Lab({"pol": ("a", "b", "c", "d")}, restart_downtime=0.0) as lab:
        yield lab


def config_of(lab: Lab, **probe_endpoint: Any) -> ExporterConfig:
    data = lab.exporter_config(interval=10.0, timeout=3.0)
    data["probe_endpoint"] = probe_endpoint
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


@contextlib.asynccontextmanager
async def serving(
    config: ExporterConfig, store: ResultStore | None = None
) -> AsyncIterator[tuple[aiohttp.ClientSession, str, ProbeGate]]:
    async def no_reload() -> str | None:
        return None

    store = store or ResultStore()
    gate = ProbeGate(latest=store.snapshot)
    prober = OnDemandProber(ExporterState(config, time.time()), ProbeRunner(), gate)
    app = ExporterApp(RegistryBodies(CollectorRegistry()), store, no_reload, prober=prober)
    runner = await serve(app.build(), ListenAddress("127.0.0.1", 0))
    try:
        async with aiohttp.ClientSession() as session:
            yield session, f"http://127.0.0.1:{runner.addresses[0][1]}", gate
    finally:
        await runner.cleanup()
        await ProbeRunner().aclose()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str | None]:
    async with session.get(url) as response:
        return response.status, await response.text(), response.headers.get("Retry-After")


async def test_a_host_that_is_not_configured_is_refused_by_default(policy_lab: Lab) -> None:
    async with serving(config_of(policy_lab)) as (session, base, gate):
        status, text, _ = await _get(session, f"{base}/probe?target=127.0.0.1&module=tls")
    assert status == 403
    assert "allow_adhoc_targets" in text
    assert gate.started == 0


async def test_a_flood_spends_one_probe_per_target_and_interval(policy_lab: Lab) -> None:
    config = config_of(policy_lab, min_interval="10m")  # longer than the test, whatever the load
    url = "/probe?target=a&module=directory"
    async with serving(config) as (session, base, gate):
        before = policy_lab.directory_requests("a")
        status, _, _ = await _get(session, base + url)
        one_walk = policy_lab.directory_requests("a") - before
        assert (status, one_walk > 0) == (200, True)
        for _ in range(FLOOD // AT_ONCE):
            answers = await asyncio.gather(*(_get(session, base + url) for _ in range(AT_ONCE)))
            assert {status for status, _, _ in answers} == {200}
        flooded = policy_lab.directory_requests("a") - before - one_walk
    # Without the policy: FLOOD more walks of the whole chain at the node.
    assert flooded == 0
    assert (gate.started, gate.reused) == (1, FLOOD)


async def test_identical_requests_in_flight_share_one_probe(policy_lab: Lab) -> None:
    config = config_of(policy_lab, min_interval=0)
    url = "/probe?target=b&module=directory"
    async with serving(config) as (session, base, gate):
        before = policy_lab.directory_requests("b")
        answers = await asyncio.gather(*(_get(session, base + url) for _ in range(AT_ONCE)))
        walked = policy_lab.directory_requests("b") - before
    assert {status for status, _, _ in answers} == {200}
    assert gate.started < AT_ONCE
    assert walked <= gate.started * 12  # 3 routes x (menu, input, 2 pages)


async def test_a_fresh_scheduled_result_answers_probe(policy_lab: Lab) -> None:
    config = config_of(policy_lab)
    store = ResultStore()
    cluster = config.clusters[0]
    node = next(n for n in cluster.nodes if n.name == "c")
    store.put(await ProbeRunner().run(config, cluster, node, "directory"))
    async with serving(config, store) as (session, base, gate):
        before = policy_lab.directory_requests("c")
        status, text, _ = await _get(session, f"{base}/probe?target=c&module=directory")
        assert policy_lab.directory_requests("c") == before
    assert status == 200
    assert 'cucm_directory_up{cluster="pol",node="c",route="http"} 1.0' in text
    assert (gate.started, gate.reused) == (0, 1)


async def test_probes_beyond_the_cap_get_503(policy_lab: Lab) -> None:
    nodes = ("a", "b", "c", "d")
    for name in nodes:
        for port in (8443, 2445):
            policy_lab.set_port_fault(name, port, PortFault.STALL)
    try:
        config = config_of(policy_lab, max_concurrent=2, min_interval=0)
        async with serving(config) as (session, base, gate):
            answers = await asyncio.gather(
                *(_get(session, f"{base}/probe?target={name}&module=tls") for name in nodes)
            )
    finally:
        for name in nodes:
            for port in (8443, 2445):
                policy_lab.set_port_fault(name, port, PortFault.NONE)
    assert sorted(status for status, _, _ in answers) == [200, 200, 503, 503]
    assert all(retry for status, _, retry in answers if status == 503)
    assert (gate.started, gate.refused) == (2, 2)


async def test_a_newline_in_an_ipv6_scope_id_stays_on_its_line(policy_lab: Lab) -> None:
    config = config_of(policy_lab, allow_adhoc_targets=True)
    target = "fe80::1%25x%0AInjected: yes"
    async with serving(config) as (session, base, _):
        status, text, _ = await _get(session, f"{base}/probe?target={target}&debug=true")
    # The target is refused as a host (a scope id is an interface name), and the refusal
    # quotes it escaped: no line of the answer starts with what the client injected.
    assert status == 400
    assert "Injected" in text
    assert not any(line.startswith("Injected") for line in text.splitlines())
