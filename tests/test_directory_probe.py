"""The directory probe against the lab's directory service, over real sockets."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import ExporterConfig, parse_config
from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.tls import PortFault, unused_port
from exporter.metrics.collector import CucmCollector
from exporter.probes import ProbeRunner
from exporter.probes.directory import probe_directory
from exporter.results import (
    DirectoryOutcome,
    DirectoryProbeResult,
    DirectoryRoute,
    DirectoryStep,
    RouteResult,
    TlsVersion,
)
from exporter.state import ExporterState
from exporter.store import ResultStore
from exporter.timing import Deadline
from tests.conftest import node_config, promtool_check_metrics

HTTP, HTTPS, LEGACY = DirectoryRoute.HTTP, DirectoryRoute.HTTPS, DirectoryRoute.HTTPS_LEGACY
Outcome = DirectoryOutcome


@pytest.fixture(scope="module")
def dir_lab() -> Iterator[Lab]:
    """A lab of its own: these tests break its directory on purpose."""
    with Lab({"dir": ("node",)}, restart_downtime=0.0) as lab:
        yield lab


@pytest.fixture
def healthy(dir_lab: Lab) -> Iterator[Lab]:
    yield dir_lab
    dir_lab.set_directory_fault("node", DirectoryFault.NONE)
    for port in (8443, 2445):
        dir_lab.set_port_fault("node", port, PortFault.NONE)
    if dir_lab.node("node").min_version != "1.0":
        dir_lab.set_tls_policy("node", "1.0", "1.2")


def config_of(lab: Lab, **directory: Any) -> ExporterConfig:
    data = lab.exporter_config(interval=10.0, timeout=8.0)
    data["probes"]["directory"].update(directory)
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


async def walk(
    lab: Lab, seconds: float = 8.0, **directory: Any
) -> dict[DirectoryRoute, RouteResult]:
    config = config_of(lab, **directory)
    result = await probe_directory(
        node_config(config, "node"), config.probes.directory, Deadline.after(seconds)
    )
    return {r.route: r for r in result.routes}


async def test_a_healthy_node_serves_the_directory_on_every_route(healthy: Lab) -> None:
    routes = await walk(healthy)
    assert set(routes) == {HTTP, HTTPS, LEGACY}
    for route in routes.values():
        assert (route.outcome, route.failed_step, route.status_code) == (Outcome.OK, None, 200)
        # l=a matches 50 users: a full page of 32 and a second of 18, via the Next softkey.
        assert (route.entries, route.pages) == (50, 2)
    assert routes[HTTP].tls_version is None
    assert routes[HTTPS].tls_version is TlsVersion.TLS1_2
    assert routes[LEGACY].tls_version is TlsVersion.TLS1_0


async def test_paging_stops_at_max_pages(healthy: Lab) -> None:
    before = healthy.directory_requests("node")
    routes = await walk(healthy, routes=["http"], max_pages=1)
    assert (routes[HTTP].entries, routes[HTTP].pages) == (32, 1)
    assert healthy.directory_requests("node") - before == 3  # menu, input, one search page


async def test_only_the_configured_query_is_sent(healthy: Lab) -> None:
    routes = await walk(healthy, routes=["http"], query={"l": "ab", "f": "Alice"})
    assert routes[HTTP].entries == 1  # Abbott, Alice


async def test_the_legacy_route_follows_the_node_tls_policy(healthy: Lab) -> None:
    healthy.set_tls_policy("node", "1.2")
    routes = await walk(healthy)
    legacy = routes[LEGACY]
    assert (legacy.outcome, legacy.failed_step) == (Outcome.TLS_VERSION_REJECTED, DirectoryStep.TVS)
    assert "TLSV1_ALERT_PROTOCOL_VERSION" in legacy.detail
    assert routes[HTTP].outcome is Outcome.OK  # the workaround still works
    assert routes[HTTPS].outcome is Outcome.OK
    healthy.set_tls_policy("node", "1.0", "1.2")
    assert (await walk(healthy))[LEGACY].outcome is Outcome.OK


async def test_a_legacy_limit_of_tls_1_1_passes_a_1_1_node(healthy: Lab) -> None:
    healthy.set_tls_policy("node", "1.1", "1.2")
    one_zero = await walk(healthy, routes=["https_legacy"])
    one_one = await walk(healthy, routes=["https_legacy"], legacy_max_version="1.1")
    assert one_zero[LEGACY].outcome is Outcome.TLS_VERSION_REJECTED
    assert one_one[LEGACY].outcome is Outcome.OK
    assert one_one[LEGACY].tls_version is TlsVersion.TLS1_1


@pytest.mark.parametrize(
    ("fault", "outcome", "step", "status"),
    [
        (DirectoryFault.HTTP_500, Outcome.HTTP_ERROR, DirectoryStep.MENU, 500),
        (DirectoryFault.RESET, Outcome.HTTP_ERROR, DirectoryStep.MENU, None),
        (DirectoryFault.HTML_ERROR, Outcome.BAD_CONTENT, DirectoryStep.MENU, 200),
        (DirectoryFault.MALFORMED_XML, Outcome.BAD_CONTENT, DirectoryStep.MENU, 200),
        (DirectoryFault.ENTITY_BOMB, Outcome.BAD_CONTENT, DirectoryStep.MENU, 200),
        (DirectoryFault.EXTERNAL_ENTITY, Outcome.BAD_CONTENT, DirectoryStep.MENU, 200),
        (DirectoryFault.OVERSIZED, Outcome.BAD_CONTENT, DirectoryStep.MENU, 200),
        (DirectoryFault.EMPTY_RESULT, Outcome.EMPTY_RESULT, DirectoryStep.SEARCH, 200),
    ],
)
async def test_every_fault_maps_to_its_class_on_every_route(
    healthy: Lab,
    fault: DirectoryFault,
    outcome: DirectoryOutcome,
    step: DirectoryStep,
    status: int | None,
) -> None:
    healthy.set_directory_fault("node", fault)
    for route in (await walk(healthy)).values():
        assert (route.outcome, route.failed_step, route.status_code) == (outcome, step, status), (
            route.route,
            route.detail,
        )


async def test_an_unresolvable_next_hop_is_off_node_or_a_dns_error_when_allowed(
    healthy: Lab,
) -> None:
    healthy.set_directory_fault("node", DirectoryFault.NEXT_HOP_UNRESOLVABLE)
    for route in (await walk(healthy)).values():
        assert (route.outcome, route.failed_step, route.status_code) == (
            Outcome.NEXT_HOP_OFF_NODE,
            DirectoryStep.INPUT,
            200,
        ), (route.route, route.detail)
    for route in (await walk(healthy, allow_off_node_next_hops=True)).values():
        assert (route.outcome, route.failed_step, route.status_code) == (
            Outcome.DNS_ERROR,
            DirectoryStep.INPUT,
            200,
        ), (route.route, route.detail)


async def test_a_next_hop_to_https_breaks_only_the_http_route(healthy: Lab) -> None:
    healthy.set_directory_fault("node", DirectoryFault.NEXT_HOP_HTTPS)
    routes = await walk(healthy)
    assert (routes[HTTP].outcome, routes[HTTP].failed_step) == (
        Outcome.NEXT_HOP_NOT_HTTP,
        DirectoryStep.INPUT,
    )
    assert "https://" in routes[HTTP].detail
    assert routes[HTTPS].outcome is Outcome.OK
    assert routes[LEGACY].outcome is Outcome.OK


async def test_a_slow_page_times_out_within_the_deadline(healthy: Lab) -> None:
    healthy.set_directory_fault("node", DirectoryFault.SLOW)
    started = time.monotonic()
    routes = await walk(healthy, seconds=2.0, request_timeout="1s")
    elapsed = time.monotonic() - started
    for route in routes.values():
        assert (route.outcome, route.failed_step) == (Outcome.TIMEOUT, DirectoryStep.MENU)
    assert elapsed < 2.0 + 0.5  # the probe's deadline, and a little slack for the loop


async def test_refused_and_broken_tls_are_told_apart(healthy: Lab) -> None:
    config = config_of(healthy)
    node = node_config(config, "node")
    closed = node.model_copy(update={"port_map": {**node.port_map, 8080: unused_port()}})
    refused = await probe_directory(closed, config.probes.directory, Deadline.after(8))
    assert refused.routes[0].outcome is Outcome.REFUSED
    assert not refused.success
    assert refused.reason == "refused"

    healthy.set_port_fault("node", 2445, PortFault.GARBAGE)
    routes = await walk(healthy)
    assert (routes[LEGACY].outcome, routes[LEGACY].failed_step) == (
        Outcome.TLS_ERROR,
        DirectoryStep.TVS,
    )


async def test_hostile_bodies_stay_small_in_memory(healthy: Lab) -> None:
    """An 8 MiB body is cut at the 1 MiB limit; the bomb is refused before any expansion."""
    for fault in (DirectoryFault.OVERSIZED, DirectoryFault.ENTITY_BOMB):
        healthy.set_directory_fault("node", fault)
        tracemalloc.start()
        try:
            routes = await walk(healthy, routes=["http"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert routes[HTTP].outcome is Outcome.BAD_CONTENT
        assert peak < 4 * 1024 * 1024, f"{fault.value}: peak {peak} bytes"


async def test_directory_metrics(healthy: Lab) -> None:
    config = config_of(healthy)
    store = ResultStore()
    registry = CollectorRegistry()
    registry.register(CucmCollector(store, ExporterState(config, time.time())))
    healthy.set_tls_policy("node", "1.2")
    cluster = config.clusters[0]
    store.put(await ProbeRunner().run(config, cluster, cluster.nodes[0], "directory"))

    def value(name: str, route: str, **labels: str) -> float | None:
        return registry.get_sample_value(
            name, {"cluster": "dir", "node": "node", "route": route, **labels}
        )

    assert value("cucm_directory_up", "http") == 1.0
    assert value("cucm_directory_up", "https_legacy") == 0.0
    assert value("cucm_directory_result", "https_legacy", result="tls_version_rejected") == 1.0
    assert value("cucm_directory_failed_step_info", "https_legacy", step="tvs") == 1.0
    assert value("cucm_directory_entries", "https") == 50.0
    assert value("cucm_directory_status_code", "http") == 200.0
    assert value("cucm_directory_tls_version_info", "https", version="TLS 1.2") == 1.0
    assert (value("cucm_directory_duration_seconds", "http") or 0.0) > 0.0
    assert (
        registry.get_sample_value(
            "cucm_probe_success", {"cluster": "dir", "node": "node", "probe": "directory"}
        )
        == 1.0
    )  # the node answered every route: the probe itself worked
    promtool_check_metrics(generate_latest(registry))


def test_probe_success_means_the_node_was_reached() -> None:
    def route(outcome: DirectoryOutcome, step: DirectoryStep | None) -> RouteResult:
        return RouteResult(HTTP, outcome, step, 0.1)

    assert DirectoryProbeResult((route(Outcome.TLS_VERSION_REJECTED, DirectoryStep.TVS),)).success
    assert DirectoryProbeResult((route(Outcome.DNS_ERROR, DirectoryStep.INPUT),)).success
    unreachable = DirectoryProbeResult(
        (route(Outcome.OK, None), route(Outcome.TIMEOUT, DirectoryStep.MENU))
    )
    assert (unreachable.success, unreachable.reason) == (False, "timeout")
