"""Orchestrate the benchmark: the agent, both clients, several runs, a table and a JSON file.

Three kinds of process take part, so each CPU figure holds one client only:

* the SNMP agent (`server.py`, a lab `CcmAgent` with 20,000 phones), whose CPU this process
  reads from /proc around each side, for context only;
* our probe (`ours.py`), a fresh process per poll pair, which times its own CPU around the poll;
* `snmpbulkwalk`, one process per column, timed by `os.wait4` (`netsnmp.py`).

Before the runs, one untimed poll per max-repetitions counts the rows of each column our probe
receives; every snmpbulkwalk run must print as many, and every timed poll must return the same
inventory. Within a run the two sides take turns on the same agent (who goes first alternates
between runs); the report gives the medians of the runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass, field
from typing import Any

from bench.options import Options, listed
from bench.options import parser as options_parser
from bench.processes import Announcing, Endpoint, cpu_seconds, exit_on_signals, run_driver
from bench.report import RESULTS, ROOT, environment, loadavg, utc_stamp, write_json
from bench.snmp_walk import netsnmp, profile
from bench.snmp_walk.ours import COLUMNS
from bench.table import table

AGENT_START_TIMEOUT = 60.0  # building 100,000 table entries takes a few seconds
AGENT_REPLY_TIMEOUT = 10.0
DRIVER_TIMEOUT = 600.0  # a profiled R=5 poll takes minutes

OURS = "ours: SnmpProbe first poll"
NETSNMP = "snmpbulkwalk x5 columns"
ORDER = [OURS, NETSNMP]
WALL_GOAL = 1.5  # our wall time at most 1.5x snmpbulkwalk's, at the default max-repetitions


# --- the agent ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent(Endpoint):
    community: str
    phones: int
    products: int
    pid: int


@dataclass(frozen=True)
class AgentUsage:
    cpu_seconds: float
    requests: int


class AgentProcess(Announcing):
    """The agent server process: its announcement (`agent`), CPU and PDU count."""

    def __init__(self, phones: int) -> None:
        command = [sys.executable, "-m", "bench.snmp_walk.server", "--phones", str(phones)]
        super().__init__(
            command, AGENT_START_TIMEOUT, name="the SNMP agent", linger=10, stop_timeout=5
        )

    @property
    def agent(self) -> Agent:
        return Agent(**self.announcement)

    def usage(self) -> AgentUsage:
        """CPU the agent has used so far and the PDUs it has answered."""
        self.send("requests")
        requests = json.loads(self.line(AGENT_REPLY_TIMEOUT))["requests"]
        return AgentUsage(cpu_seconds(self.pid), requests)


# --- our driver --------------------------------------------------------------------------------


def drive_ours(agent: Agent, max_repetitions: int, *extra: str) -> dict[str, Any]:
    """Run `ours.py` (a fresh process, so nothing of ours runs in the timed one but the probe)."""
    command = [sys.executable, "-m", "bench.snmp_walk.ours", "--address", agent.address]
    command += ["--port", str(agent.port), "--community", agent.community]
    command += ["--max-repetitions", str(max_repetitions), *extra]
    report: dict[str, Any] = json.loads(run_driver(command, DRIVER_TIMEOUT))
    return report


# --- samples -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One side's inventory fetch in one run."""

    run: int
    side: str
    max_repetitions: int
    wall_seconds: float
    cpu_seconds: float
    varbinds: int  # values fetched: rows of the five columns (+ 7 scalars on our side)
    requests: int  # PDUs the agent answered for it
    agent_cpu_seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_us_per_varbind(self) -> float:
        return 1e6 * self.cpu_seconds / self.varbinds


@dataclass(frozen=True)
class UnchangedPoll:
    """Our second poll of the same, unchanged table, in one run."""

    run: int
    side: str
    max_repetitions: int
    requests: int  # the probe's count
    agent_requests: int  # what the agent answered for it
    walked: bool
    wall_seconds: float
    cpu_seconds: float


class BenchMismatch(RuntimeError):
    """The two sides did not fetch the same thing: their figures cannot be compared."""


@dataclass(frozen=True)
class Expected:
    """What the untimed verification poll found, per max-repetitions."""

    rows: dict[str, int]
    inventory: str
    varbinds_on_wire: int
    requests: int


