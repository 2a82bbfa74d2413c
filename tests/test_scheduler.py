"""The runner's guard rails and the scheduler's job options (fakes for logic only)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ExporterConfig, NodeConfig, parse_config
from exporter.lab import Lab
from exporter.metrics.collector import CucmCollector
from exporter.probes import NodeProbe, ProbeRunner, ProbeSpec
from exporter.results import TlsProbeResult
from exporter.scheduler import ProbeScheduler
from exporter.state import ExporterState
from exporter.store import Key, ResultStore
from exporter.timing import Deadline

CONFIG = """
probes:
  tls: {interval: 30s, timeout: 0.2s, jitter: 2s, handshake_timeout: 0.1s}
clusters:
  - name: c
    nodes:
      - {name: a, host: 127.0.0.1}
      - {name: b, host: 127.0.0.1}
"""


def config() -> ExporterConfig:
    return parse_config(CONFIG, base_dir=Path.cwd())


def runner_with(probe: Any) -> ProbeRunner:
    return ProbeRunner([ProbeSpec("tls", lambda c: c.probes.tls, lambda: NodeProbe(probe))])


async def test_a_probe_that_ignores_its_deadline_is_cut_off() -> None:
    async def hangs(node: NodeConfig, settings: Any, deadline: Deadline) -> TlsProbeResult:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    cfg = config()
    run = await runner_with(hangs).run(cfg, cfg.clusters[0], cfg.clusters[0].nodes[0], "tls")
    assert (run.success, run.reason, run.result) == (False, "deadline_exceeded", None)


async def test_a_probe_bug_becomes_a_failed_run() -> None:
    async def broken(node: NodeConfig, settings: Any, deadline: Deadline) -> TlsProbeResult:
        raise KeyError("bug")

    cfg = config()
    run = await runner_with(broken).run(cfg, cfg.clusters[0], cfg.clusters[0].nodes[0], "tls")
    assert (run.success, run.reason) == (False, "internal_error")


async def test_the_probe_gets_the_configured_deadline() -> None:
    seen: list[float] = []

    async def records(node: NodeConfig, settings: Any, deadline: Deadline) -> TlsProbeResult:
        seen.append(deadline.remaining())
        return TlsProbeResult(ports=())

    cfg = config()
    run = await runner_with(records).run(cfg, cfg.clusters[0], cfg.clusters[0].nodes[1], "tls")
    assert 0.1 < seen[0] <= 0.2
    assert (run.cluster, run.node, run.probe, run.success) == ("c", "b", "tls", True)


async def test_one_job_per_node_and_probe_that_never_overlaps() -> None:
    store = ResultStore()
    scheduler = ProbeScheduler(store)
    scheduler.start(config())
    try:
        jobs = {"/".join(key): job for key, job in scheduler.jobs().items()}
        assert set(jobs) == {"c/a/tls", "c/b/tls", "c/a/directory", "c/b/directory"}
        for job in jobs.values():
            assert job.max_instances == 1
            assert job.coalesce is True
        assert jobs["c/a/tls"].interval == 30
        assert jobs["c/a/tls"].jitter == 2
        assert jobs["c/a/directory"].interval == 60  # the default
    finally:
        await scheduler.stop()


async def test_a_run_that_outlives_its_node_is_dropped() -> None:
    """A reload removes a node while its probe runs: the late result must not bring it back."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(node: NodeConfig, settings: Any, deadline: Deadline) -> TlsProbeResult:
        started.set()
        await release.wait()
        return TlsProbeResult(ports=())

    store = ResultStore()
    scheduler = ProbeScheduler(store, runner_with(slow))
    scheduler.apply(config())
    job = asyncio.create_task(scheduler.run_once(("c", "a", "tls")))
    await started.wait()
    without_a = parse_config(
        CONFIG.replace("      - {name: a, host: 127.0.0.1}\n", ""), base_dir=Path.cwd()
    )
    scheduler.apply(without_a)
    release.set()
    await job
    assert ("c", "a", "tls") not in store.snapshot()
    await scheduler.stop()


