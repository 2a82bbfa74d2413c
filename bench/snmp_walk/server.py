"""The SNMP agent both clients walk: one lab `CcmAgent` with a big phone table, in its own process.

It runs apart from both clients so that its CPU never lands in either side's figure (the
benchmark reads it from /proc for context). It prints one JSON line (address, port, community,
phones, products, pid) once listening, then serves until stdin closes or it gets
SIGTERM/SIGINT; the stdin rule means it cannot outlive a benchmark that died without cleanup.
Each line `requests` on stdin is answered with a JSON line `{"requests": N}`: the PDUs the
agent has answered so far (`CcmAgent.requests`), so the benchmark can count each side's.

    python -m bench.snmp_walk.server --phones 20000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from collections.abc import Sequence

from bench.exporter_api import (
    DEFAULT_MIX,
    CcmAgent,
    LabPhone,
    generate_phones,
    start_agent,
    stop_agent,
)
from bench.processes import exit_on_signals

ADDRESS = "127.0.0.1"
COMMUNITY = "bench-community"
SYS_NAME = "cucm-bench"
NODE_NUMBER = 1  # only feeds the device names; one node, so any number would do


def repeated_mix(phones: int) -> list[tuple[str, str, int]]:
    """DEFAULT_MIX's models and loads over and over, in its proportions, up to `phones` rows.

    `generate_phones` numbers the phones of the whole mix serially, so names stay unique.
    """
    mix: list[tuple[str, str, int]] = []
    left = phones
    for product, load, count in itertools.cycle(DEFAULT_MIX):
        if left <= 0:
            break
        take = min(count, left)
        mix.append((product, load, take))
        left -= take
    return mix


def bench_phones(phones: int) -> list[LabPhone]:
    table = generate_phones(NODE_NUMBER, repeated_mix(phones))
    names = {phone.name for phone in table}
    if len(table) != phones or len(names) != phones:
        raise RuntimeError(f"wanted {phones} phones with unique names, got {len(names)}")
    return table


async def serve(phones: int, port: int) -> None:
    agent = CcmAgent(COMMUNITY, SYS_NAME)
    agent.phones = bench_phones(phones)
    agent.rebuild()
    bound = await start_agent(agent, ADDRESS, port)
    announcement = {
        "address": ADDRESS,
        "port": bound,
        "community": COMMUNITY,
        "phones": len(agent.phones),
        "products": len({phone.product for phone in agent.phones}),
        "pid": os.getpid(),
    }
    print(json.dumps(announcement), flush=True)
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    commands = Commands(agent, closed)
    loop.add_reader(sys.stdin.fileno(), commands.read)
    try:
        await closed
    finally:
        loop.remove_reader(sys.stdin.fileno())
        stop_agent(agent)


class Commands:
    """stdin: `requests` lines get the agent's PDU count; EOF stops the agent."""

    def __init__(self, agent: CcmAgent, closed: asyncio.Future[None]) -> None:
        self._agent = agent
        self._closed = closed
        self._pending = b""

    def read(self) -> None:
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:  # the benchmark closed our stdin, or went away
            if not self._closed.done():
                self._closed.set_result(None)
            return
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if line.strip() == b"requests":
                print(json.dumps({"requests": self._agent.requests}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    exit_on_signals()
    asyncio.run(serve(args.phones, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