def verify(agent: Agent, max_repetitions: int) -> Expected:
    checked = drive_ours(agent, max_repetitions, "--verify")["verification"]
    if checked["phones"] != agent.phones or checked["rows"]["name"] != agent.phones:
        raise BenchMismatch(f"our probe got {checked['phones']} of {agent.phones} phones")
    return Expected(
        checked["rows"], checked["inventory"], checked["varbinds_on_wire"], checked["requests"]
    )


def measure_ours(
    agent_process: AgentProcess,
    run: int,
    max_repetitions: int,
    expected: Expected,
) -> tuple[Sample, UnchangedPoll]:
    side = OURS
    agent = agent_process.agent
    before = agent_process.usage()
    report = drive_ours(agent, max_repetitions)
    after = agent_process.usage()
    first, second = report["first"], report["second"]
    if report["inventory"] != expected.inventory:
        raise BenchMismatch(f"run {run}, R={max_repetitions}, {side}: the inventory differs")
    agent_requests = after.requests - before.requests
    if agent_requests != first["requests"] + second["requests"]:
        raise BenchMismatch(
            f"run {run}, R={max_repetitions}, {side}: the agent answered {agent_requests} "
            f"requests, the probe counted {first['requests']} + {second['requests']}"
        )
    sample = Sample(
        run,
        side,
        max_repetitions,
        first["wall_seconds"],
        first["cpu_seconds"],
        first["varbinds"],
        first["requests"],
        after.cpu_seconds - before.cpu_seconds,  # the second poll's share is a few ms
        {"user_seconds": first["user_seconds"], "system_seconds": first["system_seconds"]},
    )
    unchanged = UnchangedPoll(
        run,
        side,
        max_repetitions,
        second["requests"],
        agent_requests - first["requests"],
        second["walked"],
        second["wall_seconds"],
        second["cpu_seconds"],
    )
    return sample, unchanged


def measure_netsnmp(
    agent_process: AgentProcess, run: int, max_repetitions: int, expected: Expected
) -> Sample:
    agent = agent_process.agent
    before = agent_process.usage()
    walks = netsnmp.walk_columns(agent.target, agent.community, max_repetitions, COLUMNS)
    after = agent_process.usage()
    rows = {walk.column: walk.rows for walk in walks}
    if rows != expected.rows:
        raise BenchMismatch(f"run {run}: snmpbulkwalk rows {rows} != ours {expected.rows}")
    return Sample(
        run,
        NETSNMP,
        max_repetitions,
        sum(walk.wall_seconds for walk in walks),
        sum(walk.cpu_seconds for walk in walks),
        sum(rows.values()),
        after.requests - before.requests,
        after.cpu_seconds - before.cpu_seconds,
        {"walks": [{**asdict(walk), "cpu_seconds": walk.cpu_seconds} for walk in walks]},
    )


def one_run(
    agent_process: AgentProcess, run: int, options: Options, expected: dict[int, Expected]
) -> tuple[list[Sample], list[UnchangedPoll]]:
    samples, unchanged = [], []
    ours_first = run % 2 == 1  # take turns, so drift during a run favours neither side
    for repetitions in options.repetitions:
        wanted = expected[repetitions]
        if not ours_first:
            samples.append(measure_netsnmp(agent_process, run, repetitions, wanted))
        ours, second = measure_ours(agent_process, run, repetitions, wanted)
        samples.append(ours)
        unchanged.append(second)
        if ours_first:
            samples.append(measure_netsnmp(agent_process, run, repetitions, wanted))
    return samples, unchanged


# --- summary -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    side: str
    max_repetitions: int
    requests: int  # medians over runs from here on
    varbinds: int
    wall_seconds: float
    cpu_seconds: float
    cpu_us_per_varbind: float
    agent_cpu_seconds: float
    wall_ratio: float | None  # ours / snmpbulkwalk, same max-repetitions
    cpu_ratio: float | None


