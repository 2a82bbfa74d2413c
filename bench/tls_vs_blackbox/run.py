"""Orchestrate the benchmark: server, both clients, several runs, a table and a JSON file.

Three processes take part, so each CPU figure holds one client only:

* the TLS server (`server.py`, a lab node) whose CPU nobody counts;
* our probe (`ours.py`), which times its own CPU around its handshake loop;
* blackbox_exporter, whose CPU this process reads from /proc before and after its loop.

Within a run the two sides take turns on the same server (who goes first alternates between
runs, so a slow drift of the machine cannot favour one side); the report gives the median of
the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, astuple, dataclass, field
from typing import Any

from bench import blackbox
from bench.blackbox import Blackbox
from bench.exporter_api import TlsVersion, open_tls, pinned_context
from bench.options import Options, listed
from bench.options import parser as options_parser
from bench.processes import Announcing, Endpoint, exit_on_signals, run_driver
from bench.report import RESULTS, ROOT, environment, utc_stamp, write_json
from bench.table import table

ALL_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
SERVER_START_TIMEOUT = 30.0
DRIVER_TIMEOUT = 300.0

OURS = "ours open_tls"
OURS_SWEEP = "ours probe_tls, per version"  # CPU / versions reported
OURS_SWEEP_HANDSHAKE = "ours probe_tls, per handshake"  # CPU / all handshakes
FLOOR = "floor: blocking OpenSSL"  # the same pinned context, one blocking handshake at a time
BLACKBOX = "blackbox tcp+tls"
BLACKBOX_FLOOR = "blackbox tcp_connect (no TLS)"
ALL = "all"


@dataclass(frozen=True)
class Server(Endpoint):
    server_name: str
    min_version: str
    max_version: str


@dataclass(frozen=True)
class Sample:
    """One measured batch: `handshakes` handshakes (probes, for the floor) by one client."""

    run: int
    side: str
    version: str
    concurrency: int
    handshakes: int
    wall_seconds: float
    cpu_seconds: float
    # What our side negotiated ("TLSv1 ECDHE-RSA-AES256-SHA" -> count); blackbox 0.23 does
    # not report its cipher, only the version, which `blackbox.py` checks on every probe.
    negotiated: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_handshake(self) -> float:
        return 1000 * self.cpu_seconds / self.handshakes


# --- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def tls_server(min_version: str, max_version: str) -> Iterator[Server]:
    """The lab node in its own process; closing its stdin (or SIGTERM) stops it."""
    command = [sys.executable, "-m", "bench.tls_vs_blackbox.server"]
    command += ["--min", min_version, "--max", max_version]
    with Announcing(
        command, SERVER_START_TIMEOUT, name="the TLS server", linger=10, stop_timeout=5
    ) as server:
        yield Server(**server.announcement)


def drive_ours(server: Server, args: list[str]) -> list[dict[str, Any]]:
    """Run `ours.py` (a fresh process, so nothing of ours runs in the timed one but the probe)."""
    command = [sys.executable, "-m", "bench.tls_vs_blackbox.ours", "--port", str(server.port)]
    command += ["--address", server.address, "--server-name", server.server_name, *args]
    return [json.loads(line) for line in run_driver(command, DRIVER_TIMEOUT).splitlines()]


# --- which versions can be compared --------------------------------------------------------


def ours_accepts(server: Server, version: str) -> bool:
    async def handshake() -> str | None:
        context = pinned_context(TlsVersion(version))
        facts = await open_tls(server.address, server.port, context, server.server_name, 5.0)
        return facts.version

    try:
        negotiated = asyncio.run(handshake())
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    return TlsVersion.from_openssl(negotiated) is TlsVersion(version)


def comparable_versions(
    server: Server, box: Blackbox, wanted: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """The versions both clients complete against this server, and why the others are out."""
    both, excluded = [], {}
    for version in wanted:
        ours, theirs = ours_accepts(server, version), box.accepts(server.target, version)
        if ours and theirs:
            both.append(version)
        else:
            who = [name for name, ok in (("our probe", ours), ("blackbox", theirs)) if not ok]
            excluded[version] = f"no handshake by {' and '.join(who)}"
    return both, excluded


# --- one run -------------------------------------------------------------------------------


def measure_ours(
    server: Server, run: int, versions: Sequence[str], concurrency: int, options: Options
) -> list[Sample]:
    common = ["--versions", ",".join(versions), "--concurrency", str(concurrency)]
    common += ["--warmup", str(options.warmup)]
    samples = [
        _driver_sample(run, side, batch["versions"][0], concurrency, batch["handshakes"], batch)
        for mode, side in (("open_tls", OURS), ("blocking", FLOOR))
        for batch in drive_ours(server, [*common, "--mode", mode, "--count", str(options.count)])
    ]
    # As many pinned handshakes in all as one per-version batch has (`count`).
    sweeps = ["--mode", "probe_tls", "--count", str(options.count // len(versions))]
    for batch in drive_ours(server, [*common, *sweeps]):
        samples.append(
            _driver_sample(run, OURS_SWEEP, ALL, concurrency, batch["pinned_handshakes"], batch)
        )
        samples.append(
            _driver_sample(run, OURS_SWEEP_HANDSHAKE, ALL, concurrency, batch["handshakes"], batch)
        )
    return samples


def _driver_sample(
    run: int, side: str, version: str, concurrency: int, handshakes: int, batch: dict[str, Any]
) -> Sample:
    return Sample(
        run,
        side,
        version,
        concurrency,
        handshakes,
        batch["wall_seconds"],
        batch["cpu_seconds"],
        batch["negotiated"],
    )


def measure_blackbox(
    server: Server,
    box: Blackbox,
    run: int,
    versions: Sequence[str],
    concurrency: int,
    options: Options,
) -> list[Sample]:
    samples = []
    modules = [(blackbox.module_name(v), v, BLACKBOX) for v in versions]
    modules.append((blackbox.TCP_CONNECT, "-", BLACKBOX_FLOOR))
    for module, version, side in modules:
        batch = box.run(server.target, module, options.count, concurrency, options.warmup)
        samples.append(
            Sample(
                run,
                side,
                version,
                concurrency,
                batch.probes,
                batch.wall_seconds,
                batch.cpu_seconds,
            )
        )
    return samples


def one_run(
    server: Server, box: Blackbox, run: int, versions: Sequence[str], options: Options
) -> list[Sample]:
    samples = []
    for concurrency in options.concurrencies:
        ours_first = run % 2 == 1  # take turns, so drift during a run favours neither side
        if ours_first:
            samples += measure_ours(server, run, versions, concurrency, options)
        samples += measure_blackbox(server, box, run, versions, concurrency, options)
        if not ours_first:
            samples += measure_ours(server, run, versions, concurrency, options)
    return samples


# --- summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    side: str
    version: str
    concurrency: int
    handshakes: int  # per run
    wall_seconds: float  # medians over runs from here on
    cpu_seconds: float
    cpu_ms_per_handshake: float
    ratio: float | None  # ours / blackbox tcp+tls, same version and concurrency


def with_totals(samples: Sequence[Sample]) -> list[Sample]:
    """Add, per run, side and concurrency, an "all" sample summing the per-version ones."""
    groups: dict[tuple[int, str, int], list[Sample]] = {}
    for sample in samples:
        if sample.side in (OURS, BLACKBOX, FLOOR):
            groups.setdefault((sample.run, sample.side, sample.concurrency), []).append(sample)
    totals = [
        Sample(
            run,
            side,
            ALL,
            concurrency,
            sum(s.handshakes for s in group),
            sum(s.wall_seconds for s in group),
            sum(s.cpu_seconds for s in group),
        )
        for (run, side, concurrency), group in groups.items()
    ]
    return [*samples, *totals]


def summarize(samples: Sequence[Sample]) -> list[Row]:
    groups: dict[tuple[str, str, int], list[Sample]] = {}
    for sample in with_totals(samples):
        groups.setdefault((sample.side, sample.version, sample.concurrency), []).append(sample)
    medians = {
        key: statistics.median(s.cpu_ms_per_handshake for s in group)
        for key, group in groups.items()
    }
    rows = []
    for (side, version, concurrency), group in groups.items():
        reference = medians.get((BLACKBOX, version, concurrency))
        ours = side not in (BLACKBOX, BLACKBOX_FLOOR)
        rows.append(
            Row(
                side,
                version,
                concurrency,
                group[0].handshakes,
                statistics.median(s.wall_seconds for s in group),
                statistics.median(s.cpu_seconds for s in group),
                medians[(side, version, concurrency)],
                medians[(side, version, concurrency)] / reference if ours and reference else None,
            )
        )
    order = [OURS, FLOOR, BLACKBOX, OURS_SWEEP, OURS_SWEEP_HANDSHAKE, BLACKBOX_FLOOR]
    return sorted(rows, key=lambda r: (r.concurrency, r.version, order.index(r.side)))


TABLE = (
    ("side", ""),
    ("TLS", ""),
    ("conc", "d"),
    ("handshakes", "d"),
    ("wall s", ".3f"),
    ("CPU s", ".3f"),
    ("CPU ms/hs", ".3f"),
    ("ours/bb", ".2f"),
)


# Our CPU at most this share of blackbox_exporter's (issue 15): per version the sweep
# reports, and for the bare pinned handshake. The other rows are for information.
GOALS = {OURS_SWEEP: 0.8, OURS: 0.7}


def ratios_per_run(samples: Sequence[Sample]) -> dict[str, list[float]]:
    """All-versions ratio of each run on its own: shows whether the medians hide a spread."""
    per_hs = {
        (s.run, s.side, s.concurrency): s.cpu_ms_per_handshake
        for s in with_totals(samples)
        if s.version == ALL
    }
    ratios: dict[str, list[float]] = {}
    for (run, side, concurrency), ms in sorted(per_hs.items()):
        reference = per_hs.get((run, BLACKBOX, concurrency))
        if side not in (BLACKBOX, BLACKBOX_FLOOR) and reference:
            ratios.setdefault(f"{side}, concurrency {concurrency}", []).append(
                round(ms / reference, 3)
            )
    return ratios


def verdicts(rows: Sequence[Row]) -> list[str]:
    """One line per concurrency: the all-versions ratios, against the goal where one is set."""
    lines = []
    for concurrency in sorted({row.concurrency for row in rows}):
        parts = [
            f"{row.side} {row.ratio:.2f}x ({_against_goal(row.side, row.ratio)})"
            for row in rows
            if row.concurrency == concurrency and row.version == ALL and row.ratio is not None
        ]
        lines.append(f"concurrency {concurrency}: " + "; ".join(parts))
    return lines


def _against_goal(side: str, ratio: float) -> str:
    goal = GOALS.get(side)
    if goal is None:
        return "no goal"
    return f"goal {goal:.1f}x {'met' if ratio <= goal else 'NOT met'}"


# --- entry ---------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = options_parser("bench.tls_vs_blackbox", __doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=1000, help="handshakes per version per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed handshakes per batch")
    parser.add_argument(
        "--concurrency", dest="concurrencies", type=listed(int), default=(1, 4), help="e.g. 1,4"
    )
    parser.add_argument("--versions", type=listed(str), default=ALL_VERSIONS, help="e.g. 1.2,1.3")
    parser.add_argument("--server-min", default="1.0", choices=ALL_VERSIONS)
    parser.add_argument("--server-max", default="1.3", choices=ALL_VERSIONS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    exit_on_signals()  # a SIGTERM must still stop blackbox and the server
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (
        tls_server(options.server_min, options.server_max) as server,
        Blackbox(options.versions, RESULTS) as box,
    ):
        versions, excluded = comparable_versions(server, box, options.versions)
        for version, why in excluded.items():
            print(f"TLS {version}: left out, {why}", file=sys.stderr)
        if not versions:
            print("no TLS version both clients can do: nothing to compare", file=sys.stderr)
            return 1
        samples: list[Sample] = []
        for run in range(1, options.runs + 1):
            samples += one_run(server, box, run, versions, options)
            print(f"run {run}/{options.runs} done", file=sys.stderr)
    rows = summarize(samples)
    print(f"TLS versions compared: {', '.join(versions)}")
    print(table(TABLE, map(astuple, rows)))
    goals = ", ".join(f"{side} <= {goal:.1f}x" for side, goal in GOALS.items())
    print(f"\ngoals (CPU vs blackbox, all versions): {goals}")
    for line in verdicts(rows):
        print("  " + line)
    per_run = ratios_per_run(samples)
    print("ratio in each run:")
    for name, ratios in per_run.items():
        print(f"  {name}: {' '.join(f'{r:.2f}' for r in ratios)}")
    report = {
        "environment": environment(
            openssl=ssl.OPENSSL_VERSION, blackbox_exporter=blackbox.version_string()
        ),
        "options": vars(options),
        "server": asdict(server),
        "versions_compared": versions,
        "versions_excluded": excluded,
        "goal_ratios": GOALS,
        "summary": [asdict(row) for row in rows],
        "ratios_per_run": per_run,
        "samples": [asdict(sample) for sample in samples],
    }
    path = write_json(RESULTS / f"tls_vs_blackbox-{utc_stamp()}.json", report)
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0
