"""Parts 2 and 3: /metrics render time and size, and the daemon's memory, at full scale.

The daemon runs all three probes with a long interval, so after the first round (every node
with a TLS, a directory and an SNMP result, its phone table walked) nothing runs but the
scrapes: each scrape's wall time is its render time plus loopback I/O, and the daemon's CPU
over all scrapes, divided by their number, is the CPU one render costs. Run once against a lab
of ~100 phones per node and once against one of ~10 (the same 13 models, so the same series):
the difference is what the number of phones costs.

This is the quiet case: between two scrapes no probe result changes, so the collector's phone
summary cache (`CucmCollector._phone_summary`) always hits. `inproc.py` measures the other case.
"""

from __future__ import annotations

import gzip
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.exposition import probe_runs, samples
from bench.labserver import LabInfo
from bench.processes import Daemon
from bench.report import loadavg
from bench.scale import configs
from bench.scale.configs import write_config

PROBES = ("tls", "directory", "snmp")
QUIET_INTERVAL = 900.0  # longer than the whole part: after the first round, nothing runs
FIRST_ROUND_LIMIT = 600.0  # the first SNMP round walks every phone table: minutes
POLL = 10.0
# What Prometheus 2.x/3.x asks for: prometheus_client then answers in OpenMetrics.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# Format -> (Accept, Accept-Encoding). "prometheus" is what Prometheus sends: OpenMetrics, gzip.
FORMATS: dict[str, tuple[str | None, str | None]] = {
    "text": (None, None),
    "openmetrics": (PROMETHEUS_ACCEPT, None),
    "prometheus": (PROMETHEUS_ACCEPT, "gzip"),
}
# Scrapes less than EXPOSITION_MAX_AGE (1 s) apart are served the previous body
# (exporter/server.py): a "rendered" scrape waits this long after the previous one ended, so
# that each one renders /metrics as a Prometheus scraping every 15-60 s would have it rendered.
RENDER_SPACING = 1.3


@dataclass(frozen=True)
class ScrapeStats:
    format: str
    spacing_seconds: float  # 0: back to back (served from the body cache); else each renders
    scrapes: int
    median_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_scrape: float
    bytes: int
    gzip_bytes: int  # what it would be at gzip level 6, for comparison
    wire_bytes: int  # what came over the wire: the daemon gzips when asked (level 1)
    lines: int
    samples: int
    loadavg: str


@dataclass(frozen=True)
class ScaleResult:
    phones_per_node: int
    nodes: int
    phones_total: int  # sum of cucm_phones: what the exporter saw
    first_round_seconds: float
    first_round_cpu_seconds: float
    rss_mb_at_ready: float  # config loaded, nothing probed yet: the floor
    rss_mb_before_scrapes: float
    rss_mb_after_scrapes: float
    peak_rss_mb: float
    scrapes: list[ScrapeStats]


def wait_for_all_results(
    daemon: Daemon, nodes: int, limit: float, *, quiet: bool = True
) -> dict[str, int]:
    """Until every node has a result of each probe.

    `quiet`: the daemon will idle once the round is over (long intervals), so wait for that
    before each scrape and scrape rarely. Otherwise (short intervals, it may never idle) look
    every POLL seconds.
    """
    deadline = time.monotonic() + limit
    while True:
        if quiet:
            daemon.wait_idle(window=2.0, limit=limit)
        else:
            time.sleep(POLL)
        status, body = daemon.get("/metrics")
        runs = probe_runs(body) if status == 200 else {}
        counts = {probe: sum(key[2] == probe for key in runs) for probe in PROBES}
        if all(count >= nodes for count in counts.values()):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"results after {limit:g}s: {counts} of {nodes} nodes each")


def scrape_many(daemon: Daemon, fmt: str, count: int, spacing: float = 0.0) -> ScrapeStats:
    """`count` scrapes, each on a fresh connection, `spacing` seconds after the previous one
    ended (0: back to back); wall per scrape, the daemon's CPU over all (it idles between)."""
    accept, encoding = FORMATS[fmt]
    daemon.get("/metrics", accept, encoding)  # warm: the first render after the round
    walls, wire = [], b""
    load = loadavg()
    cpu = daemon.cpu_seconds()
    for _ in range(count):
        time.sleep(spacing)
        started = time.perf_counter()
        status, wire = daemon.get("/metrics", accept, encoding)
        walls.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
    cpu = daemon.cpu_seconds() - cpu
    walls.sort()
    body = gzip.decompress(wire) if encoding else wire
    lines = body.count(b"\n")
    return ScrapeStats(
        format=fmt,
        spacing_seconds=spacing,
        scrapes=count,
        median_ms=1000 * statistics.median(walls),
        p99_ms=1000 * walls[min(len(walls) - 1, round(0.99 * (len(walls) - 1)))],
        max_ms=1000 * walls[-1],
        cpu_ms_per_scrape=1000 * cpu / count,
        bytes=len(body),
        gzip_bytes=len(gzip.compress(body, compresslevel=6)),
        wire_bytes=len(wire),
        lines=lines,
        samples=lines - body.count(b"\n#") - body.startswith(b"#"),
        loadavg=load,
    )


def measure(
    lab: LabInfo,
    concurrency: int,
    scrapes: Mapping[tuple[str, float], int],
    directory: Path,
) -> ScaleResult:
    """`scrapes`: how many scrapes per format and spacing (see `scrape_many`)."""
    document = configs.all_probes(
        lab.base_config(), concurrency, QUIET_INTERVAL, QUIET_INTERVAL, QUIET_INTERVAL
    )
    nodes = configs.node_count(document)
    tag = f"{lab.phones_per_node}phones"
    config = write_config(document, directory / f"scale-render-{tag}.yml")
    log = directory / f"scale-daemon-render-{tag}.log"
    with Daemon(config, log) as daemon:
        at_ready = daemon.memory_mb()
        started, cpu = time.perf_counter(), daemon.cpu_seconds()
        wait_for_all_results(daemon, nodes, FIRST_ROUND_LIMIT)
        first_round = (time.perf_counter() - started, daemon.cpu_seconds() - cpu)
        _, body = daemon.get("/metrics")
        phones = int(sum(s.value for s in samples(body, ["cucm_phones"])))
        before = daemon.memory_mb()
        stats = [
            scrape_many(daemon, fmt, count, spacing)
            for (fmt, spacing), count in scrapes.items()
            if count
        ]
        after = daemon.memory_mb()
    return ScaleResult(
        phones_per_node=lab.phones_per_node,
        nodes=nodes,
        phones_total=phones,
        first_round_seconds=first_round[0],
        first_round_cpu_seconds=first_round[1],
        rss_mb_at_ready=at_ready["VmRSS"],
        rss_mb_before_scrapes=before["VmRSS"],
        rss_mb_after_scrapes=after["VmRSS"],
        peak_rss_mb=after["VmHWM"],
        scrapes=stats,
    )


def as_rows(result: ScaleResult) -> list[dict[str, Any]]:
    return [
        {
            "phones/node": result.phones_per_node,
            "format": s.format,
            "spacing s": s.spacing_seconds,
            "median ms": f"{s.median_ms:.0f}",
            "p99 ms": f"{s.p99_ms:.0f}",
            "CPU ms": f"{s.cpu_ms_per_scrape:.0f}",
            "MB": f"{s.bytes / 1e6:.1f}",
            "gzip MB": f"{s.gzip_bytes / 1e6:.2f}",
            "wire MB": f"{s.wire_bytes / 1e6:.2f}",
            "samples": s.samples,
            "load": s.loadavg,
        }
        for s in result.scrapes
    ]
