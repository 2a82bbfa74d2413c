"""Our side: the exporter's real `RisportProbe` walking the bench lab, timing its own CPU.

A process of its own, so that its CPU clock holds the probe alone: imports, config parsing and
the lab are elsewhere or before the first reading. The probe's request budget runs on an
accelerated clock: a wait for the budget moves the clock on instead of sleeping (the seam the
tests use), so wall and CPU hold the work; the seconds it would have waited against a CUCM are
reported as `budget_wait_seconds`.

1. **first walk**: a fresh probe, so its zeep session is built (the bundled WSDL parsed), then
   every page of selectCmDeviceExt (1000 devices a page);
2. **second walk**: the same probe and session, the same table: the steady state of a daemon.

With `--verify` it times nothing: one RisPort70 walk and one SNMP poll (our `SnmpProbe`) of the
same node must list the same phones (name, status, model, load), and it prints the digests each
timed run must match. Prints one JSON object.

    python -m bench.risport.ours --config /tmp/risport-bench.yml --port 161xx --community C
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.exporter_api import (
    BudgetBook,
    Deadline,
    PhoneRow,
    RisportOutcome,
    RisportProbe,
    RisportProbeResult,
    SnmpProbe,
    Target,
    parse_config,
)
from bench.options import driver_parser
from bench.processes import Clock, profiled
from bench.snmp_walk.ours import node as snmp_node
from bench.snmp_walk.ours import settings as snmp_settings
from bench.snmp_walk.ours import timed_poll as timed_snmp_poll

WALK_TIMEOUT = 600.0  # generous: running out is a broken bench, not a data point
REQUEST_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """The probe did not do what the benchmark needs; its figures would be meaningless."""


class AcceleratedClock:
    """The budget's clock: monotonic time plus every wait the probe asked for, not slept."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.skipped += seconds


@dataclass(frozen=True)
class Walk:
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    requests: int  # the probe's own count
    pages: int
    devices: int
    budget_wait_seconds: float  # what the budget would have made it wait against a CUCM

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


def target(config_file: Path, requests_per_minute: int, page_size: int) -> Target:
    data: dict[str, Any] = yaml.safe_load(config_file.read_text())
    data["probes"]["risport"] |= {
        "interval": f"{WALK_TIMEOUT * 2:g}s",
        "timeout": f"{WALK_TIMEOUT:g}s",
        "request_timeout": f"{REQUEST_TIMEOUT:g}s",
        "requests_per_minute": requests_per_minute,
        "page_size": page_size,
    }
    config = parse_config(yaml.safe_dump(data), base_dir=config_file.parent)
    cluster = config.clusters[0]
    return Target(config, cluster, cluster.nodes[0], config.probes.risport)


def digest(rows: Iterable[PhoneRow]) -> str:
    """The inventory as a short hash, in name order (RisPort's and SNMP's orders differ)."""
    listed = sorted((r.name, r.status, r.product, r.active_load) for r in rows)
    return hashlib.sha256(json.dumps(listed).encode()).hexdigest()[:16]


def rows_of(result: RisportProbeResult) -> list[PhoneRow]:
    return [row for table in (result.phones or {}).values() for row in table]


async def timed_walk(
    probe: RisportProbe, where: Target, clock: AcceleratedClock, profile: Path | None = None
) -> tuple[Walk, RisportProbeResult]:
    waited = clock.skipped
    with profiled(profile):
        start = Clock.now()
        result = await probe.run(where, Deadline.after(WALK_TIMEOUT))
        end = Clock.now()
    if result.outcome is not RisportOutcome.OK:
        raise BenchError(f"walk failed: {result.outcome.name}: {result.detail}")
    wall, user, system = end.since(start)
    walk = Walk(
        wall,
        user,
        system,
        result.requests,
        result.pages,
        len(rows_of(result)),
        clock.skipped - waited,
    )
    return walk, result


async def verify(args: argparse.Namespace, where: Target) -> dict[str, Any]:
    clock = AcceleratedClock()
    probe = RisportProbe(BudgetBook(clock), sleep=clock.sleep)
    snmp = SnmpProbe()
    try:
        walk, result = await timed_walk(probe, where, clock)
        config = snmp_settings(args.max_repetitions)
        _, polled = await timed_snmp_poll(
            snmp, snmp_node(args.address, args.port, args.community), config
        )
    finally:
        await probe.aclose()
        await snmp.aclose()
    risport, snmp_rows = digest(rows_of(result)), digest(polled.phones or ())
    if risport != snmp_rows:
        raise BenchError("RisPort70 and SNMP list different phones: nothing to compare")
    return {"verification": {"inventory": risport, "devices": walk.devices, "pages": walk.pages}}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    where = target(args.config, args.requests_per_minute, args.page_size)
    if args.verify:
        return await verify(args, where)
    clock = AcceleratedClock()
    probe = RisportProbe(BudgetBook(clock), sleep=clock.sleep)
    try:
        first, result = await timed_walk(probe, where, clock)
        second, again = await timed_walk(probe, where, clock, args.profile)
    finally:
        await probe.aclose()
    if digest(rows_of(again)) != digest(rows_of(result)):
        raise BenchError("the second walk returned another inventory")

    def report(walk: Walk) -> dict[str, Any]:
        return {**asdict(walk), "cpu_seconds": walk.cpu_seconds}

    return {"first": report(first), "second": report(second), "inventory": digest(rows_of(result))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = driver_parser(__doc__, "cProfile the second (warm) walk into FILE; slows it down")
    parser.add_argument("--config", type=Path, required=True, help="the bench lab's config")
    parser.add_argument("--community", required=True, help="for --verify's SNMP poll")
    parser.add_argument("--max-repetitions", type=int, default=5, help="for --verify")
    parser.add_argument("--requests-per-minute", type=int, default=15)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--verify", action="store_true", help="only the untimed agreement check")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
