"""/probe end to end: a real aiohttp server probing the lab at request time, over real HTTP."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter.config import ExporterConfig, parse_config
from exporter.lab import Lab
from exporter.lab.cluster import LAB_COMMUNITY
from exporter.lab.tls import PortFault
from exporter.metrics.exposition import RegistryBodies
from exporter.ondemand import TIMEOUT_HEADER, OnDemandProber, deadline_for
from exporter.probes import ProbeRunner
from exporter.server import ExporterApp, ListenAddress, serve
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.conftest import config_for, promtool_check_metrics, start_daemon, stop_process
from tests.test_daemon import Daemon, wait_for

README = Path(__file__).parent.parent / "README.md"
VERSIONS = ("TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
ROUTES = ("http", "https", "https_legacy")


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def samples(self, name: str, **labels: str) -> list[Sample]:
        return [
            sample
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        found = self.samples(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
        return found[0].value if found else None

    def label_values(self, label: str) -> set[str]:
        return {
            sample.labels[label]
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
            if label in sample.labels
        }


class Exporter:
    """The exporter's HTTP side on a free loopback port, requested over real HTTP."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session = session
        self.base = base

    async def get(self, path_and_query: str, headers: Mapping[str, str] | None = None) -> Reply:
        async with self._session.get(self.base + path_and_query, headers=headers) as response:
            body = await response.read()
            return Reply(response.status, response.headers["Content-Type"], body)

    async def probe(self, query: str, **headers: str) -> Reply:
        return await self.get(f"/probe?{query}", headers)