def summarize(samples: Sequence[Sample]) -> list[Row]:
    groups: dict[tuple[str, int], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.side, sample.max_repetitions), []).append(sample)

    def median(group: Sequence[Sample], name: str) -> float:
        return float(statistics.median(getattr(s, name) for s in group))

    rows = []
    for (side, repetitions), group in groups.items():
        reference = groups.get((NETSNMP, repetitions))
        ours = side != NETSNMP and reference is not None
        wall, cpu = median(group, "wall_seconds"), median(group, "cpu_seconds")
        rows.append(
            Row(
                side,
                repetitions,
                round(median(group, "requests")),
                round(median(group, "varbinds")),
                wall,
                cpu,
                median(group, "cpu_us_per_varbind"),
                median(group, "agent_cpu_seconds"),
                wall / median(reference, "wall_seconds") if ours and reference else None,
                cpu / median(reference, "cpu_seconds") if ours and reference else None,
            )
        )
    return sorted(rows, key=lambda r: (r.max_repetitions, ORDER.index(r.side)))


TABLE = (
    ("side", ""),
    ("R", "d"),
    ("requests", "d"),
    ("varbinds", "d"),
    ("wall s", ".2f"),
    ("CPU s", ".3f"),
    ("CPU us/vb", ".1f"),
    ("agent CPU s", ".2f"),
    ("wall x", ".2f"),
    ("CPU x", ".2f"),
)


def unchanged_table(polls: Sequence[UnchangedPoll]) -> str:
    lines = ["unchanged-table poll (same probe, second poll; the probe's own session):"]
    ours = [p for p in polls if p.side == OURS]
    for repetitions in sorted({p.max_repetitions for p in ours}):
        group = [p for p in ours if p.max_repetitions == repetitions]
        requests = ",".join(str(p.requests) for p in group)
        agent = ",".join(str(p.agent_requests) for p in group)
        wall = statistics.median(p.wall_seconds for p in group) * 1000
        cpu = statistics.median(p.cpu_seconds for p in group) * 1000
        walked = "yes" if any(p.walked for p in group) else "no"
        lines.append(
            f"  R={repetitions}: requests per run {requests} (agent saw {agent}), walked: {walked},"
            f" wall {wall:.1f} ms, CPU {cpu:.1f} ms (medians)"
        )
    return "\n".join(lines)


def ratios_per_run(samples: Sequence[Sample]) -> dict[str, list[float]]:
    """Each run's own ratios: shows whether the medians hide a spread."""
    by_key = {(s.run, s.side, s.max_repetitions): s for s in samples}
    ratios: dict[str, list[float]] = {}
    for (run, side, repetitions), ours in sorted(by_key.items()):
        theirs = by_key.get((run, NETSNMP, repetitions))
        if side == NETSNMP or theirs is None:
            continue
        name = "" if side == OURS else f", {side}"
        ratios.setdefault(f"wall R={repetitions}{name}", []).append(
            round(ours.wall_seconds / theirs.wall_seconds, 3)
        )
        ratios.setdefault(f"CPU R={repetitions}{name}", []).append(
            round(ours.cpu_seconds / theirs.cpu_seconds, 2)
        )
    return ratios


def verdicts(
    rows: Sequence[Row], polls: Sequence[UnchangedPoll], goal_repetitions: int
) -> dict[str, Any]:
    ours = next(r for r in rows if r.side == OURS and r.max_repetitions == goal_repetitions)
    assert ours.wall_ratio is not None
    polls = [p for p in polls if p.side == OURS]
    no_walk = all(p.requests == 1 and p.agent_requests == 1 and not p.walked for p in polls)
    return {
        "wall_ratio": ours.wall_ratio,
        "wall_goal": WALL_GOAL,
        "wall_goal_met": ours.wall_ratio <= WALL_GOAL,
        "unchanged_poll_requests": sorted({p.requests for p in polls}),
        "unchanged_poll_agent_requests": sorted({p.agent_requests for p in polls}),
        "unchanged_poll_goal_met": no_walk,
    }


