"""Our side: the exporter's real `SnmpProbe` against the bench agent, timing its own CPU.

Runs as a process of its own so that its CPU clock holds nothing but the probe: imports and
config building happen before the first reading, and the agent lives in another process.

1. **first poll**: a fresh `SnmpProbe`, so the poll reads the scalars, then walks
   ccmProductName and the four ccmPhoneTable columns in lock-step GETBULKs (the full inventory
   walk). It includes creating the pysnmp engine, as the exporter's first poll of a node does.
2. **second poll**: the same probe, same table: it must read the scalars and skip the walk.

With `--verify` it does none of this: one untimed poll by a fresh probe goes through a
session that keeps every reply, to count the rows of each column as they came off the wire.
Both modes print a digest of the inventory, so the benchmark can tell that every poll saw the
same table. Prints one JSON object.

    python -m bench.snmp_walk.ours --port 16100 --community bench-community --max-repetitions 5
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pysnmp.hlapi.v3arch.asyncio import CommunityData, SnmpEngine, UdpTransportTarget

from bench.exporter_api import (
    PHONE_COLUMNS,
    PRODUCT_NAMES,
    SCALARS,
    Deadline,
    NodeConfig,
    PysnmpSession,
    SnmpCredentials,
    SnmpOutcome,
    SnmpProbe,
    SnmpProbeConfig,
    SnmpProbeResult,
    SnmpSession,
)
from bench.options import driver_parser
from bench.processes import Clock, profiled

Oid = tuple[int, ...]
POLL_TIMEOUT = 240.0  # generous: running out is a broken bench, not a data point
REQUEST_TIMEOUT = 5.0
# Column names as the report uses them, in the order snmpbulkwalk is run.
COLUMNS: Mapping[str, Oid] = {"product_name": PRODUCT_NAMES, **PHONE_COLUMNS}


class BenchError(RuntimeError):
    """The probe did not do what the benchmark needs; its figures would be meaningless."""


@dataclass(frozen=True)
class Poll:
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    requests: int  # SNMP requests this poll sent (the probe's own count)
    walked: bool
    phones: int
    products: int  # distinct product names in the result

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds

    @property
    def varbinds(self) -> int:
        """Values the poll needed: the scalars, ccmProductName, four columns per phone."""
        scalars = len(SCALARS)
        return scalars + (self.products + len(PHONE_COLUMNS) * self.phones if self.walked else 0)


def settings(max_repetitions: int) -> SnmpProbeConfig:
    return SnmpProbeConfig(
        timeout=POLL_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
        retries=0,  # loopback: a lost datagram would be a bench failure, not a retry
        max_repetitions=max_repetitions,
    )


def node(address: str, port: int, community: str) -> NodeConfig:
    credentials = SnmpCredentials(version="2c", community=SecretStr(community))
    return NodeConfig(name="bench", host=address, port_map={161: port}, snmp=credentials)


async def timed_poll(
    probe: SnmpProbe,
    target: NodeConfig,
    config: SnmpProbeConfig,
    profile: Path | None = None,
) -> tuple[Poll, SnmpProbeResult]:
    with profiled(profile):
        start = Clock.now()
        result = await probe(target, config, Deadline.after(config.timeout))
        end = Clock.now()
    if result.outcome is not SnmpOutcome.OK:
        raise BenchError(f"poll failed: {result.outcome.name}: {result.detail}")
    phones = result.phones or ()
    wall, user, system = end.since(start)
    poll = Poll(
        wall_seconds=wall,
        user_seconds=user,
        system_seconds=system,
        requests=result.requests,
        walked=result.walked,
        phones=len(phones),
        products=len({phone.product for phone in phones if phone.product}),
    )
    return poll, result


# --- the untimed check of what came off the wire ---------------------------------------------


class RecordingSession:
    """An `SnmpSession` that hands every call to a `PysnmpSession` and keeps the replies."""

    def __init__(self, inner: SnmpSession) -> None:
        self._inner = inner
        self.replies: list[list[tuple[Oid, Any]]] = []
        self.requests = 0

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        self.requests += 1
        reply = await self._inner.get(oids)
        self.replies.append(reply)
        return reply

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]:
        self.requests += 1
        reply = await self._inner.bulk(oids, max_repetitions)
        self.replies.append(reply)
        return reply


@dataclass(frozen=True)
class Verification:
    rows: dict[str, int]  # distinct instances received under each column
    varbinds_on_wire: int  # every varbind received, overshoot past a column's end included
    requests: int
    phones: int
    inventory: str  # digest of the inventory the poll returned


def digest(result: SnmpProbeResult) -> str:
    """The inventory (every phone row, in walk order) as a short hash, to compare polls."""
    rows = [(p.name, p.status, p.product, p.active_load) for p in result.phones or ()]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


async def verify(address: str, port: int, community: str, max_repetitions: int) -> Verification:
    """One poll through a recording session; count each column's rows as received."""
    engine = SnmpEngine()
    target = await UdpTransportTarget.create((address, port), timeout=REQUEST_TIMEOUT, retries=0)
    session = RecordingSession(PysnmpSession(engine, CommunityData(community, mpModel=1), target))
    probe = SnmpProbe()  # fresh: it has no previous walk, so it walks
    config = settings(max_repetitions)
    try:
        result = await probe(
            node(address, port, community), config, Deadline.after(config.timeout), session
        )
    finally:
        engine.close_dispatcher()
        await probe.aclose()
    if result.outcome is not SnmpOutcome.OK or not result.walked:
        raise BenchError(f"the verification poll did not walk: {result.outcome} {result.detail}")
    seen: dict[str, set[Oid]] = {name: set() for name in COLUMNS}
    for reply in session.replies:
        for oid, _ in reply:
            for name, prefix in COLUMNS.items():
                if oid[: len(prefix)] == prefix and len(oid) > len(prefix):
                    seen[name].add(oid)
    return Verification(
        rows={name: len(oids) for name, oids in seen.items()},
        varbinds_on_wire=sum(len(reply) for reply in session.replies),
        requests=session.requests,
        phones=len(result.phones or ()),
        inventory=digest(result),
    )


# --- entry -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.verify:
        checked = await verify(args.address, args.port, args.community, args.max_repetitions)
        return {"max_repetitions": args.max_repetitions, "verification": asdict(checked)}
    target = node(args.address, args.port, args.community)
    config = settings(args.max_repetitions)
    probe = SnmpProbe()
    try:
        first, result = await timed_poll(probe, target, config, args.profile)
        if not first.walked:
            raise BenchError("the first poll of a fresh probe did not walk")
        second, again = await timed_poll(probe, target, config)
        if again.phones != result.phones:
            raise BenchError("the unchanged-table poll returned another inventory")
    finally:
        await probe.aclose()
    return {
        "max_repetitions": args.max_repetitions,
        "first": {**asdict(first), "cpu_seconds": first.cpu_seconds, "varbinds": first.varbinds},
        "second": {**asdict(second), "cpu_seconds": second.cpu_seconds},
        "inventory": digest(result),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = driver_parser(__doc__, "cProfile the first poll into FILE; slows it down a lot")
    parser.add_argument("--community", required=True)
    parser.add_argument("--max-repetitions", type=int, default=5)
    parser.add_argument(
        "--verify", action="store_true", help="only an untimed poll counting rows per column"
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
