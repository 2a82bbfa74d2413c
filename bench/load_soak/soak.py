"""Soak: the daemon for an hour (`--duration`) against a lab whose nodes keep flapping.

Every `--flap-every` seconds one node that is not already flapping gets one change, undone
`--hold-min`..`--hold-max` seconds later: a TLS policy change (`set tls min-version 1.2`, the
node restarts; back to 1.0 later, half the time with a regenerated certificate), a port fault on
TVS or Tomcat, a directory fault, an SNMP agent fault; or a phone moves to another node of its
cluster (not undone: phones wander). One scraper scrapes /metrics every `--scrape-every` seconds,
as Prometheus would, and each scrape records the daemon's `process_resident_memory_bytes`,
`process_open_fds` and `cucm_exporter_asyncio_tasks` (and the same from /proc as a cross-check).

Warm-up rule: samples taken in the first `--warmup` seconds (default 120) after the daemon is
ready are ignored. "start" is the median of the samples in the first minute after the warm-up,
"end" the median of the samples in the last minute; growth = end / start - 1. Medians of four
samples, because each reading moves with whatever probes happen to be in flight.

The JSON in bench/results/ is rewritten after every scrape (`"complete": false` until the end),
so a run cut short still leaves its data. SIGTERM or SIGINT end the run early, cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.exporter_api import AgentFault, DirectoryFault, PortFault
from bench.exposition import unlabelled
from bench.labserver import LabInfo
from bench.load_soak import common
from bench.load_soak.control import TOMCAT, TVS, ControlError, LabControl, Node
from bench.load_soak.scrape import scrape_once
from bench.processes import Daemon, cpu_seconds, open_fds, peak_resident_bytes, resident_bytes
from bench.report import RESULTS, code_state, environment, loadavg, utc_stamp, write_json
from bench.stats import spread

GOAL_GROWTH = 0.10
WINDOW = 60.0  # seconds of samples whose median is "start" (after warm-up) and "end"
DIRECTORY_FAULTS = (
    DirectoryFault.HTTP_500,
    DirectoryFault.HTML_ERROR,
    DirectoryFault.MALFORMED_XML,
    DirectoryFault.EMPTY_RESULT,
    DirectoryFault.SLOW,
    DirectoryFault.TRICKLE,
    DirectoryFault.RESET,
)
PORT_FAULTS = (PortFault.STALL, PortFault.RESET, PortFault.GARBAGE)
SNMP_FAULTS = (AgentFault.SILENT, AgentFault.GARBAGE, AgentFault.NON_INCREASING)
# How often each kind of flap is picked.
KINDS = {"tls_policy": 2, "port_fault": 2, "directory_fault": 2, "snmp_fault": 2, "phone_move": 2}
TRACKED = {
    "rss_bytes": "process_resident_memory_bytes",
    "open_fds": "process_open_fds",
    "asyncio_tasks": "cucm_exporter_asyncio_tasks",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_lab_arguments(parser, duration=3600.0, warmup=120.0)
    parser.add_argument("--scrape-every", type=float, default=15.0, help="s between scrapes")
    parser.add_argument("--report-every", type=float, default=300.0, help="s between log lines")
    parser.add_argument("--flap-every", type=float, default=10.0, help="s between flaps")
    parser.add_argument("--hold-min", type=float, default=20.0, help="a flap lasts at least")
    parser.add_argument("--hold-max", type=float, default=90.0, help="a flap lasts at most")
    parser.add_argument("--seed", type=int, default=1, help="the flaps' random sequence")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/soak-*)")


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the daemon was ready
    kind: str
    node: str
    detail: str
    ok: bool
    error: str = ""


Undo = Callable[[], Awaitable[None]]


class Flapper:
    """One change every `every` seconds on a node that is not flapping yet; each undone later."""

    def __init__(
        self, lab: LabControl, info: LabInfo, args: argparse.Namespace, origin: float
    ) -> None:
        self._lab = lab
        self._nodes = info.nodes
        self._clusters = info.topology
        self._phones = [(phone, node) for node, names in info.phones.items() for phone in names]
        self._where = dict(self._phones)
        self._args = args
        self._origin = origin
        self._random = random.Random(args.seed)
        self._active: dict[Node, tuple[float, str, Undo]] = {}
        self.events: list[Event] = []

    async def run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                for node, (until, kind, undo) in list(self._active.items()):
                    if until <= now:
                        del self._active[node]
                        await self._do(f"{kind}_undo", node, "none", undo)
                await self._flap()
                await asyncio.sleep(self._args.flap_every)
        finally:
            # Heal whatever is still flapping, even when cancelled.
            await asyncio.shield(self._heal_all())

    async def _heal_all(self) -> None:
        for node, (_, kind, undo) in list(self._active.items()):
            await self._do(f"{kind}_undo", node, "none", undo)
        self._active.clear()

    async def _flap(self) -> None:
        kind = self._random.choices(list(KINDS), weights=list(KINDS.values()))[0]
        if kind == "phone_move":
            await self._move_phone()
            return
        idle = [node for node in self._nodes if node not in self._active]
        if not idle:
            return
        node = self._random.choice(idle)
        lab, pick = self._lab, self._random.choice
        if kind == "tls_policy":
            regenerate = self._random.random() < 0.5
            detail, undo = "min 1.2", self._bind(lab.tls_policy, node, "1.0", regenerate)
            change = self._bind(lab.tls_policy, node, "1.2", False)
        elif kind == "port_fault":
            port, fault = pick((TVS, TOMCAT)), pick(PORT_FAULTS)
            detail = f"{port} {fault.value}"
            change = self._bind(lab.port_fault, node, port, fault)
            undo = self._bind(lab.port_fault, node, port, PortFault.NONE)
        elif kind == "directory_fault":
            fault_d = pick(DIRECTORY_FAULTS)
            detail = fault_d.value
            change = self._bind(lab.directory_fault, node, fault_d)
            undo = self._bind(lab.directory_fault, node, DirectoryFault.NONE)
        else:
            fault_s = pick(SNMP_FAULTS)
            detail = fault_s.value
            change = self._bind(lab.snmp_fault, node, fault_s)
            undo = self._bind(lab.snmp_fault, node, AgentFault.NONE)
        hold = self._random.uniform(self._args.hold_min, self._args.hold_max)
        if await self._do(kind, node, detail, change):
            self._active[node] = (time.monotonic() + hold, kind, undo)

    async def _move_phone(self) -> None:
        phone, _ = self._random.choice(self._phones)
        here = self._where[phone]
        cluster = next(c for c, names in self._clusters.items() if here in names)
        others = [name for name in self._clusters[cluster] if name != here]
        if not others:
            return
        target = (cluster, self._random.choice(others))
        if await self._do(
            "phone_move", target, phone, self._bind(self._lab.move_phone, phone, target)
        ):
            self._where[phone] = target[1]

    @staticmethod
    def _bind(action: Callable[..., Awaitable[None]], *args: Any) -> Undo:
        async def call() -> None:
            await action(*args)

        return call

    async def _do(self, kind: str, node: Node, detail: str, action: Undo) -> bool:
        at = time.monotonic() - self._origin
        try:
            await action()
        except ControlError as error:
            self.events.append(Event(at, kind, f"{node[0]}/{node[1]}", detail, False, str(error)))
            return False
        self.events.append(Event(at, kind, f"{node[0]}/{node[1]}", detail, True))
        return True


def analyse(series: list[dict[str, Any]], warmup: float, duration: float) -> dict[str, Any]:
    """start / end / max and growth of each tracked figure, by the rule in the module doc."""
    kept = [s for s in series if s["t"] >= warmup and s.get("rss_bytes") is not None]
    if not kept:
        return {"error": "no sample after the warm-up"}
    last_t = kept[-1]["t"]
    first = [s for s in kept if s["t"] < kept[0]["t"] + WINDOW]
    final = [s for s in kept if s["t"] > last_t - WINDOW]
    figures: dict[str, Any] = {
        "rule": (
            f"samples before t={warmup:g}s ignored; start = median of the samples in the first "
            f"{WINDOW:g}s after that, end = median of the samples in the last {WINDOW:g}s"
        ),
        "samples_used": len(kept),
        "first_sample_t": kept[0]["t"],
        "last_sample_t": last_t,
    }
    for name in TRACKED:
        values = [float(s[name]) for s in kept]
        start = statistics.median(float(s[name]) for s in first)
        end = statistics.median(float(s[name]) for s in final)
        times = [s["t"] for s in kept]
        slope = statistics.linear_regression(times, values).slope if len(kept) > 2 else 0.0
        growth = end / start - 1 if start else float("inf")
        figures[name] = {
            "start": start,
            "end": end,
            "min": min(values),
            "max": max(values),
            "first_raw": values[0],
            "last_raw": values[-1],
            "growth": growth,
            "slope_per_hour": slope * 3600,
            "goal_met": growth < GOAL_GROWTH,
        }
    return figures


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def soak(
    lab: LabInfo, daemon: Daemon, args: argparse.Namespace, result: dict[str, Any], path: Path
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        result["stopped_by"] = sig.name
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    origin = time.monotonic()
    cpu_start = cpu_seconds(daemon.pid)
    series: list[dict[str, Any]] = result["series"]
    next_report = 0.0
    async with LabControl(lab.control) as control, aiohttp.ClientSession() as session:
        flapper = Flapper(control, lab, args, origin)
        flapping = asyncio.create_task(flapper.run())
        try:
            tick = 0
            while True:
                t = time.monotonic() - origin
                if not daemon.running():
                    result["stopped_by"] = "the daemon exited"
                    break
                if not alive(lab.pid):
                    result["stopped_by"] = "the lab exited"
                    break
                if flapping.done():
                    result["stopped_by"] = f"the flapper failed: {flapping.exception()!r}"
                    break
                scrape, body = await scrape_once(
                    session, f"{daemon.url}/metrics", args.scrape_timeout, origin
                )
                values = unlabelled(body, common.SELF_METRICS) if scrape.ok else {}
                sample = {
                    "t": round(t, 2),
                    "wall": time.time(),
                    **asdict(scrape),
                    **{name: values.get(metric) for name, metric in TRACKED.items()},
                    "proc_rss_bytes": resident_bytes(daemon.pid),
                    "proc_peak_rss_bytes": peak_resident_bytes(daemon.pid),
                    "proc_open_fds": open_fds(daemon.pid),
                    "cpu_seconds": cpu_seconds(daemon.pid) - cpu_start,
                    "loadavg": loadavg(),
                }
                series.append(sample)
                if t >= next_report or t >= args.duration:
                    print(report_line(sample), flush=True)
                    next_report += args.report_every
                result["events"] = [asdict(e) for e in flapper.events]
                write_json(path, result)
                if t >= args.duration:
                    break
                tick += 1
                wait = origin + tick * args.scrape_every - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, min(wait, args.duration - t)))
                if stop.is_set():
                    break
        finally:
            flapping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flapping
            result["events"] = [asdict(e) for e in flapper.events]


def report_line(sample: dict[str, Any]) -> str:
    rss = sample["rss_bytes"]
    rss_text = f"{rss / 2**20:7.1f} MiB" if rss is not None else "      ? MiB"
    scrape = (
        f"scrape {sample['seconds']:.2f}s" if sample["ok"] else f"scrape FAILED {sample['error']}"
    )
    return (
        f"t={sample['t']:7.0f}s  rss {rss_text}  fds {_int(sample['open_fds'])}  "
        f"tasks {_int(sample['asyncio_tasks'])}  cpu {sample['cpu_seconds']:.0f}s  {scrape}  "
        f"loadavg {sample['loadavg']}"
    )


def _int(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def finish(result: dict[str, Any], daemon: Daemon, args: argparse.Namespace) -> None:
    series = result["series"]
    failed = [s for s in series if not s["ok"]]
    events = result.get("events", [])
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
    wall = series[-1]["t"] if series else 0.0
    result["summary"] = {
        **analyse(series, args.warmup, args.duration),
        "scrapes": len(series),
        "failed_scrapes": len(failed),
        "failures": [s["error"] for s in failed][:20],
        "latency_seconds": spread([s["seconds"] for s in series]),
        "daemon_cpu_seconds": series[-1]["cpu_seconds"] if series else 0.0,
        "daemon_cpu_percent": 100 * series[-1]["cpu_seconds"] / wall if wall else 0.0,
        "daemon_peak_rss_bytes": max((s["proc_peak_rss_bytes"] for s in series), default=0),
        "events": kinds,
        "control_errors": sum(not e["ok"] for e in events),
        "skipped_runs": result.get("skipped_runs_before_shutdown"),
        "missed_runs": daemon.log_count(common.MISSED),
        "overran": daemon.log_count(common.OVERRAN),
        "tracebacks": daemon.log_count("Traceback"),
        "tracebacks_before_shutdown": result.get("tracebacks_before_shutdown", 0),
    }


def print_summary(result: dict[str, Any], path: Path) -> None:
    summary = result["summary"]
    print()
    print(f"soak: {result['settings']['duration']:g}s planned, stopped by {result['stopped_by']}")
    if "rule" in summary:
        print(f"rule: {summary['rule']}")
        print(f"{'figure':<14} {'start':>12} {'end':>12} {'max':>12} {'growth':>8} {'/hour':>10}")
        for name in TRACKED:
            f = summary[name]
            scale = 2**20 if name == "rss_bytes" else 1
            unit = " MiB" if name == "rss_bytes" else ""
            print(
                f"{name:<14} {f['start'] / scale:>8.1f}{unit:4} {f['end'] / scale:>8.1f}{unit:4} "
                f"{f['max'] / scale:>8.1f}{unit:4} {100 * f['growth']:>7.1f}% "
                f"{f['slope_per_hour'] / scale:>10.2f}  {'met' if f['goal_met'] else 'NOT met'}"
            )
    print(
        f"scrapes {summary['scrapes']}, failed {summary['failed_scrapes']}; daemon CPU "
        f"{summary['daemon_cpu_percent']:.0f}% of a core; flaps {summary['events']}; "
        f"control errors {summary['control_errors']}; tracebacks in the daemon log "
        f"{summary['tracebacks_before_shutdown']} before its shutdown, "
        f"{summary['tracebacks']} in all"
    )
    print(f"loadavg start {result['loadavg_start']}, end {result.get('loadavg_end')}")
    print(f"raw data: {path}")


def main(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    path = args.output or RESULTS / f"soak-{stamp}.json"
    settings = {key: value for key, value in vars(args).items() if key != "command"}
    settings["output"] = str(path)
    result: dict[str, Any] = {
        "benchmark": "soak",
        "complete": False,
        "started_utc": stamp,
        "environment": environment(argv=sys.argv),
        "loadavg_start": loadavg(),
        "settings": settings,
        "stopped_by": "duration",
        "series": [],
        "events": [],
    }
    write_json(path, result)
    daemon = common.daemon_at(path.with_suffix(""))
    try:
        with common.lab_and_daemon(args, daemon, list_phones=True) as lab:
            result["lab_pid"], result["daemon_pid"] = lab.pid, daemon.pid
            result["daemon_log"] = str(daemon.log)
            print(
                f"soak: lab pid {lab.pid} ({len(lab.nodes)} nodes), daemon pid {daemon.pid} "
                f"on {daemon.url}; {args.duration:g}s; JSON {path}; daemon log {daemon.log}",
                flush=True,
            )
            try:
                asyncio.run(soak(lab, daemon, args, result, path))
            finally:
                result["tracebacks_before_shutdown"] = daemon.log_count("Traceback")
                with contextlib.suppress(OSError):  # None if the daemon no longer answers
                    result["skipped_runs_before_shutdown"] = daemon.skipped_runs()
    finally:
        # Both processes have stopped: the daemon's shutdown is in its log too.
        result["loadavg_end"] = loadavg()
        result["code_end"] = code_state()
        finish(result, daemon, args)
        write_json(path, result)
    result["complete"] = True
    write_json(path, result)
    print_summary(result, path)
    return 0
