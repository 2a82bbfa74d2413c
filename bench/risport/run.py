"""Orchestrate the benchmark: the lab, three inventory clients, several runs, a table, JSON.

Four kinds of process take part, so each CPU figure holds one client only:

* the lab (`server.py`: one node, 20,000 phones, its SNMP agent and its RisPort70 on 8443),
  whose CPU this process reads from /proc around each side, and whose counters give each
  side's requests and bytes as the servers answered them;
* our RisPort70 probe (`ours.py`), a fresh process per run: a first walk (zeep session built,
  the bundled WSDL parsed) and a second, warm one, each timing its own CPU;
* our SNMP probe (`bench.snmp_walk.ours`), a fresh process per run: its first poll walks;
* `snmpbulkwalk`, one process per column, timed by `os.wait4` (`bench.snmp_walk.netsnmp`).

Before the runs an untimed check makes both of our probes list the same phones, and every
timed walk must return that inventory; every snmpbulkwalk run must print a row per phone.
The sides take turns (who goes first alternates between runs); the report gives medians.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

from bench.options import Options
from bench.options import parser as options_parser
from bench.processes import Announcing, cpu_seconds, exit_on_signals, run_driver
from bench.report import RESULTS, ROOT, environment, loadavg, utc_stamp, write_json
from bench.risport import profile
from bench.snmp_walk import netsnmp
from bench.snmp_walk.ours import COLUMNS
from bench.table import table

LAB_START_TIMEOUT = 120.0  # 20,000 phones, a CA and node keys: seconds on a loaded machine
LAB_REPLY_TIMEOUT = 10.0
DRIVER_TIMEOUT = 900.0  # a profiled walk takes minutes

RISPORT = "ours: RisportProbe, warm walk"
RISPORT_COLD = "ours: RisportProbe, first walk"
SNMP = "ours: SnmpProbe first poll"
NETSNMP = "snmpbulkwalk x5 columns"
ORDER = [RISPORT, RISPORT_COLD, SNMP, NETSNMP]
REFERENCES = (SNMP, NETSNMP)  # the ratios: RisPort70's walk against each SNMP side


class BenchMismatch(RuntimeError):
    """The sides did not fetch the same inventory: their figures cannot be compared."""


class LabProcess(Announcing):
    """`server.py`: its announcement, its CPU, and what its servers answered so far."""

    def __init__(self, phones: int, config_out: Path) -> None:
        command = [sys.executable, "-m", "bench.risport.server", "--phones", str(phones)]
        command += ["--config-out", str(config_out)]
        super().__init__(command, LAB_START_TIMEOUT, name="the lab", linger=15)

    def counters(self) -> dict[str, float]:
        self.send("counters")
        found: dict[str, float] = json.loads(self.line(LAB_REPLY_TIMEOUT))
        return {**found, "cpu_seconds": cpu_seconds(self.pid)}


@dataclass(frozen=True)
class Sample:
    """One side's inventory in one run; requests and bytes as the lab's servers counted them."""

    run: int
    side: str
    wall_seconds: float
    cpu_seconds: float
    requests: int
    bytes_out: int  # response bytes (HTTP bodies, UDP payloads) the lab sent
    bytes_in: int  # request bytes it received
    server_cpu_seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


def spent(before: dict[str, float], after: dict[str, float], kind: str) -> dict[str, float]:
    return {
        "requests": after[f"{kind}_requests"] - before[f"{kind}_requests"],
        "bytes_out": after[f"{kind}_bytes_out"] - before[f"{kind}_bytes_out"],
        "bytes_in": after[f"{kind}_bytes_in"] - before[f"{kind}_bytes_in"],
        "cpu": after["cpu_seconds"] - before["cpu_seconds"],
    }


def driver(module: str, lab: dict[str, Any], options: Options, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", module, "--address", lab["address"]]
    command += ["--port", str(lab["snmp_port"]), "--community", lab["community"], *extra]
    report: dict[str, Any] = json.loads(run_driver(command, DRIVER_TIMEOUT))
    return report


def risport_driver(lab: dict[str, Any], options: Options, *extra: str) -> dict[str, Any]:
    return driver(
        "bench.risport.ours",
        lab,
        options,
        "--config",
        lab["config"],
        "--requests-per-minute",
        str(options.requests_per_minute),
        *extra,
    )


def measure_risport(lab: LabProcess, run: int, options: Options, inventory: str) -> list[Sample]:
    before = lab.counters()
    report = risport_driver(lab.announcement, options)
    used = spent(before, lab.counters(), "risport")
    if report["inventory"] != inventory:
        raise BenchMismatch(f"run {run}: RisPort70's inventory differs from the verified one")
    walks = (report["first"], report["second"])
    if used["requests"] != sum(walk["requests"] for walk in walks):
        raise BenchMismatch(f"run {run}: the lab answered {used['requests']} RisPort requests")
    # Both walks fetch the same pages of the same table: the lab's share is split evenly.
    return [
        Sample(
            run,
            side,
            walk["wall_seconds"],
            walk["cpu_seconds"],
            walk["requests"],
            round(used["bytes_out"] / 2),
            round(used["bytes_in"] / 2),
            used["cpu"] / 2,
            {"budget_wait_seconds": walk["budget_wait_seconds"], "pages": walk["pages"]},
        )
        for side, walk in ((RISPORT_COLD, walks[0]), (RISPORT, walks[1]))
    ]


def measure_snmp(lab: LabProcess, run: int, options: Options) -> Sample:
    before = lab.counters()
    report = driver(
        "bench.snmp_walk.ours",
        lab.announcement,
        options,
        "--max-repetitions",
        str(options.max_repetitions),
    )
    used = spent(before, lab.counters(), "snmp")
    first, second = report["first"], report["second"]
    if first["phones"] != lab.announcement["phones"] or second["walked"]:
        raise BenchMismatch(f"run {run}: our SNMP poll saw {first['phones']} phones")
    # The second poll (one GET of the scalars: the table is unchanged) is in the byte counts.
    return Sample(
        run,
        SNMP,
        first["wall_seconds"],
        first["cpu_seconds"],
        first["requests"],
        round(used["bytes_out"]),
        round(used["bytes_in"]),
        used["cpu"],
        {"agent_requests": used["requests"], "second_poll_requests": second["requests"]},
    )


def measure_netsnmp(lab: LabProcess, run: int, options: Options) -> Sample:
    announced = lab.announcement
    target = f"{announced['address']}:{announced['snmp_port']}"
    before = lab.counters()
    walks = netsnmp.walk_columns(target, announced["community"], options.max_repetitions, COLUMNS)
    used = spent(before, lab.counters(), "snmp")
    rows = {walk.column: walk.rows for walk in walks}
    wanted = dict.fromkeys(COLUMNS, announced["phones"]) | {"product_name": announced["products"]}
    if rows != wanted:
        raise BenchMismatch(f"run {run}: snmpbulkwalk printed {rows}, expected {wanted}")
    return Sample(
        run,
        NETSNMP,
        sum(w.wall_seconds for w in walks),
        sum(w.cpu_seconds for w in walks),
        round(used["requests"]),
        round(used["bytes_out"]),
        round(used["bytes_in"]),
        used["cpu"],
        {"walks": [asdict(walk) for walk in walks]},
    )


def one_run(lab: LabProcess, run: int, options: Options, inventory: str) -> list[Sample]:
    sides: list[Callable[[], list[Sample]]] = [
        lambda: measure_risport(lab, run, options, inventory),
        lambda: [measure_snmp(lab, run, options)],
        lambda: [measure_netsnmp(lab, run, options)],
    ]
    if run % 2 == 0:  # take turns, so drift during a run favours no side
        sides.reverse()
    return [sample for side in sides for sample in side()]


@dataclass(frozen=True)
class Row:
    side: str
    requests: int  # medians over runs from here on
    wall_seconds: float
    cpu_seconds: float
    bytes_out: int
    server_cpu_seconds: float
    wall_vs_snmp: float | None  # RisPort70 / our SNMP probe
    cpu_vs_snmp: float | None
    wall_vs_netsnmp: float | None  # RisPort70 / snmpbulkwalk
    cpu_vs_netsnmp: float | None


def summarize(samples: Sequence[Sample]) -> list[Row]:
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.side, []).append(sample)

    def median(side: str, name: str) -> float:
        return float(statistics.median(getattr(s, name) for s in groups[side]))

    def versus(side: str, name: str, reference: str) -> float | None:
        if side not in (RISPORT, RISPORT_COLD) or reference not in groups:
            return None
        return median(side, name) / median(reference, name)

    return [
        Row(
            side,
            round(median(side, "requests")),
            median(side, "wall_seconds"),
            median(side, "cpu_seconds"),
            round(median(side, "bytes_out")),
            median(side, "server_cpu_seconds"),
            versus(side, "wall_seconds", SNMP),
            versus(side, "cpu_seconds", SNMP),
            versus(side, "wall_seconds", NETSNMP),
            versus(side, "cpu_seconds", NETSNMP),
        )
        for side in ORDER
        if side in groups
    ]


TABLE = (
    ("side", ""),
    ("requests", "d"),
    ("wall s", ".2f"),
    ("CPU s", ".3f"),
    ("bytes out", ",d"),
    ("lab CPU s", ".2f"),
    ("wall x snmp", ".2f"),
    ("CPU x snmp", ".2f"),
    ("wall x bulkwalk", ".2f"),
    ("CPU x bulkwalk", ".2f"),
)


def ratios_per_run(samples: Sequence[Sample]) -> dict[str, list[float]]:
    """Each run's own ratios of the warm RisPort70 walk: shows whether medians hide a spread."""
    by_key = {(s.run, s.side): s for s in samples}
    ratios: dict[str, list[float]] = {}
    for (run, side), ours in sorted(by_key.items()):
        if side != RISPORT:
            continue
        for reference in REFERENCES:
            theirs = by_key.get((run, reference))
            if theirs is None:
                continue
            for name in ("wall_seconds", "cpu_seconds", "requests", "bytes_out"):
                ratios.setdefault(f"{name} vs {reference}", []).append(
                    round(getattr(ours, name) / getattr(theirs, name), 3)
                )
    return ratios


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = options_parser("bench.risport", __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phones", type=int, default=20_000)
    parser.add_argument("--max-repetitions", type=int, default=5, help="both SNMP sides")
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=15,
        help="the probe's RisPort70 budget (accelerated: its waits are counted, not slept)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the runs, cProfile one warm RisPort70 walk (CPU clock; adds ~1 minute)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    exit_on_signals()  # a SIGTERM must still stop the lab and any child
    stamp = utc_stamp()
    env = environment(
        zeep=importlib.metadata.version("zeep"),
        httpx=importlib.metadata.version("httpx"),
        lxml=importlib.metadata.version("lxml"),
        pysnmp=importlib.metadata.version("pysnmp"),
        net_snmp=netsnmp.version_string(),
    )
    samples: list[Sample] = []
    profile_report: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="bench-risport-") as scratch,
        LabProcess(options.phones, Path(scratch) / "lab.yml") as lab,
    ):
        announced = lab.announcement
        print(f"lab: {announced['phones']} phones, {announced['products']} models", file=sys.stderr)
        verified = risport_driver(announced, options, "--verify")["verification"]
        if verified["devices"] != announced["phones"]:
            raise BenchMismatch(f"RisPort70 listed {verified['devices']} devices")
        for run in range(1, options.runs + 1):
            samples += one_run(lab, run, options, verified["inventory"])
            print(f"run {run}/{options.runs} done", file=sys.stderr)
        if options.profile:
            path = RESULTS / f"risport-{stamp}.pstats"
            RESULTS.mkdir(parents=True, exist_ok=True)
            risport_driver(announced, options, "--profile", str(path))
            profile_report = {"file": str(path.relative_to(ROOT)), **profile.breakdown(path)}
    env["loadavg_at_end"] = loadavg()
    rows = summarize(samples)
    per_run = ratios_per_run(samples)
    code = env["exporter_code"]
    edits = f" + uncommitted {', '.join(code['uncommitted'])}" if code["uncommitted"] else ""
    print(f"exporter code: {code['commit']}{edits}")
    print(
        f"{announced['phones']} phones; both of our probes list the same inventory "
        f"({verified['inventory']}); RisPort70 in {verified['pages']} pages of up to 1000, "
        f"SNMP at max-repetitions {options.max_repetitions}"
    )
    print(table(TABLE, map(astuple, rows)))
    waits = sorted({s.detail["budget_wait_seconds"] for s in samples if s.side == RISPORT})
    print(
        f"the budget ({options.requests_per_minute} requests a minute) would have held a walk "
        f"back {max(waits, default=0):.0f} s against a CUCM (accelerated here, not slept)"
    )
    print("warm RisPort70 walk / each SNMP side, per run:")
    for name, ratios in per_run.items():
        print(f"  {name}: {' '.join(f'{r:.2f}' for r in ratios)}")
    if profile_report is not None:
        print("\nprofile of one warm RisPort70 walk:")
        print(profile.table(profile_report))
    report = {
        "environment": env,
        "options": vars(options),
        "lab": {k: v for k, v in announced.items() if k != "config"},
        "verification": verified,
        "summary": [asdict(row) for row in rows],
        "ratios_per_run": per_run,
        "samples": [asdict(s) for s in samples],
        "profile": profile_report,
    }
    start_load = float(env["loadavg_at_start"].split()[0])
    end_load = float(env["loadavg_at_end"].split()[0])
    busy = " (something else was running: wall times are suspect)" if end_load > 1.5 else ""
    print(f"\nload average (1 min) at start {start_load:.2f}, at end {end_load:.2f}{busy}")
    path = write_json(RESULTS / f"risport-{stamp}.json", report)
    print(f"written: {path.relative_to(ROOT)}")
    return 0
