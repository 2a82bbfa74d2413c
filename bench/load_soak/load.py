"""Load: 50 concurrent scrapers on the daemon while it probes 100 nodes, 10% of them failing.

Timeline of one run (fresh lab and daemon processes each run):

1. the lab (its own process) starts clusters x nodes and writes the exporter config: tls,
   directory and snmp probes, every `--interval` seconds, `--timeout` deadline each;
2. the daemon starts on that config; once it is ready the fault rotation starts: every
   `--rotate-every` seconds the failing 10% (TVS stalls, directory answers HTTP 500, SNMP
   agent silent) are healed and the next 10% fail;
3. `--warmup` seconds for the schedule to reach a steady state with faults;
4. `--baseline` seconds of probing without scrapes: the daemon's CPU for probing alone;
5. `--duration` seconds of `--scrapers` concurrent scrapers, each scraping again as soon as its
   last scrape ended (no pause): the daemon's CPU, scrape latencies and failures;
6. the rotation stops and heals, the daemon and the lab are stopped (on errors too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import profiling
from bench.exposition import labelled_values, unlabelled
from bench.labserver import LabInfo
from bench.load_soak.common import (
    MISSED,
    OVERRAN,
    SELF_METRICS,
    add_lab_arguments,
    daemon_at,
    lab_and_daemon,
)
from bench.load_soak.control import FaultRotation, LabControl
from bench.load_soak.scrape import ACCEPTS, Scrape, scrape_once
from bench.processes import Daemon, cpu_seconds, open_fds, peak_resident_bytes, resident_bytes
from bench.report import RESULTS, code_state, environment, loadavg, utc_stamp, write_json
from bench.stats import median_of, spread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lab_arguments(parser, duration=60.0, warmup=20.0)
    parser.add_argument("--failing", type=float, default=0.10, help="share of nodes failing")
    parser.add_argument("--rotate-every", type=float, default=5.0, help="s between rotations")
    parser.add_argument("--scrapers", type=int, default=50, help="concurrent scrapers")
    parser.add_argument("--baseline", type=float, default=30.0, help="s probing, no scrapes")
    parser.add_argument(
        "--accept",
        choices=list(ACCEPTS),
        default="openmetrics",
        help="the Accept header: openmetrics (default) is what Prometheus 2.x sends",
    )
    parser.add_argument(
        "--daemon-log-level",
        choices=["debug", "info"],
        default="info",
        help="debug logs every probe run with its duration (to see where the time goes)",
    )
    parser.add_argument("--runs", type=int, default=1, help="fresh lab and daemon each run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the daemon with py-spy during the scrapes (the figures are then marked "
        "profiled; the sampling costs CPU)",
    )


@dataclass(frozen=True)
class Window:
    """The daemon over one stretch of time."""

    seconds: float
    cpu_seconds: float
    lab_cpu_seconds: float  # the lab process, for context: it shares the two cores
    skipped_runs: int  # APScheduler skipped a run: the previous one was still going
    missed_runs: int
    overran: int
    loadavg_start: str
    loadavg_end: str

    @property
    def cpu_percent(self) -> float:
        """Of one core."""
        return 100 * self.cpu_seconds / self.seconds

    @property
    def lab_cpu_percent(self) -> float:
        return 100 * self.lab_cpu_seconds / self.seconds


class WindowMeter:
    def __init__(self, daemon: Daemon, lab_pid: int) -> None:
        self._daemon = daemon
        self._lab_pid = lab_pid
        self._counts = self._counts_now()  # before the CPU reading: it costs a scrape
        self._wall = time.perf_counter()
        self._cpu = cpu_seconds(daemon.pid)
        self._lab_cpu = cpu_seconds(lab_pid)
        self._load = loadavg()

    def _counts_now(self) -> tuple[int, int, int]:
        return (
            self._daemon.skipped_runs(),
            self._daemon.log_count(MISSED),
            self._daemon.log_count(OVERRAN),
        )

    def close(self) -> Window:
        seconds = time.perf_counter() - self._wall
        cpu = cpu_seconds(self._daemon.pid) - self._cpu
        lab_cpu = cpu_seconds(self._lab_pid) - self._lab_cpu
        skipped, missed, overran = (
            after - before for after, before in zip(self._counts_now(), self._counts, strict=True)
        )
        return Window(seconds, cpu, lab_cpu, skipped, missed, overran, self._load, loadavg())


def window_json(window: Window) -> dict[str, Any]:
    return {
        **asdict(window),
        "cpu_percent": window.cpu_percent,
        "lab_cpu_percent": window.lab_cpu_percent,
    }


async def scrape_for(
    url: str, scrapers: int, duration: float, time_limit: float, accept: str
) -> tuple[list[Scrape], bytes, float, float]:
    """`scrapers` tasks scraping back to back until `duration` has passed.

    Returns every scrape, the last complete body, the wall-clock time it arrived, and the wall
    time from the first scrape to the end of the last one.
    """
    origin = time.perf_counter()
    end = origin + duration
    scrapes: list[Scrape] = []
    last: dict[str, Any] = {"body": b"", "at": 0.0}
    # One connection per scraper, kept alive, as that many Prometheus servers would hold.
    connector = aiohttp.TCPConnector(limit=scrapers, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def scraper() -> None:
            while time.perf_counter() < end:
                result, body = await scrape_once(session, url, time_limit, origin, accept)
                scrapes.append(result)
                if result.ok:
                    last["body"], last["at"] = body, time.time()

        await asyncio.gather(*(scraper() for _ in range(scrapers)))
    return scrapes, last["body"], last["at"], time.perf_counter() - origin


def probe_ages(body: bytes, at: float) -> dict[str, float]:
    """How old the results in a scrape were (now - cucm_probe_last_run_timestamp_seconds), and
    the share of targets whose last run failed (cucm_probe_success 0)."""
    ages = [at - stamp for stamp in labelled_values(body, "cucm_probe_last_run_timestamp_seconds")]
    if not ages:
        return {}
    successes = labelled_values(body, "cucm_probe_success")
    return {
        "median": statistics.median(ages),
        "max": max(ages),
        "targets": len(ages),
        "failing_share": successes.count(0.0) / len(successes) if successes else 0.0,
    }


async def ages_now(url: str) -> dict[str, float]:
    """One scrape (after the baseline, outside any measurement): how old the results are."""
    async with aiohttp.ClientSession() as session:
        scrape, body = await scrape_once(session, f"{url}/metrics", 30.0, time.perf_counter())
    return probe_ages(body, time.time()) if scrape.ok else {}


async def one_run(
    number: int, lab: LabInfo, daemon: Daemon, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    nodes = lab.nodes
    failing = round(args.failing * len(nodes))
    async with LabControl(lab.control) as control:
        rotation = FaultRotation(control, nodes, failing, args.rotate_every)
        rotating = asyncio.create_task(rotation.run())
        try:
            print(f"run {number}: warm-up {args.warmup:g}s  loadavg {loadavg()}", flush=True)
            await asyncio.sleep(args.warmup)
            meter = WindowMeter(daemon, lab.pid)
            await asyncio.sleep(args.baseline)
            baseline = meter.close()
            baseline_ages = await ages_now(daemon.url)
            print(
                f"run {number}: baseline {baseline.cpu_percent:.0f}% CPU  "
                f"loadavg {baseline.loadavg_end}",
                flush=True,
            )
            memory_before = resident_bytes(daemon.pid)
            meter = WindowMeter(daemon, lab.pid)
            sampled = RESULTS / f"load-{stamp}-run{number}-daemon.pyspy.txt"
            sampler = (
                profiling.sampling(daemon.pid, args.duration, sampled)
                if args.profile
                else contextlib.nullcontext()
            )
            with sampler:
                scrapes, body, at, wall = await scrape_for(
                    f"{daemon.url}/metrics",
                    args.scrapers,
                    args.duration,
                    args.scrape_timeout,
                    ACCEPTS[args.accept],
                )
            loaded = meter.close()
        finally:
            rotating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rotating
    exposition = RESULTS / f"load-{stamp}-run{number}-metrics.txt"
    exposition.write_bytes(body)  # the last complete scrape
    ok = [s for s in scrapes if s.ok]
    errors: dict[str, int] = {}
    for failed in (s for s in scrapes if not s.ok):
        errors[failed.error] = errors.get(failed.error, 0) + 1
    run: dict[str, Any] = {
        "run": number,
        "nodes": len(nodes),
        "failing_nodes": failing,
        "rotations": rotation.rotations,
        "control_errors": rotation.errors[:20],
        "scrapes": len(scrapes),
        "failed_scrapes": len(scrapes) - len(ok),
        "errors": errors,
        "scrape_wall_seconds": wall,
        "throughput_per_second": len(ok) / wall,
        # The daemon's CPU per scrape, net of what probing cost per second in the baseline.
        "daemon_cpu_ms_per_scrape": 1000
        * (loaded.cpu_seconds - baseline.cpu_seconds / baseline.seconds * loaded.seconds)
        / max(1, len(scrapes)),
        "latency_seconds": spread([s.seconds for s in scrapes]),
        "body_bytes_median": statistics.median([s.size for s in ok]) if ok else 0,
        "daemon_baseline": window_json(baseline),
        "daemon_scraped": window_json(loaded),
        "daemon_rss_bytes_before": memory_before,
        "daemon_rss_bytes_after": resident_bytes(daemon.pid),
        "daemon_peak_rss_bytes": peak_resident_bytes(daemon.pid),
        "daemon_open_fds_after": open_fds(daemon.pid),
        "last_scrape_self_metrics": unlabelled(body, SELF_METRICS),
        "probe_age_seconds_after_baseline": baseline_ages,
        "probe_age_seconds_in_last_scrape": probe_ages(body, at),
        "last_scrape_file": str(exposition),
        "raw_scrapes": [asdict(s) for s in scrapes],
    }
    if args.profile:
        summary = profiling.summarise(sampled)
        run["profile"] = {"file": str(sampled), **asdict(summary)}
    return run


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the runs (with one run, that run's figures)."""
    return {
        "scrapes": median_of(runs, "scrapes"),
        "failed_scrapes": median_of(runs, "failed_scrapes"),
        "failed_scrapes_total": sum(run["failed_scrapes"] for run in runs),
        "throughput_per_second": median_of(runs, "throughput_per_second"),
        "latency_p50_seconds": median_of(runs, "latency_seconds", "p50"),
        "latency_p99_seconds": median_of(runs, "latency_seconds", "p99"),
        "latency_max_seconds": median_of(runs, "latency_seconds", "max"),
        "daemon_cpu_percent_scraped": median_of(runs, "daemon_scraped", "cpu_percent"),
        "daemon_cpu_percent_baseline": median_of(runs, "daemon_baseline", "cpu_percent"),
        "skipped_runs_scraped": median_of(runs, "daemon_scraped", "skipped_runs"),
        "skipped_runs_baseline": median_of(runs, "daemon_baseline", "skipped_runs"),
        "body_bytes": median_of(runs, "body_bytes_median"),
        "daemon_cpu_ms_per_scrape": median_of(runs, "daemon_cpu_ms_per_scrape"),
        "lab_cpu_percent_scraped": median_of(runs, "daemon_scraped", "lab_cpu_percent"),
        "probe_age_max_seconds_baseline": median_of(
            runs, "probe_age_seconds_after_baseline", "max"
        ),
        "probe_age_max_seconds_scraped": median_of(runs, "probe_age_seconds_in_last_scrape", "max"),
    }


