"""Part 4: detection latency, from a lab node's `set tls min-version 1.2` to /metrics showing it.

The daemon runs all three probes at their default intervals (TLS and directory every 60 s, SNMP
every 300 s) against every lab node. Once every node has all three results, a few nodes, spread
over the lab and over the TLS interval, get TLS 1.2 as their minimum through the lab's control
API (the node restarts, as CUCM does). /metrics is then polled until each changed node shows
`cucm_tls_min_version{port="2445"} 1.2`.

Three times per node, all from the moment the control call returned (the node back up with its
new policy):

* `stored`: when the probe run that saw the change ended (its last_run timestamp + duration):
  the earliest a scrape could show it;
* `seen`: the end of the first scrape that showed it; polling every `--poll` seconds adds up to
  that much (plus one scrape) on top of `stored`;
* the goal: `stored` at most one TLS interval plus that run's own duration.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.exposition import probe_runs, samples
from bench.labserver import LabInfo
from bench.processes import Daemon
from bench.report import loadavg
from bench.scale import configs
from bench.scale.configs import write_config
from bench.scale.render import FIRST_ROUND_LIMIT, wait_for_all_results

TLS_INTERVAL = 60.0
DIRECTORY_INTERVAL = 60.0
SNMP_INTERVAL = 300.0  # the exporter's default: Cisco's agent is throttled
NEW_MIN = "1.2"


@dataclass(frozen=True)
class Detection:
    cluster: str
    node: str
    changed_at: float  # unix time the control call returned
    control_call_seconds: float  # the node's restart (its downtime) inside the call
    run_started: float  # the TLS run that saw the change
    run_duration: float
    stored_seconds: float  # run end - changed_at
    seen_seconds: float  # end of the first scrape showing it - changed_at
    goal_seconds: float  # interval + run_duration
    met: bool


@dataclass(frozen=True)
class DetectResult:
    tls_interval: float
    poll_seconds: float
    detections: list[Detection]
    scrapes: int
    scrape_median_seconds: float
    skipped_warnings: int  # APScheduler skipped a run: the previous one was still going
    loadavg_before: str
    loadavg_after: str


def pick_nodes(document: dict[str, Any], count: int) -> list[tuple[str, str]]:
    """`count` nodes spread evenly over the lab's clusters."""
    everyone = [(c["name"], n["name"]) for c in document["clusters"] for n in c["nodes"]]
    step = max(1, len(everyone) // count)
    return everyone[step // 2 :: step][:count]


def set_min_version(control: str, cluster: str, node: str) -> tuple[float, float]:
    """The control call (`lab set-tls NODE 1.2 --cluster C`); returns (returned at, took)."""
    request = urllib.request.Request(
        f"{control}/nodes/{node}/tls?cluster={cluster}",
        data=json.dumps({"min_version": NEW_MIN}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        state = json.load(response)
    if state["min_version"] != NEW_MIN:
        raise RuntimeError(f"{cluster}/{node}: the lab still says {state['min_version']}")
    return time.time(), time.perf_counter() - started


def shown(body: bytes, targets: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of `targets` /metrics shows with the new minimum on TVS (2445)."""
    found = set()
    for sample in samples(body, ["cucm_tls_min_version"]):
        key = (sample.labels["cluster"], sample.labels["node"])
        if key in targets and sample.labels["port"] == "2445" and sample.value == float(NEW_MIN):
            found.add(key)
    return found


class Watcher:
    """Polls /metrics; remembers when each target first showed the change, and its TLS run."""

    def __init__(self, daemon: Daemon, targets: set[tuple[str, str]]) -> None:
        self._daemon = daemon
        self._targets = targets
        self.seen: dict[tuple[str, str], float] = {}
        self.runs: dict[tuple[str, str], tuple[float, float]] = {}
        self.scrape_seconds: list[float] = []

    @property
    def done(self) -> bool:
        return len(self.seen) == len(self._targets)

    def poll(self, pending: set[tuple[str, str]]) -> None:
        started = time.perf_counter()
        status, body = self._daemon.get("/metrics")
        ended = time.time()
        self.scrape_seconds.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        new = shown(body, pending) - set(self.seen)
        if not new:
            return
        runs = probe_runs(body)
        for key in new:
            self.seen[key] = ended
            run = runs[(*key, "tls")]
            self.runs[key] = (run.started, run.duration)


def measure(
    lab: LabInfo, concurrency: int, count: int, spread: float, poll: float, directory: Path
) -> DetectResult:
    document = configs.all_probes(
        lab.base_config(), concurrency, TLS_INTERVAL, DIRECTORY_INTERVAL, SNMP_INTERVAL
    )
    nodes = configs.node_count(document)
    targets = pick_nodes(document, count)
    config = write_config(document, directory / "scale-detect.yml")
    with Daemon(config, directory / "scale-daemon-detect.log") as daemon:
        wait_for_all_results(daemon, nodes, FIRST_ROUND_LIMIT, quiet=False)
        load_before = loadavg()
        watcher = Watcher(daemon, set(targets))
        changes: dict[tuple[str, str], tuple[float, float]] = {}
        deadline = time.monotonic() + spread * count + 2 * TLS_INTERVAL + 60
        next_change = time.monotonic()
        while not watcher.done and time.monotonic() < deadline:
            if len(changes) < count and time.monotonic() >= next_change:
                key = targets[len(changes)]
                changes[key] = set_min_version(lab.control, *key)
                next_change += spread  # spread the changes over the interval's phases
            tick = time.monotonic()
            watcher.poll(set(changes))
            time.sleep(max(0.0, poll - (time.monotonic() - tick)))
        if not watcher.done:
            missing = sorted(set(targets) - set(watcher.seen))
            raise TimeoutError(f"never shown on /metrics: {missing}")
        skipped = daemon.skipped_runs()
    return _result(changes, watcher, poll, skipped, (load_before, loadavg()))


def _result(
    changes: dict[tuple[str, str], tuple[float, float]],
    watcher: Watcher,
    poll: float,
    skipped: int,
    loads: tuple[str, str],
) -> DetectResult:
    detections = []
    for key, (changed_at, took) in changes.items():
        started, duration = watcher.runs[key]
        stored = started + duration - changed_at
        goal = TLS_INTERVAL + duration
        detections.append(
            Detection(
                cluster=key[0],
                node=key[1],
                changed_at=changed_at,
                control_call_seconds=took,
                run_started=started,
                run_duration=duration,
                stored_seconds=stored,
                seen_seconds=watcher.seen[key] - changed_at,
                goal_seconds=goal,
                met=stored <= goal,
            )
        )
    scrapes = sorted(watcher.scrape_seconds)
    return DetectResult(
        tls_interval=TLS_INTERVAL,
        poll_seconds=poll,
        detections=detections,
        scrapes=len(scrapes),
        scrape_median_seconds=scrapes[len(scrapes) // 2],
        skipped_warnings=skipped,
        loadavg_before=loads[0],
        loadavg_after=loads[1],
    )


def as_rows(result: DetectResult) -> list[dict[str, Any]]:
    return [
        {
            "node": f"{d.cluster}/{d.node}",
            "stored s": f"{d.stored_seconds:.1f}",
            "seen s": f"{d.seen_seconds:.1f}",
            "run s": f"{d.run_duration:.2f}",
            "goal s": f"{d.goal_seconds:.1f}",
            "met": d.met,
        }
        for d in result.detections
    ]