# --- entry -------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = options_parser("bench.snmp_walk", __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phones", type=int, default=20_000)
    parser.add_argument(
        "--repetitions",
        type=listed(int),
        default=(5, 25),
        help="max-repetitions values, comma-separated; the goal is judged at the first",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the runs, cProfile one first poll of ours at the first max-repetitions "
        "(CPU clock; adds about 1.5 minutes)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    exit_on_signals()  # a SIGTERM must still stop the agent and any child
    stamp = utc_stamp()
    env = environment(
        pysnmp=importlib.metadata.version("pysnmp"),
        pyasn1=importlib.metadata.version("pyasn1"),
        net_snmp=netsnmp.version_string(),
    )
    samples: list[Sample] = []
    polls: list[UnchangedPoll] = []
    expected: dict[int, Expected] = {}
    profile_report: dict[str, Any] | None = None
    with AgentProcess(options.phones) as agent_process:
        agent = agent_process.agent
        print(
            f"agent: {agent.phones} phones, {agent.products} products on {agent.target}",
            file=sys.stderr,
        )
        for repetitions in options.repetitions:
            expected[repetitions] = verify(agent, repetitions)
        single = netsnmp.one_root_only(
            agent.target, agent.community, options.repetitions[0], COLUMNS
        )
        for run in range(1, options.runs + 1):
            run_samples, run_polls = one_run(agent_process, run, options, expected)
            samples += run_samples
            polls += run_polls
            print(f"run {run}/{options.runs} done", file=sys.stderr)
        if options.profile:
            path = RESULTS / f"snmp_walk-{stamp}-R{options.repetitions[0]}.pstats"
            RESULTS.mkdir(parents=True, exist_ok=True)
            drive_ours(agent, options.repetitions[0], "--profile", str(path))
            profile_report = {"file": str(path.relative_to(ROOT)), **profile.breakdown(path)}
    env["loadavg_at_end"] = loadavg()
    rows = summarize(samples)
    goal_repetitions = options.repetitions[0]
    verdict = verdicts(rows, polls, goal_repetitions)
    per_run = ratios_per_run(samples)
    code = env["exporter_code"]
    edits = f" + uncommitted {', '.join(code['uncommitted'])}" if code["uncommitted"] else ""
    print(f"exporter code: {code['commit']}{edits}")
    print(
        f"{agent.phones} phones, {agent.products} product names; rows per column, both sides: "
        + ", ".join(f"{name} {n}" for name, n in expected[goal_repetitions].rows.items())
    )
    print(
        "one snmpbulkwalk given all five columns printed: "
        + ", ".join(f"{name} {count}" for name, count in single.items())
    )
    print(table(TABLE, map(astuple, rows)))
    print(unchanged_table(polls))
    print("ratio in each run (ours / snmpbulkwalk):")
    for name, ratios in per_run.items():
        print(f"  {name}: {' '.join(f'{r:.2f}' for r in ratios)}")
    met = {True: "met", False: "NOT met"}
    print(
        f"\ngoal 1: ours wall <= {WALL_GOAL}x snmpbulkwalk's at R={goal_repetitions}: "
        f"{verdict['wall_ratio']:.3f}x ({met[verdict['wall_goal_met']]})"
    )
    print(
        "goal 2: an unchanged-table poll costs no walk: requests "
        f"{verdict['unchanged_poll_requests']}, "
        f"agent saw {verdict['unchanged_poll_agent_requests']} "
        f"({met[verdict['unchanged_poll_goal_met']]})"
    )
    if profile_report is not None:
        print(f"\nprofile of one first poll at R={goal_repetitions}:")
        print(profile.table(profile_report))
    report = {
        "environment": env,
        "options": vars(options),
        "agent": asdict(agent),
        "verification": {str(r): asdict(found) for r, found in sorted(expected.items())},
        "snmpbulkwalk_all_columns_in_one_run": single,
        "verdict": verdict,
        "summary": [asdict(row) for row in rows],
        "unchanged_polls": [asdict(p) for p in polls],
        "ratios_per_run": per_run,
        "samples": [{**asdict(s), "cpu_us_per_varbind": s.cpu_us_per_varbind} for s in samples],
        "profile": profile_report,
    }
    start_load = float(env["loadavg_at_start"].split()[0])
    end_load = float(env["loadavg_at_end"].split()[0])
    # The benchmark itself keeps about one core busy; more means something else ran too.
    busy = " (something else was running: wall times are suspect)" if end_load > 1.5 else ""
    print(f"\nload average (1 min) at start {start_load:.2f}, at end {end_load:.2f}{busy}")
    path = write_json(RESULTS / f"snmp_walk-{stamp}.json", report)
    print(f"written: {path.relative_to(ROOT)}")
    return 0
