"""The scheduled path's collector: the store's latest runs as families, and the exporter's own.

Families are built afresh on every scrape from the store's immutable snapshot, so a scrape
never waits on a probe and a vanished node or port vanishes from the output with it. For the
exposition cache (exporter/metrics/exposition.py) it also cuts them into segments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.catalogue import load_catalogue
from exporter.config import ClusterConfig, ExporterConfig
from exporter.impact import ClusterPhones
from exporter.metrics import Freshness, target_families
from exporter.metrics.selfmetrics import self_families
from exporter.phone_summaries import PhoneSummaries
from exporter.probes import BUILTIN_PROBES, Key, ProbeSpec
from exporter.results import ProbeRun
from exporter.state import ExporterState
from exporter.store import ResultStore

__all__ = ["CucmCollector", "Segment"]


@dataclass(frozen=True)
class Segment:
    """A piece of the exposition: `build()` gives its families; same `token`, same text."""

    key: object
    token: object
    build: Callable[[], Iterable[Metric]]


class CucmCollector(Collector):
    """Exposes the latest probe results and the exporter's own state."""

    def __init__(
        self,
        store: ResultStore,
        state: ExporterState,
        specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
    ) -> None:
        self._store = store
        self._state = state
        self._specs: Mapping[str, ProbeSpec] = {spec.name: spec for spec in specs}
        # Rebuilt when the configuration (and so the catalogue and the intervals) changes.
        self._config: ExporterConfig | None = None
        self._phones = PhoneSummaries(self._specs, load_catalogue(()))
        self._freshness = Freshness({})

    def describe(self) -> list[Metric]:
        return []  # collect() is cheap but dynamic; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        config = self._follow_config()
        self._phones.begin()
        snapshot = self._store.snapshot()
        runs = _by_cluster(snapshot)
        phones = [
            (
                cluster.name,
                self._phones.of(cluster.name, runs.get(cluster.name, {}), _nodes(cluster)),
            )
            for cluster in config.clusters
        ]
        yield from target_families(
            [run for _, run in sorted(snapshot.items())], phones, self._freshness, config.clusters
        )
        yield from self.self_families()

    def template(self) -> list[Metric]:
        """Every target family, empty: their names, HELP and TYPE, in output order."""
        self._follow_config()
        return target_families((), (), self._freshness)

    def segments(self) -> list[Segment]:
        """The target families cut into pieces that change independently: one per probe run
        and one per cluster's phone summary. A piece whose `token` is unchanged since the last
        scrape renders to the same text, so a scrape re-renders only what probes changed."""
        config = self._follow_config()
        self._phones.begin()
        pieces = [Segment(("config",), config, functools.partial(self._node_families, config))]
        runs = _by_cluster(self._store.snapshot())
        for cluster in config.clusters:
            mine = runs.get(cluster.name, {})
            for key, run in mine.items():
                pieces.append(Segment(key, run, functools.partial(self._run_families, run)))
            summary = self._phones.of(cluster.name, mine, _nodes(cluster))
            pieces.append(
                Segment(
                    ("phones", cluster.name),
                    summary,
                    functools.partial(self._phone_families, cluster.name, summary),
                )
            )
        return pieces

    async def settle(self) -> None:
        """Start the phone summaries that changed and wait for those computed off the event
        loop (large clusters): a scrape shows them without the loop having waited."""
        config = self._follow_config()
        self._phones.begin()
        runs = _by_cluster(self._store.snapshot())
        for cluster in config.clusters:
            self._phones.of(cluster.name, runs.get(cluster.name, {}), _nodes(cluster))
        await self._phones.settle()

    def self_families(self) -> Iterator[Metric]:
        """The exporter's own state: cheap, and different on every scrape."""
        config = self._state.config
        intervals = {
            name: float(spec.settings(config).interval)
            for name, spec in self._specs.items()
            if spec.enabled(config)
        }
        return self_families(self._state, self._store.skipped(), intervals)

    def _run_families(self, run: ProbeRun) -> list[Metric]:
        return target_families((run,), (), self._freshness)

    def _phone_families(self, cluster: str, summary: ClusterPhones) -> list[Metric]:
        return target_families((), ((cluster, summary),), self._freshness)

    def _node_families(self, config: ExporterConfig) -> list[Metric]:
        return target_families((), (), self._freshness, config.clusters)

    def _follow_config(self) -> ExporterConfig:
        config = self._state.config
        if config is self._config:
            return config
        self._config = config
        self._phones = PhoneSummaries(
            self._specs, load_catalogue(config.catalogue), previous=self._phones
        )
        self._freshness = Freshness(
            {name: spec.settings(config).interval for name, spec in self._specs.items()}
        )
        return config


def _nodes(cluster: ClusterConfig) -> tuple[str, ...]:
    return tuple(node.name for node in cluster.nodes)


def _by_cluster(snapshot: Mapping[Key, ProbeRun]) -> dict[str, dict[Key, ProbeRun]]:
    grouped: dict[str, dict[Key, ProbeRun]] = {}
    for key, run in sorted(snapshot.items()):
        grouped.setdefault(key[0], {})[key] = run
    return grouped
