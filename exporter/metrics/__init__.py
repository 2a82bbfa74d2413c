"""Results -> metric families. The only package that knows metric names.

`target_families` is the one pure function from probe runs (and the per-cluster phone
summaries computed from them) to families: /metrics calls it over the store's snapshot, piece
by piece for its cache, and /probe over the runs of one request. Each subject's families live
in a module of their own, with a sample of their exposition in its docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from exporter.config import ClusterConfig
from exporter.impact import ClusterPhones
from exporter.metrics.directory import DirectoryFamilies
from exporter.metrics.freshness import Freshness
from exporter.metrics.nodes import node_info_family
from exporter.metrics.phones import PhoneFamilies
from exporter.metrics.probe import ProbeFamilies, timeout_family
from exporter.metrics.risport import InventorySourceFamilies, RisportFamilies
from exporter.metrics.snmp import SnmpFamilies
from exporter.metrics.tls import TlsFamilies
from exporter.results import ProbeRun

__all__ = ["Freshness", "target_families", "timeout_family"]


def target_families(
    runs: Iterable[ProbeRun],
    phones: Iterable[tuple[str, ClusterPhones]],
    freshness: Freshness,
    clusters: Iterable[ClusterConfig] = (),
) -> list[Metric]:
    """Every target family, in exposition order, filled from `runs`, the clusters' `phones`
    and the configured `clusters`' nodes; families with no sample are kept (the cache renders
    their headers from them)."""
    bookkeeping = ProbeFamilies()
    per_run = (TlsFamilies(freshness), DirectoryFamilies(freshness))
    node_state = SnmpFamilies(freshness)
    risport = RisportFamilies(freshness)
    for run in runs:
        bookkeeping.add(run)
        for subject in per_run:
            subject.add_run(run)
        node_state.add_run(run)
        risport.add_run(run)
    phone_families = PhoneFamilies(freshness)
    sources = InventorySourceFamilies(freshness)
    for cluster, summary in phones:
        phone_families.add(cluster, summary)
        sources.add(cluster, summary)
    return [
        node_info_family(clusters),
        *bookkeeping.all(),
        *(family for subject in per_run for family in subject.all()),
        *phone_families.all(),
        *sources.all(),
        *node_state.all(),
        *risport.all(),
    ]
