"""Results from real probes against the lab, turned into metrics, checked by promtool."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import ExporterConfig
from exporter.lab import Lab
from exporter.lab.tls import PortFault
from exporter.metrics.collector import CucmCollector
from exporter.probes import ProbeRunner
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.conftest import config_for, openssl_serial, promtool_check_metrics


async def probe_everything(config: ExporterConfig, store: ResultStore) -> None:
    runner = ProbeRunner()
    for cluster in config.clusters:
        for node in cluster.nodes:
            store.put(await runner.run(config, cluster, node, "tls"))


def registry_for(store: ResultStore, state: ExporterState) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CucmCollector(store, state))
    return registry


async def test_tls_metrics_follow_the_lab(lab: Lab) -> None:
    config = config_for(lab)
    store, state = ResultStore(), ExporterState(config, time.time())
    registry = registry_for(store, state)
    lab.set_tls_policy("cucm-pub", "1.2")
    try:
        await probe_everything(config, store)
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"cluster": "lab", **labels})

    tvs = {"port": "2445", "service": "tvs"}
    assert value("cucm_tls_min_version", node="cucm-pub", **tvs) == 1.2
    assert value("cucm_tls_min_version", node="cucm-sub1", **tvs) == 1.0
    assert value("cucm_tls_max_version", node="cucm-pub", **tvs) == 1.2
    for version, accepted in (
        ("TLS 1.0", 0.0),
        ("TLS 1.1", 0.0),
        ("TLS 1.2", 1.0),
        ("TLS 1.3", 0.0),
    ):
        assert (
            value("cucm_tls_version_accepted", node="cucm-pub", version=version, **tvs) == accepted
        )
    assert (
        value(
            "cucm_tls_version_result",
            node="cucm-pub",
            version="TLS 1.0",
            result="rejected_protocol_version",
            **tvs,
        )
        == 1.0
    )
    assert value("cucm_tls_version_info", node="cucm-pub", version="TLS 1.2", **tvs) == 1.0
    assert value("cucm_tls_up", node="cucm-pub", **tvs) == 1.0
    assert value("cucm_tls_cert_verified", node="cucm-pub", **tvs) == 1.0
    state_pub = lab.node("cucm-pub")
    cert_labels = {
        "fingerprint_sha256": state_pub.fingerprint_sha256,
        "serial": openssl_serial((lab.directory / "lab-cucm-pub.pem").read_bytes()),
        "subject": "CN=cucm-pub.lab.test,O=CUCM lab",
        "issuer": "CN=CUCM lab CA",
    }
    assert value("cucm_tls_cert_info", node="cucm-pub", **tvs, **cert_labels) == 1.0
    assert (
        value("cucm_tls_cert_not_after_timestamp_seconds", node="cucm-pub", **tvs) or 0
    ) > time.time()
    assert value("cucm_probe_success", node="cucm-pub", probe="tls") == 1.0
    assert (value("cucm_probe_last_run_timestamp_seconds", node="cucm-pub", probe="tls") or 0) > 0
    assert registry.get_sample_value("cucm_exporter_config_last_reload_successful") == 1.0
    promtool_check_metrics(generate_latest(registry))


async def test_a_dead_port_has_no_version_verdict_and_fails_the_probe(lab: Lab) -> None:
    config = config_for(lab, handshake_timeout="1s", timeout="2s")
    store, state = ResultStore(), ExporterState(config, time.time())
    registry = registry_for(store, state)
    lab.set_port_fault("cucm-sub1", 2445, PortFault.STALL)
    try:
        await probe_everything(config, store)
    finally:
        lab.set_port_fault("cucm-sub1", 2445, PortFault.NONE)
    tvs = {"cluster": "lab", "node": "cucm-sub1", "port": "2445", "service": "tvs"}
    for version in ("TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"):
        assert (
            registry.get_sample_value("cucm_tls_version_accepted", {**tvs, "version": version})
            is None
        )
        assert (
            registry.get_sample_value(
                "cucm_tls_version_result", {**tvs, "version": version, "result": "timeout"}
            )
            == 1.0
        )
    assert registry.get_sample_value("cucm_tls_min_version", tvs) is None
    assert registry.get_sample_value("cucm_tls_up", tvs) == 0.0
    assert (
        registry.get_sample_value(
            "cucm_probe_success", {"cluster": "lab", "node": "cucm-sub1", "probe": "tls"}
        )
        == 0.0
    )
    promtool_check_metrics(generate_latest(registry))


def test_help_text_says_results_are_cached(lab: Lab) -> None:
    config = config_for(lab)
    registry = registry_for(ResultStore(), ExporterState(config, time.time()))
    text = generate_latest(registry).decode()
    assert "# HELP cucm_tls_min_version" in text
    help_line = next(
        line for line in text.splitlines() if line.startswith("# HELP cucm_tls_min_version")
    )
    assert "Cached: refreshed by the scheduled probe every 10s." in help_line


def test_a_failed_reload_is_exported(lab: Lab) -> None:
    state = ExporterState(config_for(lab), 1700000000.0)
    registry = registry_for(ResultStore(), state)
    state.reload_failed()
    assert registry.get_sample_value("cucm_exporter_config_last_reload_successful") == 0.0
    assert (
        registry.get_sample_value("cucm_exporter_config_last_reload_success_timestamp_seconds")
        == 1700000000.0
    )


async def test_phones_at_risk_follow_the_node_tls_policy(lab: Lab) -> None:
    config = config_for(lab)
    store, state = ResultStore(), ExporterState(config, time.time())
    registry = registry_for(store, state)
    runner = ProbeRunner()

    async def poll_all() -> None:
        for cluster in config.clusters:
            for node in cluster.nodes:
                for probe in ("tls", "snmp"):
                    store.put(await runner.run(config, cluster, node, probe))

    def at_risk(node: str) -> float:
        return sum(
            s.value
            for family in registry.collect()
            if family.name == "cucm_phones_directory_at_risk"
            for s in family.samples
            if s.labels["node"] == node
        )

    try:
        await poll_all()
        assert at_risk("cucm-pub") == 0.0
        pub = {"cluster": "lab", "node": "cucm-pub"}
        assert registry.get_sample_value("cucm_node_required_tls_version", pub) == 1.0
        # The lab's default mix on each node: 37 registered phones.
        assert registry.get_sample_value("cucm_node_registered_phones", pub) == 37.0
        legacy = {**pub, "model": "Cisco 7962", "status": "registered", "max_tls": "1.0"}
        assert registry.get_sample_value("cucm_phones", legacy) == 8.0
        unknown = {
            **pub,
            "model": "Cisco Webex Desk Pro",
            "status": "registered",
            "max_tls": "unknown",
        }
        assert registry.get_sample_value("cucm_phones", unknown) == 1.0
        # The subscriber's stale rows for two of the publisher's phones are not counted twice.
        stale = {
            "cluster": "lab",
            "node": "cucm-sub1",
            "model": "Cisco 7962",
            "status": "unregistered",
            "max_tls": "1.0",
        }
        assert registry.get_sample_value("cucm_phones", stale) is None
        boot_before = registry.get_sample_value("cucm_node_boot_time_seconds", pub)

        # Boot times are whole seconds, and the node may have booted just now (another test
        # restarts it last): the restart must come a second after that boot to show.
        await asyncio.sleep(1.1)
        lab.set_tls_policy("cucm-pub", "1.2")
        await poll_all()
        # Legacy models in the lab's mix: 7962 x8, 7942 x4, 7965 x2, 6921 x3, 8945, 9971 x2,
        # IP Communicator, and a 7821 and an 8851 on firmware older than 12.0.
        assert at_risk("cucm-pub") == 23.0
        assert at_risk("cucm-sub1") == 0.0
        assert (
            registry.get_sample_value(
                "cucm_phones_directory_at_risk", {**pub, "model": "Cisco 7841"}
            )
            == 0.0
        )
        assert registry.get_sample_value("cucm_node_required_tls_version", pub) == 1.2
        boot_after = registry.get_sample_value("cucm_node_boot_time_seconds", pub)
        assert boot_before is not None
        assert boot_after is not None
        assert boot_after > boot_before
        promtool_check_metrics(generate_latest(registry))
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")
        await runner.aclose()


def test_the_probe_intervals_follow_the_configuration() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.config import parse_config

    config = parse_config(
        "probes: {tls: {interval: 45s, timeout: 20s}, snmp: {enabled: false}}\n"
        "clusters: [{name: c, nodes: [{name: n, host: h}]}]",
        base_dir=Path.cwd(),
    )
    exposition = generate_latest(registry_for(ResultStore(), ExporterState(config, 0.0)))
    promtool_check_metrics(exposition)
    intervals = {
        sample.labels["probe"]: sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
        if sample.name == "cucm_exporter_probe_interval_seconds"
    }
    # snmp (and phoneconfig, off by default) are off: no interval, no guess; risport is on by
    # default and runs only on clusters whose inventory asks for it.
    assert intervals == {"tls": 45.0, "directory": 60.0, "risport": 300.0}
