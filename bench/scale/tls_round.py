"""Part 1, our side: one full round of TLS probes over every lab node, inside one interval.

The daemon starts with TLS probes only and jitter 0, so every node's job fires at the same
instant each interval and `scheduler.max_concurrent_probes` alone decides how many run at once.
The first round (right after start-up) warms up: contexts, caches, lazy imports. The second
round, one interval later, is measured:

* CPU: the daemon's utime+stime from /proc, read while it idles before the round and again once
  it idles after it. Nothing else runs in the daemon then: no scrape happens inside the window.
* wall: from the round's scheduled instant to the end of its last run, from
  cucm_probe_last_run_timestamp_seconds + cucm_probe_duration_seconds of every node (one
  scrape after the CPU window closed).
* overrun: the round must end before the next one is due, and the daemon must not have
  skipped a run because the previous one was still going (cucm_exporter_probe_runs_skipped_total,
  read after the CPU window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.exposition import ProbeRunInfo, probe_runs
from bench.labserver import LabInfo
from bench.processes import Daemon, cpu_seconds
from bench.report import loadavg
from bench.scale import configs
from bench.scale.configs import write_config

MISSED = "was missed by"  # APScheduler: a run started later than misfire_grace_time allows
LEAD = 3.0  # read the CPU this long before the measured round is due


@dataclass(frozen=True)
class RoundResult:
    max_concurrent_probes: int
    interval_seconds: float
    nodes: int
    handshakes: int
    wall_seconds: float  # scheduled instant -> last run's end
    first_to_last_seconds: float  # first run's start -> last run's end
    cpu_seconds: float
    handshakes_per_cpu_second: float
    lab_cpu_seconds: float  # the lab's side of the same round, for context
    run_duration_median: float
    run_duration_max: float
    failed_runs: int
    overran: bool
    skipped_warnings: int
    missed_warnings: int
    warmup_wall_seconds: float
    loadavg_before: str
    loadavg_after: str


def tls_runs(daemon: Daemon) -> dict[tuple[str, str, str], ProbeRunInfo]:
    status, body = daemon.get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return {key: run for key, run in probe_runs(body).items() if key[2] == "tls"}


def wait_for_round(daemon: Daemon, nodes: int, since: float, limit: float) -> list[ProbeRunInfo]:
    """Wait (idle-detected, then one scrape) until every node has a TLS run started after
    `since`; scrape again only if the first look finds the round unfinished."""
    deadline = time.monotonic() + limit
    while True:
        daemon.wait_idle(limit=limit)
        runs = [run for run in tls_runs(daemon).values() if run.started >= since]
        if len(runs) >= nodes:
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(runs)} of {nodes} TLS runs after {limit:g}s")
        time.sleep(1.0)


def measure(lab: LabInfo, concurrency: int, interval: float, directory: Path) -> RoundResult:
    document = configs.tls_only(lab.base_config(), concurrency, interval)
    nodes = configs.node_count(document)
    config = write_config(document, directory / f"scale-tls-P{concurrency}.yml")
    log = directory / f"scale-daemon-tls-P{concurrency}.log"
    with Daemon(config, log) as daemon:
        ready = time.time()
        warmup = wait_for_round(daemon, nodes, since=0.0, limit=interval)
        scheduled = min(run.started for run in warmup) + interval
        time.sleep(max(0.0, scheduled - LEAD - time.time()))
        load_before, cpu_before = loadavg(), daemon.cpu_seconds()
        lab_before = cpu_seconds(lab.pid)
        # Past the due time first, or the idle check would see the calm before the round.
        time.sleep(max(0.0, scheduled + 1.0 - time.time()))
        cpu_after = daemon.wait_idle(limit=interval)
        lab_cpu = cpu_seconds(lab.pid) - lab_before
        load_after = loadavg()
        runs = wait_for_round(daemon, nodes, since=scheduled - 1.0, limit=interval)
        return _result(
            concurrency,
            interval,
            runs,
            (cpu_after - cpu_before, lab_cpu),
            scheduled,
            daemon,
            max(r.ended for r in warmup) - ready,
            (load_before, load_after),
        )


def _result(
    concurrency: int,
    interval: float,
    runs: list[ProbeRunInfo],
    cpu: tuple[float, float],
    scheduled: float,
    daemon: Daemon,
    warmup_wall: float,
    loads: tuple[str, str],
) -> RoundResult:
    durations = sorted(run.duration for run in runs)
    end = max(run.ended for run in runs)
    handshakes = len(runs) * configs.TLS_PORTS * configs.HANDSHAKES_PER_PORT
    return RoundResult(
        max_concurrent_probes=concurrency,
        interval_seconds=interval,
        nodes=len(runs),
        handshakes=handshakes,
        wall_seconds=end - scheduled,
        first_to_last_seconds=end - min(run.started for run in runs),
        cpu_seconds=cpu[0],
        handshakes_per_cpu_second=handshakes / cpu[0],
        lab_cpu_seconds=cpu[1],
        run_duration_median=durations[len(durations) // 2],
        run_duration_max=durations[-1],
        failed_runs=sum(not run.success for run in runs),
        overran=end >= scheduled + interval,
        skipped_warnings=daemon.skipped_runs(),
        missed_warnings=daemon.log_count(MISSED),
        warmup_wall_seconds=warmup_wall,
        loadavg_before=loads[0],
        loadavg_after=loads[1],
    )


def as_row(result: RoundResult) -> dict[str, Any]:
    return {
        "P": result.max_concurrent_probes,
        "wall s": f"{result.wall_seconds:.1f}",
        "CPU s": f"{result.cpu_seconds:.2f}",
        "hs/CPU-s": f"{result.handshakes_per_cpu_second:.0f}",
        "run med/max s": f"{result.run_duration_median:.2f}/{result.run_duration_max:.2f}",
        "failed": result.failed_runs,
        "overran": result.overran,
        "load": result.loadavg_before,
    }