async def test_skipped_runs_are_counted_and_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three nodes, one slot, runs as long as the interval: runs come due while the previous
    one of their node still waits for the slot, so the scheduler skips them."""

    async def takes_its_time(node: NodeConfig, settings: Any, deadline: Deadline) -> TlsProbeResult:
        await asyncio.sleep(deadline.remaining())
        return TlsProbeResult(ports=())

    busy = parse_config(
        """
        scheduler: {max_concurrent_probes: 1}
        probes: {tls: {interval: 1s, timeout: 0.9s, jitter: 0s}}
        clusters: [{name: c, nodes: [{name: a, host: h}, {name: b, host: h}, {name: d, host: h}]}]
        """,
        base_dir=Path.cwd(),
    )
    three_skipped = asyncio.Event()

    class Store(ResultStore):
        def skip(self, key: Key) -> None:
            super().skip(key)
            if self.skipped()["tls"] >= 3:
                three_skipped.set()

    store = Store()
    scheduler = ProbeScheduler(store, runner_with(takes_its_time))
    caplog.set_level(logging.INFO)
    scheduler.start(busy)
    try:
        await asyncio.wait_for(three_skipped.wait(), timeout=20)
    finally:
        await scheduler.stop()
    # One line for the first skip, none for the next ones within the minute; and none of
    # APScheduler's own warnings (it says one per skipped run).
    said = [r.msg for r in caplog.records if isinstance(r.msg, dict) and "skipped" in r.msg]
    assert len(said) == 1, said
    assert (said[0]["probe"], said[0]["skipped"]) == ("tls", 1)
    assert said[0]["event"].startswith("runs came due")
    assert not [r for r in caplog.records if "maximum number of running" in r.getMessage()]
    collector = CucmCollector(store, ExporterState(busy, 0.0))
    (family,) = [
        f for f in collector.self_families() if f.name == "cucm_exporter_probe_runs_skipped"
    ]
    by_probe = {s.labels["probe"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert by_probe == {
        "tls": store.skipped()["tls"],
        "directory": 0.0,
        "snmp": 0.0,
        "risport": 0.0,
    }


def _lab_config(lab: Lab, snmp_retries: int = 0) -> ExporterConfig:
    """Long intervals (no second run during the test), a 1 s jitter for the first ones."""
    data = lab.exporter_config(interval=300.0, timeout=8.0)
    for probe in data["probes"].values():
        probe["jitter"] = "1s"
    data["probes"]["snmp"]["retries"] = snmp_retries
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"gave up after {seconds:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_reload_keeps_the_schedule_of_unchanged_jobs(lab: Lab) -> None:
    """Counted at the lab's SNMP agents: reloads of the same config (a config-reloader sidecar,
    an Ansible loop) start no SNMP poll; a changed setting starts one, on the nodes it changes."""
    scheduler = ProbeScheduler(ResultStore())
    scheduler.start(_lab_config(lab))
    try:
        await _until(
            lambda: all(lab.snmp_requests(n) > 0 for n in ("cucm-pub", "cucm-sub1")),
            20,
            "the first SNMP polls",
        )
        await asyncio.sleep(1.5)  # past the jitter: every first run has started
        polled = {n: lab.snmp_requests(n) for n in ("cucm-pub", "cucm-sub1")}
        planned = {key: job.next_run for key, job in scheduler.jobs().items()}
        for _ in range(3):
            scheduler.apply(_lab_config(lab))  # parsed afresh, equal settings
        assert {key: job.next_run for key, job in scheduler.jobs().items()} == planned
        await asyncio.sleep(2.5)  # a job started afresh would have run within its 1 s jitter
        assert {n: lab.snmp_requests(n) for n in polled} == polled

        # The positive control: a changed SNMP setting re-plans the SNMP jobs, and only them.
        scheduler.apply(_lab_config(lab, snmp_retries=1))
        await _until(
            lambda: all(lab.snmp_requests(n) > polled[n] for n in polled), 20, "new SNMP polls"
        )
        replanned = scheduler.jobs()
        for key, when in planned.items():
            assert (replanned[key].next_run == when) is (key[2] != "snmp"), key
    finally:
        await scheduler.stop()
