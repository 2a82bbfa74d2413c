"""Runs every probe against every node on an APScheduler schedule and keeps the results.

One job per (node, probe): its interval and jitter from the config, `max_instances=1` so runs
never overlap, `coalesce=True` so a stalled loop does not replay missed runs. A global
semaphore bounds how many probe runs are in flight. Each run gets one deadline, here.

A run that comes due while the previous one still runs (or still waits for a slot) is skipped.
That is the sign of a daemon that cannot keep up, so it is counted in the store (a metric and
an alert) and logged at most once a minute per probe, instead of APScheduler's line per skip:
at a thousand nodes a slow first round skipped thousands of runs (bench/README.md, "Scale").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable, Mapping

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import ClusterConfig, ExporterConfig, NodeConfig
from exporter.probes import PROBES, ProbeSpec
from exporter.results import ProbeResult, ProbeRun
from exporter.store import Key, ResultStore
from exporter.timing import Deadline

log = logging.getLogger(__name__)

# How often the log may say that runs were skipped, per probe.
SKIPPED_LOG_INTERVAL = 60.0

# The outer guard only catches a probe that ignores its deadline (a bug); probes are expected
# to finish by themselves, so give them this much extra before cancelling.
_GUARD_SECONDS = 1.0


class ProbeRunner:
    """Runs one probe once against one node and turns whatever happens into a ProbeRun."""

    def __init__(
        self,
        probes: Mapping[str, ProbeSpec] = PROBES,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.probes = probes
        self._clock = clock
        self._now = now

    async def aclose(self) -> None:
        """Let probes that hold resources (the SNMP engine's sockets) release them."""
        for spec in self.probes.values():
            close = getattr(spec.run, "aclose", None)
            if close is not None:
                await close()

    async def run(
        self,
        config: ExporterConfig,
        cluster: ClusterConfig,
        node: NodeConfig,
        probe: str,
        *,
        timeout_seconds: float | None = None,  # /probe: the scrape's time, not the config's
    ) -> ProbeRun:
        spec = self.probes[probe]
        timeout = spec.settings(config).timeout if timeout_seconds is None else timeout_seconds
        started_at, started = self._now(), self._clock()
        deadline = Deadline(started + timeout, self._clock)
        result: ProbeResult | None = None
        try:
            async with asyncio.timeout(timeout + _GUARD_SECONDS):
                result = await spec.run(node, spec.settings(config), deadline)
            success, reason = result.success, result.reason
        except TimeoutError:
            log.warning(
                "probe=%s cluster=%s node=%s overran its deadline", probe, cluster.name, node.name
            )
            success, reason = False, "deadline_exceeded"
        except Exception:
            # Probes classify network failures themselves; anything else is our bug. Keep
            # serving, and make it visible.
            log.exception(
                "probe=%s cluster=%s node=%s failed unexpectedly", probe, cluster.name, node.name
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


class ProbeScheduler:
    """Keeps one job per configured (node, probe) and writes each run to the store."""

    def __init__(
        self,
        store: ResultStore,
        runner: ProbeRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._runner = runner or ProbeRunner()
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._config: ExporterConfig | None = None
        self._limit = asyncio.Semaphore(1)
        self._in_flight: set[asyncio.Task[ProbeRun]] = set()
        self._keys: set[Key] = set()  # the targets the current config schedules
        self._stopping = False
        self._skip_log = _SkipLog(clock)
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(_not_max_instances)

    def start(self, config: ExporterConfig) -> None:
        """Schedule `config` and start; call from inside the running event loop."""
        self.apply(config)
        self._scheduler.start()

    def apply(self, config: ExporterConfig) -> None:
        """Replace every job with the ones `config` asks for (start-up and reload)."""
        self._config = config
        self._limit = asyncio.Semaphore(config.scheduler.max_concurrent_probes)
        self._scheduler.remove_all_jobs()
        keys: list[Key] = []
        now = dt.datetime.now(dt.UTC)
        for cluster in config.clusters:
            for node in cluster.nodes:
                for name, spec in self._runner.probes.items():
                    settings = spec.settings(config)
                    if not settings.enabled or not spec.applies_to(node):
                        continue
                    key = (cluster.name, node.name, name)
                    keys.append(key)
                    # Spread first runs over the jitter window so a restart does not hit every
                    # node at the same instant.
                    first = now + dt.timedelta(seconds=random.uniform(0, settings.jitter))
                    self._scheduler.add_job(
                        self._run_job,
                        IntervalTrigger(seconds=settings.interval, jitter=settings.jitter or None),
                        args=[key],
                        id="/".join(key),
                        name="/".join(key),
                        max_instances=1,
                        coalesce=True,
                        misfire_grace_time=max(1, int(settings.interval)),
                        next_run_time=first,
                    )
        self._keys = set(keys)
        self._store.retain(keys)
        log.info("scheduled %d probe jobs", len(keys))

    async def stop(self) -> None:
        """Start no new runs and cancel the ones in flight, quietly: a clean shutdown."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await asyncio.sleep(0)  # let the job coroutines see their runs end
        await self._runner.aclose()

    def _skipped(self, event: JobSubmissionEvent) -> None:
        key = _key(event.job_id)
        if key in self._keys:
            self._store.skip(key)
            self._skip_log.skipped(key[2])

    async def _run_job(self, key: Key) -> None:
        config = self._config
        target = _find(config, key) if config else None
        if config is None or target is None:
            return  # the job outlived a reload that removed its node
        cluster, node = target
        try:
            async with self._limit:
                task = asyncio.create_task(self._runner.run(config, cluster, node, key[2]))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                run = await task
        except asyncio.CancelledError:
            if self._stopping:
                # stop() cancelled the run, or the shutdown cancelled a job still waiting for
                # a slot: not an error worth a traceback (APScheduler logs one per job).
                return
            raise
        if key not in self._keys:
            return  # a reload removed this target while it was being probed: drop the result
        previous = self._store.snapshot().get(key)
        self._store.put(run)
        level = (
            logging.INFO if previous is None or previous.success != run.success else logging.DEBUG
        )
        log.log(
            level,
            "probe=%s cluster=%s node=%s success=%s reason=%s duration=%.3fs",
            key[2],
            key[0],
            key[1],
            run.success,
            run.reason,
            run.duration_seconds,
        )


def _find(config: ExporterConfig, key: Key) -> tuple[ClusterConfig, NodeConfig] | None:
    for cluster in config.clusters:
        if cluster.name == key[0]:
            for node in cluster.nodes:
                if node.name == key[1]:
                    return cluster, node
    return None


def _key(job_id: str) -> Key:
    cluster, node, probe = job_id.split("/")  # as apply() names the jobs
    return cluster, node, probe


def _not_max_instances(record: logging.LogRecord) -> bool:
    """Drop APScheduler's warning per skipped run; _SkipLog says it once a minute instead."""
    return "maximum number of running instances reached" not in record.getMessage()


class _SkipLog:
    """A warning about skipped runs at most every SKIPPED_LOG_INTERVAL seconds per probe,
    with how many were skipped since the last one."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def skipped(self, probe: str) -> None:
        self._pending[probe] = self._pending.get(probe, 0) + 1
        now = self._clock()
        if now - self._last.get(probe, -math.inf) < SKIPPED_LOG_INTERVAL:
            return
        self._last[probe] = now
        log.warning(
            "probe=%s skipped=%d runs came due while the previous run of their node was still "
            "going or waiting for a slot; if this goes on, raise "
            "scheduler.max_concurrent_probes or the probe's interval",
            probe,
            self._pending.pop(probe),
        )