@contextlib.asynccontextmanager
async def running(config: ExporterConfig, **probe_endpoint: Any) -> AsyncIterator[Exporter]:
    """These tests probe ad hoc hosts and re-probe after changing the lab: both on unless a
    test says otherwise (the defaults are tested in tests/test_probe_policy.py)."""

    async def no_reload() -> str | None:
        return None

    policy = {"allow_adhoc_targets": True, "min_interval": 0.0, **probe_endpoint}
    config = config.model_copy(
        update={"probe_endpoint": config.probe_endpoint.model_copy(update=policy)}
    )
    state = ExporterState(config, time.time())
    app = ExporterApp(
        RegistryBodies(CollectorRegistry()), ResultStore(), no_reload, prober=OnDemandProber(state)
    )
    runner = await serve(app.build(), ListenAddress("127.0.0.1", 0))  # 0: a free port
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            yield Exporter(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
        # pysnmp keeps an engine (and its sockets) per event loop: close it before this test's
        # loop ends. The server's cleanup does so too; this makes sure of it.
        await ProbeRunner().aclose()


@pytest.fixture
async def exporter(lab: Lab) -> AsyncIterator[Exporter]:
    async with running(config_for(lab)) as serving:
        yield serving


def assert_clean(reply: Reply) -> None:
    """What every /probe answer must be: valid for promtool, about this run only, no secret."""
    promtool_check_metrics(reply.body)
    assert LAB_COMMUNITY not in reply.text
    assert "cucm_exporter_" not in reply.text  # the exporter's own state stays on /metrics
    assert "Cached" not in reply.text  # nothing here comes from the schedule
    assert "scheduled" not in reply.text


# --- every module for a configured node ------------------------------------------------------


async def test_tls_is_the_default_module(exporter: Exporter) -> None:
    reply = await exporter.probe("target=cucm-pub")
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    assert reply.label_values("probe") == {"tls"}
    assert reply.label_values("node") == {"cucm-pub"}
    assert reply.label_values("cluster") == {"lab"}
    for port, service in (("8443", "tomcat"), ("2445", "tvs")):
        labels = {"port": port, "service": service}
        assert reply.value("cucm_tls_min_version", **labels) == 1.0
        assert reply.value("cucm_tls_max_version", **labels) == 1.2
        assert reply.value("cucm_tls_version_accepted", version="TLS 1.0", **labels) == 1.0
        assert reply.value("cucm_tls_version_accepted", version="TLS 1.3", **labels) == 0.0
        assert reply.value("cucm_tls_cert_verified", **labels) == 1.0
    assert reply.value("cucm_probe_success", probe="tls") == 1.0
    # No header (curl): the module's configured timeout (config_for: 8s).
    assert reply.value("cucm_probe_timeout_seconds", probe="tls") == 8.0
    assert_clean(reply)


async def test_a_policy_change_shows_at_once(exporter: Exporter, lab: Lab) -> None:
    lab.set_tls_policy("cucm-sub1", "1.2")
    try:
        reply = await exporter.probe("target=cucm-sub1&module=tls")
    finally:
        lab.set_tls_policy("cucm-sub1", "1.0")
    tvs = {"node": "cucm-sub1", "port": "2445", "service": "tvs"}
    assert reply.value("cucm_tls_min_version", **tvs) == 1.2
    assert reply.value("cucm_tls_version_accepted", version="TLS 1.0", **tvs) == 0.0
    assert reply.value(
        "cucm_tls_version_result", version="TLS 1.0", result="rejected_protocol_version", **tvs
    )


async def test_directory_module(exporter: Exporter) -> None:
    reply = await exporter.probe("target=cucm-pub&module=directory")
    assert reply.status == 200
    assert reply.label_values("probe") == {"directory"}
    for route in ROUTES:
        assert reply.value("cucm_directory_up", route=route) == 1.0
        assert reply.value("cucm_directory_result", route=route, result="ok") == 1.0
        assert reply.value("cucm_directory_status_code", route=route) == 200.0
        assert (reply.value("cucm_directory_entries", route=route) or 0) > 0
    assert reply.value("cucm_directory_tls_version_info", route="https_legacy", version="TLS 1.0")
    assert reply.value("cucm_probe_success", probe="directory") == 1.0
    assert_clean(reply)


async def test_snmp_module(exporter: Exporter, lab: Lab) -> None:
    registered = [p for p in lab.phones("cucm-pub") if p.status == "registered"]
    reply = await exporter.probe("target=lab/cucm-pub&module=snmp")
    assert reply.status == 200
    assert reply.label_values("probe") == {"snmp"}
    assert reply.value("cucm_node_registered_phones", node="cucm-pub") == len(registered)
    phones = reply.samples("cucm_phones", node="cucm-pub", status="registered")
    assert sum(sample.value for sample in phones) == len(registered)
    assert reply.value("cucm_probe_success", probe="snmp") == 1.0
    assert_clean(reply)


async def test_several_modules_at_once(exporter: Exporter) -> None:
    reply = await exporter.probe("target=cucm-pub&module=tls,directory&module=snmp")
    assert reply.status == 200
    assert reply.label_values("probe") == {"tls", "directory", "snmp"}
    for probe in ("tls", "directory", "snmp"):
        assert reply.value("cucm_probe_success", probe=probe) == 1.0
        assert reply.value("cucm_probe_timeout_seconds", probe=probe) == 8.0
    assert reply.value("cucm_directory_up", route="https_legacy") == 1.0
    # TLS and SNMP together: what the node requires, and who would be cut off (nobody yet).
    assert reply.value("cucm_node_required_tls_version", node="cucm-pub") == 1.0
    at_risk = reply.samples("cucm_phones_directory_at_risk", node="cucm-pub")
    assert at_risk
    assert {sample.value for sample in at_risk} == {0.0}
    assert_clean(reply)


async def test_openmetrics_when_asked(exporter: Exporter) -> None:
    reply = await exporter.probe(
        "target=cucm-pub:8443", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert reply.status == 200
    assert reply.content_type.startswith("application/openmetrics-text")
    assert reply.text.endswith("# EOF\n")


async def test_a_port_narrows_the_sweep(exporter: Exporter) -> None:
    reply = await exporter.probe("target=cucm-pub:2445&module=tls")
    assert reply.status == 200
    assert reply.label_values("port") == {"2445"}
    assert reply.label_values("service") == {"tvs"}
    assert reply.value("cucm_tls_min_version", port="2445") == 1.0
    assert_clean(reply)


# --- targets that are not configured nodes ---------------------------------------------------


async def test_an_adhoc_host_and_port(exporter: Exporter, lab: Lab) -> None:
    real_port = lab.node("cucm-pub").ports[2445]  # the lab's TVS listener, not a CUCM port
    reply = await exporter.probe(f"target=127.0.0.1:{real_port}&module=tls")
    assert reply.status == 200
    assert reply.label_values("cluster") == {"adhoc"}
    assert reply.label_values("node") == {"127.0.0.1"}
    labels = {"port": str(real_port), "service": "unknown"}
    assert reply.value("cucm_tls_min_version", **labels) == 1.0
    assert reply.value("cucm_tls_version_accepted", version="TLS 1.3", **labels) == 0.0
    # Verified against the configured CA and the address asked for (the lab's certificate
    # names 127.0.0.1 too).
    assert reply.value("cucm_tls_cert_verified", **labels) == 1.0
    assert_clean(reply)


async def test_an_adhoc_host_that_does_not_resolve(exporter: Exporter) -> None:
    reply = await exporter.probe("target=ghost.invalid&module=directory")
    assert reply.status == 200  # a target that is down is not a bad request
    assert reply.label_values("node") == {"ghost.invalid"}
    for route in ROUTES:
        assert reply.value("cucm_directory_result", route=route, result="dns_error") == 1.0
        assert reply.value("cucm_directory_up", route=route) == 0.0
    assert reply.value("cucm_probe_success", probe="directory") == 0.0
    assert_clean(reply)


# --- bad requests ----------------------------------------------------------------------------

BAD_REQUESTS = [
    ("", {}, "missing target: give target=NODE, target=CLUSTER/NODE or target=HOST[:PORT]"),
    ("target=", {}, "missing target: give target=NODE, target=CLUSTER/NODE or target=HOST[:PORT]"),
    (
        "target=cucm-pub&module=http",
        {},
        "unknown module 'http': known modules are tls, directory, snmp, risport",
    ),
    (
        "target=cucm-pub&module=tls,directory,snmp,risport,tls",
        {},
        "5 modules named: at most 4, each of tls, directory, snmp, risport once",
    ),
    (
        "target=127.0.0.1&module=snmp",
        {},
        "module snmp needs a configured node, and '127.0.0.1' is not one "
        "(a host that is not configured takes tls and directory)",
    ),
    (
        "target=cucm-pub",
        {TIMEOUT_HEADER: "abc"},
        f"invalid {TIMEOUT_HEADER} header 'abc': expected a positive number of seconds",
    ),
    (
        "target=cucm-pub",
        {TIMEOUT_HEADER: "0"},
        f"invalid {TIMEOUT_HEADER} header '0': expected a positive number of seconds",
    ),
    (
        "target=cucm-pub",
        {TIMEOUT_HEADER: "nan"},
        f"invalid {TIMEOUT_HEADER} header 'nan': expected a positive number of seconds",
    ),
    (
        "target=cucm-pub&community=public",
        {},
        "unknown parameter 'community': /probe takes target, module and debug",
    ),
    ("target=cucm-pub&target=cucm-sub1", {}, "target is given 2 times: give it once"),
    ("target=cucm-pub&debug=yes", {}, "debug must be true or false, not 'yes'"),
    ("target=cucm-pub:99999", {}, "target 'cucm-pub:99999': the port must be a number, 1 to 65535"),
    (
        "target=cucm-pub:2445&module=directory",
        {},
        "target 'cucm-pub:2445' names a port, which only module tls takes: "
        "leave the port out for module directory",
    ),
    ("target=lab/nope", {}, "unknown target 'lab/nope': no node 'nope' in a cluster 'lab'"),
    (
        "target=bad%20host%21",
        {},
        "target 'bad host!' is neither a configured node nor a host name or IP address",
    ),
    ("target=%5B::1", {}, "target '[::1': expected [IPv6 address]:port"),
]


@pytest.mark.parametrize(("query", "headers", "message"), BAD_REQUESTS)
async def test_bad_requests_get_400_and_a_reason(
    exporter: Exporter, query: str, headers: dict[str, str], message: str
) -> None:
    reply = await exporter.probe(query, **headers)
    assert reply.status == 400
    assert reply.content_type.startswith("text/plain")
    assert reply.text == message + "\n"


def two_clusters(lab: Lab) -> ExporterConfig:
    """The lab twice: `lab` with SNMP credentials, `lab2` (same node names) without."""
    data = lab.exporter_config(interval=10.0, timeout=8.0)
    first = data["clusters"][0]
    data["clusters"].append({"name": "lab2", "nodes": first["nodes"]})
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


async def test_a_name_in_two_clusters_needs_its_cluster(lab: Lab) -> None:
    async with running(two_clusters(lab)) as exporter:
        ambiguous = await exporter.probe("target=cucm-pub")
        chosen = await exporter.probe("target=lab2/cucm-pub")
        no_credentials = await exporter.probe("target=lab2/cucm-pub&module=snmp")
    assert ambiguous.status == 400
    assert ambiguous.text == (
        "target 'cucm-pub' names a node in several clusters: use one of lab/cucm-pub, "
        "lab2/cucm-pub\n"
    )
    assert chosen.status == 200
    assert chosen.label_values("cluster") == {"lab2"}
    assert no_credentials.status == 400
    assert no_credentials.text == (
        "module snmp needs SNMP credentials, and node lab2/cucm-pub has none configured\n"
    )


# --- the deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module_timeout", "scrape_timeout", "deadline"),
    [(8.0, None, 8.0), (8.0, 2.0, 1.5), (1.0, 10.0, 1.0), (8.0, 0.6, 0.3)],
)
def test_deadline_for(module_timeout: float, scrape_timeout: float | None, deadline: float) -> None:
    assert deadline_for(module_timeout, scrape_timeout) == pytest.approx(deadline)


async def test_the_scrape_timeout_bounds_a_stalled_port(exporter: Exporter, lab: Lab) -> None:
    lab.set_port_fault("cucm-pub", 2445, PortFault.STALL)
    try:
        started = time.monotonic()
        reply = await exporter.probe("target=cucm-pub&module=tls", **{TIMEOUT_HEADER: "2"})
        elapsed = time.monotonic() - started
    finally:
        lab.set_port_fault("cucm-pub", 2445, PortFault.NONE)
    assert reply.status == 200
    assert reply.value("cucm_probe_timeout_seconds", probe="tls") == 1.5
    tvs = {"port": "2445", "service": "tvs"}
    for version in VERSIONS:
        assert reply.value("cucm_tls_version_result", version=version, **tvs, result="timeout")
        assert reply.value("cucm_tls_version_accepted", version=version, **tvs) is None
    assert reply.value("cucm_tls_min_version", port="8443") == 1.0  # the healthy port still seen
    assert reply.value("cucm_probe_success", probe="tls") == 0.0
    # The configured handshake_timeout is 3 s: only the 1.5 s deadline explains an early answer.
    assert elapsed < 1.5 + 1.0
    assert_clean(reply)


# --- debug -----------------------------------------------------------------------------------


async def test_debug_shows_the_log_the_summary_and_the_metrics(exporter: Exporter) -> None:
    reply = await exporter.probe("target=cucm-pub&module=tls,directory,snmp&debug=true")
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; charset=utf-8")
    text = reply.text
    lines = text.splitlines()
    assert "Target lab/cucm-pub: host cucm-pub.lab.test" in lines
    assert "Modules and deadlines: tls 8s, directory 8s, snmp 8s" in lines
    head, _, metrics = text.partition("\nMetrics that would have been returned:\n")
    log = head.split("Logs for the probe:\n")[1].split("\nResult summary:\n")[0].splitlines()
    for port in ("8443/tomcat", "2445/tvs"):
        for name in (*VERSIONS, "modern client"):
            assert any(line.startswith(f"tls {port} {name}: ") for line in log), (port, name)
        assert any(line.startswith(f"tls {port} TLS 1.0: accepted in ") for line in log)
        assert f"tls {port} certificate verified" in log
    for route in ROUTES:
        assert any(line.startswith(f"directory {route}: ok, status 200, entries ") for line in log)
    assert any(re.match(r"snmp: ok, \d+ requests, .*registered", line) for line in log)
    summary = head.split("\nResult summary:\n")[1].splitlines()
    assert [line.split(",")[0] for line in summary] == [
        "tls: success",
        "directory: success",
        "snmp: success",
    ]
    assert LAB_COMMUNITY not in text
    promtool_check_metrics(metrics.encode())
    assert 'cucm_probe_timeout_seconds{cluster="lab",node="cucm-pub",probe="snmp"} 8.0' in metrics


# --- the rest of the HTTP side ---------------------------------------------------------------


async def test_the_landing_page_offers_a_probe(exporter: Exporter) -> None:
    page = await exporter.get("/")
    assert '<form action="probe" method="get">' in page.text


def test_no_probe_route_without_the_configuration() -> None:
    async def no_reload() -> str | None:
        return None

    app = ExporterApp(RegistryBodies(CollectorRegistry()), ResultStore(), no_reload).build()
    assert "/probe" not in {resource.canonical for resource in app.router.resources()}


def test_the_daemon_serves_probe(lab: Lab, tmp_path: Path) -> None:
    """The wiring in cli.run_daemon: /probe follows the running configuration."""
    config_file = lab.write_exporter_config(tmp_path / "exporter.yml", interval=10.0, timeout=8.0)
    log_file = tmp_path / "daemon.log"
    process, port = start_daemon(config_file, log_file)
    daemon = Daemon(process, port, config_file, log_file)
    try:
        wait_for(lambda: _answers(daemon), 15, "the daemon to become ready")
        status, body = daemon.get("/probe?target=cucm-pub&module=tls,snmp")
    finally:
        code = stop_process(process, timeout=10)
    assert status == 200
    reply = Reply(status, "text/plain", body)
    assert reply.value("cucm_tls_min_version", port="2445") == 1.0
    assert reply.value("cucm_probe_success", probe="snmp") == 1.0
    assert code == 0
    assert "Traceback" not in log_file.read_text()


def _answers(daemon: Daemon) -> bool:
    assert daemon.process.poll() is None, "the daemon exited"
    try:
        return daemon.get("/-/ready")[0] == 200
    except OSError:
        return False


# --- the README's scrape config --------------------------------------------------------------


def readme_scrape_config() -> str:
    """The first YAML block of the README's /probe section."""
    text = README.read_text()
    section = text.split("## On-demand probing (`/probe`)\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found, "the /probe section of README.md has no ```yaml block"
    return found[1]


def test_the_readme_scrape_config_passes_promtool(tmp_path: Path) -> None:
    config = readme_scrape_config()
    job = yaml.safe_load(config)["scrape_configs"][0]
    assert job["metrics_path"] == "/probe"
    assert {"source_labels": ["__address__"], "target_label": "__param_target"} in job[
        "relabel_configs"
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/system-deps (Debian package prometheus)"
    checked = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
