"""The cached /metrics rendering is byte for byte what prometheus_client renders for the whole
collector, in both formats, before and after results change."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.config import ExporterConfig
from exporter.lab import Lab
from exporter.metrics.collector import CucmCollector
from exporter.metrics.exposition import CachedExposition
from exporter.probes import ProbeRunner
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.conftest import config_for

TEXT = "text/plain"


def _rendering(
    config: ExporterConfig,
) -> tuple[ResultStore, ExporterState, CollectorRegistry, CachedExposition]:
    """A collector over an empty store, registered with prometheus_client (the reference
    rendering) and served through the cache under test."""
    store, state = ResultStore(), ExporterState(config, time.time())
    collector = CucmCollector(store, state)
    registry = CollectorRegistry()
    registry.register(collector)
    return store, state, registry, CachedExposition(collector)


def _without_node(config: ExporterConfig, name: str) -> ExporterConfig:
    clusters = tuple(
        cluster.model_copy(update={"nodes": tuple(n for n in cluster.nodes if n.name != name)})
        for cluster in config.clusters
    )
    return config.model_copy(update={"clusters": clusters})


OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
async def test_cached_rendering_equals_the_library_rendering(lab: Lab, accept: str) -> None:
    config = config_for(lab)
    store, state, registry, exposition = _rendering(config)
    encoder, _ = choose_encoder(accept)
    runner = ProbeRunner()

    async def poll(nodes: tuple[str, ...]) -> None:
        for cluster in config.clusters:
            for node in cluster.nodes:
                if node.name in nodes:
                    for probe in ("tls", "directory", "snmp"):
                        store.put(await runner.run(config, cluster, node, probe))

    try:
        assert exposition.render(accept, config)[0] == encoder(registry)  # nothing yet
        await poll(("cucm-pub", "cucm-sub1"))
        first, content_type = exposition.render(accept, config)
        assert first == encoder(registry)
        assert content_type.startswith(accept.split(";")[0])
        assert b'cucm_phones{cluster="lab"' in first
        # One node changes; the other's cached text is reused; the result is still exact.
        lab.set_tls_policy("cucm-pub", "1.2")
        await poll(("cucm-pub",))
        second, _ = exposition.render(accept, config)
        assert second == encoder(registry)
        assert second != first
        assert (
            b'cucm_tls_min_version{cluster="lab",node="cucm-pub",port="2445",service="tvs"} 1.2'
            in second
        )
        # A reload that drops a node drops its cached text too.
        reloaded = _without_node(config, "cucm-sub1")
        state.reloaded(reloaded, time.time())
        store.retain([k for k in store.snapshot() if k[1] != "cucm-sub1"])
        third, _ = exposition.render(accept, reloaded)
        assert third == encoder(registry)
        assert b'node="cucm-sub1"' not in third
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")
        await runner.aclose()


async def test_one_cache_serves_both_formats(lab: Lab) -> None:
    """Text and OpenMetrics share the cached sample lines; each still matches its encoder."""
    config = config_for(lab)
    store, _, registry, exposition = _rendering(config)
    runner = ProbeRunner()
    try:
        cluster = config.clusters[0]
        for probe in ("tls", "directory", "snmp"):
            store.put(await runner.run(config, cluster, cluster.nodes[0], probe))
        for accept in (TEXT, OPENMETRICS, TEXT, OPENMETRICS):
            encoder, _ = choose_encoder(accept)
            assert exposition.render(accept, config)[0] == encoder(registry), accept
    finally:
        await runner.aclose()
