"""Phone summaries for /metrics: the series do not grow with the phones, and a large cluster's
summary is computed off the event loop while scrapes show the last one. Real probes against
a lab of our own (phones are added to it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from exporter.catalogue import Capability, Catalogue, load_catalogue
from exporter.config import ClusterConfig, ExporterConfig
from exporter.impact import ClusterPhones, cluster_phones
from exporter.lab import Lab
from exporter.metrics.collector import CucmCollector
from exporter.phone_summaries import PhoneSummaries
from exporter.probes import BUILTIN_PROBES, ProbeRunner
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.test_phoneconfig_probe import lab_config

SPECS = {spec.name: spec for spec in BUILTIN_PROBES}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


async def poll(config: ExporterConfig, store: ResultStore, probes: tuple[str, ...]) -> None:
    runner = ProbeRunner(latest=store.snapshot)
    try:
        cluster = config.clusters[0]
        for probe in probes:  # inventories first: phoneconfig reads them
            for node in cluster.nodes:
                store.put(await runner.run(config, cluster, node, probe))
    finally:
        await runner.aclose()


ALL = ("tls", "directory", "snmp", "phoneconfig")


def series(collector: CucmCollector) -> int:
    return sum(len(family.samples) for family in collector.collect())


async def test_the_series_count_does_not_grow_with_the_phones(lab: Lab) -> None:
    config = lab_config(lab)
    store = ResultStore()
    collector = CucmCollector(store, ExporterState(config, time.time()))
    await poll(config, store, ALL)
    before = series(collector)
    phones = sum(n for n in collector_phones(collector, config).phones.values())
    # Five hundred more phones of models and firmware the nodes already have.
    lab.add_phones("cucm-pub", "Cisco 7962", "SCCP42.9-4-2SR3-1S", 300)
    lab.add_phones("cucm-sub1", "Cisco 7841", "sip78xx.14-1-1-0001-125", 200)
    await poll(config, store, ALL)
    after = collector_phones(collector, config)
    assert sum(after.phones.values()) == phones + 500
    assert series(collector) == before


async def polled(
    lab: Lab,
) -> tuple[ExporterConfig, ClusterConfig, list[str], Catalogue, ResultStore]:
    """The lab's config with phoneconfig on, and a store after one round of every probe."""
    config = lab_config(lab)
    cluster = config.clusters[0]
    store = ResultStore()
    await poll(config, store, ALL)
    return config, cluster, [n.name for n in cluster.nodes], load_catalogue(config.catalogue), store


def collector_phones(collector: CucmCollector, config: ExporterConfig) -> ClusterPhones:
    return collector._phones.of(
        config.clusters[0].name,
        dict(collector._store.snapshot()),
        [n.name for n in config.clusters[0].nodes],
    )


async def test_a_large_cluster_is_summarized_off_the_event_loop(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, cluster, nodes, catalogue, store = await polled(lab)
    summaries = PhoneSummaries(SPECS, catalogue, offload_rows=0)  # every cluster is "large"
    first = summaries.of(cluster.name, store.snapshot(), nodes)  # the first: at once
    assert first == cluster_phones(store.snapshot(), SPECS, catalogue, nodes)
    worked_on: list[str] = []
    original = catalogue.lookup

    def watched(product: str, active_load: str = "") -> Capability:
        worked_on.append(threading.current_thread().name)
        return original(product, active_load)

    monkeypatch.setattr(catalogue, "lookup", watched)
    lab.set_tls_policy("cucm-pub", "1.2")
    try:
        await poll(config, store, ("tls",))
        shown = summaries.of(cluster.name, store.snapshot(), nodes)
        assert shown is first  # the last summary, while the new one is computed
        await summaries.settle()
        fresh = summaries.of(cluster.name, store.snapshot(), nodes)
        monkeypatch.undo()
        assert fresh == cluster_phones(store.snapshot(), SPECS, catalogue, nodes)
        assert fresh.at_risk != first.at_risk
        assert worked_on
        assert all(name.startswith("phone-summaries") for name in worked_on)
        assert summaries.of(cluster.name, store.snapshot(), nodes) is fresh  # no new work
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")


async def test_after_a_reload_the_last_summary_shows_until_the_new_one_is_ready(
    lab: Lab,
) -> None:
    _, cluster, nodes, catalogue, store = await polled(lab)
    old = PhoneSummaries(SPECS, catalogue, offload_rows=0)
    shown = old.of(cluster.name, store.snapshot(), nodes)
    new = PhoneSummaries(SPECS, catalogue, offload_rows=0, previous=old)
    assert new.of(cluster.name, store.snapshot(), nodes) is shown
    await new.settle()
    again = new.of(cluster.name, store.snapshot(), nodes)
    assert again is not shown
    assert again == shown  # the same runs, the same catalogue: the same summary