def print_report(runs: list[dict[str, Any]], result: dict[str, Any], path: Path) -> None:
    args = result["settings"]
    print()
    print(
        f"{args['nodes_total']} nodes, {args['failing_nodes']} failing in rotation every "
        f"{args['rotate_every']:g}s; {args['scrapers']} scrapers for {args['duration']:g}s; "
        f"scrape timeout {args['scrape_timeout']:g}s"
    )
    header = (
        f"{'run':>3} {'scrapes':>7} {'failed':>6} {'per s':>6} {'p50 s':>6} {'p99 s':>6} "
        f"{'max s':>6} {'CPU%':>5} {'base%':>5} {'lab%':>5} {'skip':>5} {'bskip':>5}  "
        "loadavg start -> end"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        latency, scraped, base = (
            run["latency_seconds"],
            run["daemon_scraped"],
            run["daemon_baseline"],
        )
        print(
            f"{run['run']:>3} {run['scrapes']:>7} {run['failed_scrapes']:>6} "
            f"{run['throughput_per_second']:>6.2f} {latency['p50']:>6.2f} {latency['p99']:>6.2f} "
            f"{latency['max']:>6.2f} {scraped['cpu_percent']:>5.0f} {base['cpu_percent']:>5.0f} "
            f"{scraped['lab_cpu_percent']:>5.0f} "
            f"{scraped['skipped_runs']:>5} {base['skipped_runs']:>5}  "
            f"{scraped['loadavg_start']} -> {scraped['loadavg_end']}"
        )
        if run["errors"]:
            print(f"    failures: {run['errors']}")
        print(
            f"    daemon CPU per scrape (net of probing): {run['daemon_cpu_ms_per_scrape']:.1f} ms"
            "; "
            f"median body {run['body_bytes_median'] / 1024:.0f} KiB"
        )
        print(
            f"    daemon log: {run['daemon_log_tracebacks_before_shutdown']} tracebacks while "
            f"running, {run['daemon_log_tracebacks_total']} in all (with its shutdown)"
        )
        for when, key in (
            ("after the baseline", "probe_age_seconds_after_baseline"),
            ("in the last loaded scrape", "probe_age_seconds_in_last_scrape"),
        ):
            ages = run[key]
            if ages:
                print(
                    f"    probe results {when}: age median {ages['median']:.1f}s, "
                    f"max {ages['max']:.1f}s; {100 * ages.get('failing_share', 0):.0f}% of "
                    f"{ages['targets']:.0f} targets failing"
                )
        if "profile" in run:
            print(f"    profiled: {run['profile']['file']}")
            profile = profiling.Profile(
                run["profile"]["samples"],
                [profiling.Frame(**f) for f in run["profile"]["by_inclusive"]],
                [profiling.Frame(**f) for f in run["profile"]["by_self"]],
            )
            for line in profiling.lines(profile):
                print(f"    {line}")
    print(
        "CPU% is the daemon's, of one core, while scraped; base% while only probing; lab% the "
        "lab's while scraped. skip/bskip: runs the daemon skipped (the job's previous run was "
        "still going) while scraped / while only probing."
    )
    print(f"raw data: {path}")


def main(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    path = RESULTS / f"load-{stamp}.json"
    settings = {key: value for key, value in vars(args).items() if key not in ("command", "func")}
    settings["nodes_total"] = args.clusters * args.nodes
    settings["failing_nodes"] = round(args.failing * settings["nodes_total"])
    result: dict[str, Any] = {
        "benchmark": "load",
        "started_utc": stamp,
        "environment": environment(argv=sys.argv),
        "loadavg_start": loadavg(),
        "settings": settings,
        "runs": [],
    }
    for number in range(1, args.runs + 1):
        base = RESULTS / f"load-{stamp}-run{number}"
        daemon = daemon_at(base, args.daemon_log_level)
        with lab_and_daemon(args, daemon) as lab:
            print(
                f"run {number}: lab pid {lab.pid} ({len(lab.nodes)} nodes, started in "
                f"{lab.start_seconds:g}s), daemon pid {daemon.pid} on {daemon.url}",
                flush=True,
            )
            run = asyncio.run(one_run(number, lab, daemon, args, stamp))
            run["daemon_log_tracebacks_before_shutdown"] = daemon.log_count("Traceback")
        # Stopped: the daemon's shutdown is in the log now.
        run["daemon_log_tracebacks_total"] = daemon.log_count("Traceback")
        run["code_after"] = code_state()
        result["runs"].append(run)
        result["summary"] = summary(result["runs"])
        result["loadavg_end"] = loadavg()
        write_json(path, result)
    print_report(result["runs"], result, path)
    print(json.dumps(result["summary"], indent=2))
    return 0
