"""Running probes: which (node, probe) pairs a configuration asks for, and one run of one.

`targets` is the one list of jobs: the scheduler schedules it, `check` runs it once, and the
exporter's self-metrics count from it. `ProbeRunner` turns whatever a run does into a
`ProbeRun`, within one deadline computed here; `/probe` and `check` use it as the scheduler
does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from exporter.config import ClusterConfig, ExporterConfig, NodeConfig, ScheduledProbeConfig
from exporter.logsetup import get_logger
from exporter.probes.builtin import BUILTIN_PROBES
from exporter.probes.spec import Key, Probe, ProbeSpec, Target
from exporter.results import ProbeResult, ProbeRun
from exporter.timing import Deadline

__all__ = ["ProbeJob", "ProbeRunner", "targets"]

log = get_logger(__name__)

# The outer guard only catches a probe that ignores its deadline (a bug); probes are expected
# to finish by themselves, so give them this much extra before cancelling.
_GUARD_SECONDS = 1.0


@dataclass(frozen=True)
class ProbeJob:
    """One (node, probe) pair the configuration asks for, with the settings it runs with."""

    cluster: ClusterConfig
    node: NodeConfig
    spec: ProbeSpec
    settings: ScheduledProbeConfig

    @property
    def key(self) -> Key:
        return (self.cluster.name, self.node.name, self.spec.name)


def targets(config: ExporterConfig, specs: Iterable[ProbeSpec]) -> list[ProbeJob]:
    """Every enabled probe on every node it applies to, in config order."""
    chosen = [spec for spec in specs if spec.enabled(config)]
    return [
        ProbeJob(cluster, node, spec, spec.settings(config))
        for cluster in config.clusters
        for node in cluster.nodes
        for spec in chosen
        if spec.applies_to(cluster, node)
    ]


class ProbeRunner:
    """Runs one probe once against one node and turns whatever happens into a ProbeRun.

    It builds each probe from its spec once, so what a probe keeps between runs (SNMP engines,
    the last phone-table walk) belongs to this runner alone.
    """

    def __init__(
        self,
        specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
        *,
        latest: Callable[[], Mapping[Key, ProbeRun]] = dict,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.specs: Mapping[str, ProbeSpec] = {spec.name: spec for spec in specs}
        self._probes: dict[str, Probe] = {name: spec.build() for name, spec in self.specs.items()}
        self._latest = latest
        self._clock = clock
        self._now = now

    def retain(self, config: ExporterConfig) -> None:
        """Tell each probe which nodes it still runs on, so its caches cannot grow."""
        nodes: dict[str, set[tuple[str, str]]] = {name: set() for name in self._probes}
        for job in targets(config, self.specs.values()):
            nodes[job.spec.name].add((job.cluster.name, job.node.name))
        for name, probe in self._probes.items():
            probe.retain(nodes[name])

    async def aclose(self) -> None:
        """Let probes that hold resources (the SNMP engine's sockets) release them."""
        for probe in self._probes.values():
            await probe.aclose()

    async def run_job(self, config: ExporterConfig, job: ProbeJob) -> ProbeRun:
        return await self.run(config, job.cluster, job.node, job.spec.name, settings=job.settings)

    async def run(
        self,
        config: ExporterConfig,
        cluster: ClusterConfig,
        node: NodeConfig,
        probe: str,
        *,
        settings: ScheduledProbeConfig | None = None,  # /probe: narrowed to a port
        timeout_seconds: float | None = None,  # /probe: the scrape's time, not the config's
    ) -> ProbeRun:
        spec = self.specs[probe]
        settings = spec.settings(config) if settings is None else settings
        timeout = settings.timeout if timeout_seconds is None else timeout_seconds
        started_at, started = self._now(), self._clock()
        deadline = Deadline(started + timeout, self._clock)
        target = Target(config, cluster, node, settings, self._latest())
        result: ProbeResult | None = None
        try:
            async with asyncio.timeout(timeout + _GUARD_SECONDS):
                result = await self._probes[probe].run(target, deadline)
            success, reason = result.success, result.reason
        except TimeoutError:
            log.warning(
                "probe overran its deadline", probe=probe, cluster=cluster.name, node=node.name
            )
            success, reason = False, "deadline_exceeded"
        except Exception:
            # Probes classify network failures themselves; anything else is our bug. Keep
            # serving, and make it visible.
            log.exception(
                "probe failed unexpectedly", probe=probe, cluster=cluster.name, node=node.name
            )
            success, reason = False, "internal_error"
        return ProbeRun(
            cluster=cluster.name,
            node=node.name,
            probe=probe,
            started=started_at,
            duration_seconds=self._clock() - started,
            success=success,
            reason=reason,
            result=result,
        )
