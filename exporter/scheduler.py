"""Runs every probe against every node on an APScheduler schedule and keeps the results.

One job per (node, probe) from `targets(config)`: its interval and jitter from the config,
`max_instances=1` so runs never overlap, `coalesce=True` so a stalled loop does not replay
missed runs. A global semaphore bounds how many probe runs are in flight. The runner gives each
run its deadline.

A reload keeps the schedule of every job whose node and settings did not change; only new or
changed jobs start afresh (within their jitter), so a config reloader that posts /-/reload
often does not start a full round against Cisco's throttled agents each time.

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
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import ExporterConfig
from exporter.logsetup import get_logger
from exporter.probes import Key, ProbeJob, ProbeRunner, targets
from exporter.results import ProbeRun
from exporter.store import ResultStore

__all__ = ["JobInfo", "ProbeScheduler"]

log = get_logger(__name__)

# How often the log may say that runs were skipped, per probe.
SKIPPED_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class JobInfo:
    """What the scheduler holds for one job."""

    key: Key
    interval: float
    jitter: float
    next_run: dt.datetime | None
    max_instances: int
    coalesce: bool


class ProbeScheduler:
    """Keeps one job per configured (node, probe) and writes each run to the store."""

    def __init__(
        self,
        store: ResultStore,
        runner: ProbeRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._runner = runner or ProbeRunner(latest=store.snapshot)
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._config: ExporterConfig | None = None
        self._limit = asyncio.Semaphore(1)
        self._in_flight: set[asyncio.Task[ProbeRun]] = set()
        self._jobs: dict[Key, ProbeJob] = {}  # what the current config schedules
        self._stopping = False
        self._skip_log = _SkipLog(clock)
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(_not_max_instances)

    @property
    def runner(self) -> ProbeRunner:
        return self._runner

    def start(self, config: ExporterConfig) -> None:
        """Schedule `config` and start; call from inside the running event loop."""
        self.apply(config)
        self._scheduler.start()

    def apply(self, config: ExporterConfig) -> None:
        """Schedule what `config` asks for (start-up and reload): unchanged jobs keep their
        next run, changed and new ones start within their jitter, removed ones go."""
        slots = config.scheduler.max_concurrent_probes
        if self._config is None or slots != self._config.scheduler.max_concurrent_probes:
            self._limit = asyncio.Semaphore(slots)
        self._config = config
        wanted = {job.key: job for job in targets(config, self._runner.specs.values())}
        for key in [key for key in self._jobs if key not in wanted]:
            self._scheduler.remove_job(_job_id(key))
            del self._jobs[key]
        now = dt.datetime.now(dt.UTC)
        kept = 0
        for key, job in wanted.items():
            held = self._jobs.get(key)
            self._jobs[key] = job  # runs read the job of the running config
            if held is not None and (held.node, held.settings) == (job.node, job.settings):
                kept += 1
                continue
            if held is not None:
                self._scheduler.remove_job(_job_id(key))
            self._add(job, now)
        self._store.retain(wanted)
        self._runner.retain(config)
        log.info("scheduled probe jobs", jobs=len(wanted), unchanged=kept)

    def jobs(self) -> dict[Key, JobInfo]:
        """The jobs the scheduler holds now."""
        found = {}
        for job in self._scheduler.get_jobs():
            key = _key(job.id)
            found[key] = JobInfo(
                key=key,
                interval=job.trigger.interval.total_seconds(),
                jitter=float(job.trigger.jitter or 0),
                next_run=getattr(job, "next_run_time", None),
                max_instances=job.max_instances,
                coalesce=job.coalesce,
            )
        return found

    async def run_once(self, key: Key) -> None:
        """Run the job of `key` now, as its schedule would: in a slot, into the store."""
        await self._run_job(key)

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

    def _add(self, job: ProbeJob, now: dt.datetime) -> None:
        settings = job.settings
        # Spread first runs over the jitter window so a restart does not hit every node at
        # the same instant.
        first = now + dt.timedelta(seconds=random.uniform(0, settings.jitter))
        self._scheduler.add_job(
            self._run_job,
            IntervalTrigger(seconds=settings.interval, jitter=settings.jitter or None),
            args=[job.key],
            id=_job_id(job.key),
            name=_job_id(job.key),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(settings.interval)),
            next_run_time=first,
        )

    def _skipped(self, event: JobSubmissionEvent) -> None:
        key = _key(event.job_id)
        if key in self._jobs:
            self._store.skip(key)
            self._skip_log.skipped(key[2])

    async def _run_job(self, key: Key) -> None:
        config, job = self._config, self._jobs.get(key)
        if config is None or job is None:
            return  # the job outlived a reload that removed its node
        try:
            async with self._limit:
                task = asyncio.create_task(self._runner.run_job(config, job))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                run = await task
        except asyncio.CancelledError:
            if self._stopping:
                # stop() cancelled the run, or the shutdown cancelled a job still waiting for
                # a slot: not an error worth a traceback (APScheduler logs one per job).
                return
            raise
        if key not in self._jobs:
            return  # a reload removed this target while it was being probed: drop the result
        previous = self._store.snapshot().get(key)
        self._store.put(run)
        self._log_run(run, previous)

    def _log_run(self, run: ProbeRun, previous: ProbeRun | None) -> None:
        """Every change of a classified outcome (a route's result, a port's accepted set, an
        inventory source failing) is logged once at info, as fields; repeats only at debug."""
        summarize = self._runner.specs[run.probe].summarize_run
        outcome = summarize(run)
        before = summarize(previous) if previous is not None else ""
        changed = previous is None or (previous.success, before) != (run.success, outcome)
        say = log.info if changed else log.debug
        say(
            "probe outcome changed" if changed else "probe outcome unchanged",
            probe=run.probe,
            cluster=run.cluster,
            node=run.node,
            success=run.success,
            reason=run.reason,
            outcome=outcome,
            previous=before,
            duration_seconds=round(run.duration_seconds, 3),
        )


def _job_id(key: Key) -> str:
    return "/".join(key)


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
            "runs came due while the previous run of their node was still going or waiting "
            "for a slot; if this goes on, raise scheduler.max_concurrent_probes or the "
            "probe's interval",
            probe=probe,
            skipped=self._pending.pop(probe),
        )
