"""Our side: pinned handshakes with the exporter's real probe code, timing its own CPU.

Runs as a process of its own so that its CPU clock holds nothing but the probe: imports, the
event loop's start and the warm-up happen before the first reading, and the TLS server lives in
another process. Prints one JSON object per measured batch.

Three ways to shake hands, all against one port of the bench server:

* `open_tls`: `open_tls(address, port, pinned_context(version), ...)`, the exact call
  `probe_tls` makes for each pinned handshake. Like for like with one blackbox tcp probe.
* `probe_tls`: whole `probe_tls` sweeps of one port over every version. Adds what a real probe
  run spends around the handshakes: certificate parsing, result objects, and a modern
  (unpinned) handshake only where the pinned ones cannot stand for it. Reported per pinned
  version checked and per handshake.
* `blocking`: the floor. A blocking `socket.create_connection` + `wrap_socket` with the same
  pinned context, one at a time, no event loop: what OpenSSL itself costs in this process.

    python -m bench.tls_vs_blackbox.ours --port 4443 --server-name node.bench.test \
        --versions 1.0,1.2 --count 300 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from bench.exporter_api import (
    Deadline,
    HandshakeOutcome,
    NodeConfig,
    TlsProbeConfig,
    TlsProbeResult,
    TlsVersion,
    open_tls,
    parse_config,
    pinned_context,
    probe_tls,
)
from bench.options import driver_parser
from bench.processes import Clock, profiled

HANDSHAKE_TIMEOUT = 5.0  # generous: a timeout here is a broken bench, not a data point
MODES = ("open_tls", "probe_tls", "blocking")


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    server_name: str


@dataclass(frozen=True)
class Batch:
    """One measured loop: `operations` calls, `handshakes` TLS handshakes in all."""

    mode: str
    versions: list[str]
    concurrency: int
    operations: int
    handshakes: int
    pinned_handshakes: int
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    negotiated: dict[str, int]  # "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384" -> count

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


class BenchError(RuntimeError):
    """A handshake did not do what the benchmark needs; its figures would be meaningless."""


# --- measurement ---------------------------------------------------------------------------


async def run_concurrently(
    count: int, concurrency: int, step: Callable[[], Awaitable[None]]
) -> None:
    """Call `step` `count` times with at most `concurrency` calls in flight, always full.

    Workers pulling from a shared counter keep exactly `concurrency` handshakes going, which
    is what a pool of `concurrency` blackbox HTTP clients does on the other side.
    """
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await step()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


# --- the two ways to drive the probe ---------------------------------------------------------


def open_tls_step(
    target: Target, version: TlsVersion, negotiated: dict[str, int]
) -> Callable[[], Awaitable[None]]:
    context = pinned_context(version)  # cached by the probe, so built once as in production

    async def step() -> None:
        facts = await open_tls(
            target.address, target.port, context, target.server_name, HANDSHAKE_TIMEOUT
        )
        if TlsVersion.from_openssl(facts.version) is not version:
            raise BenchError(f"pinned {version.value} but negotiated {facts.version}")
        key = f"{facts.version} {facts.cipher}"
        negotiated[key] = negotiated.get(key, 0) + 1

    return step


def blocking_step(
    target: Target, version: TlsVersion, negotiated: dict[str, int]
) -> Callable[[], Awaitable[None]]:
    """One blocking handshake per call; a coroutine only so that `measure` can drive it."""
    context = pinned_context(version)

    async def step() -> None:
        with (
            socket.create_connection((target.address, target.port), HANDSHAKE_TIMEOUT) as sock,
            context.wrap_socket(sock, server_hostname=target.server_name) as tls,
        ):
            if TlsVersion.from_openssl(tls.version()) is not version:
                raise BenchError(f"pinned {version.value} but negotiated {tls.version()}")
            key = f"{tls.version()} {(tls.cipher() or ('?',))[0]}"
            negotiated[key] = negotiated.get(key, 0) + 1

    return step


def probe_settings(
    target: Target, versions: Sequence[TlsVersion]
) -> tuple[NodeConfig, TlsProbeConfig]:
    """A validated config, as the exporter would load it, for one node with one port."""
    document = {
        "probes": {
            "tls": {
                "timeout": "10s",
                "interval": "60s",
                "handshake_timeout": f"{HANDSHAKE_TIMEOUT:g}s",
                # One handshake at a time inside a sweep; `--concurrency` runs sweeps side by
                # side instead, so exactly that many handshakes are ever in flight.
                "concurrency": 1,
                "versions": [v.value for v in versions],
                "ports": [{"port": 8443, "service": "tomcat"}],
            }
        },
        "clusters": [
            {
                "name": "bench",
                "nodes": [
                    {
                        "name": "node",
                        "host": target.server_name,
                        "address": target.address,
                        "port_map": {8443: target.port},
                    }
                ],
            }
        ],
    }
    config = parse_config(yaml.safe_dump(document), base_dir=Path.cwd())
    return config.clusters[0].nodes[0], config.probes.tls


def probe_tls_step(
    target: Target, versions: Sequence[TlsVersion], negotiated: dict[str, int]
) -> Callable[[], Awaitable[None]]:
    node, settings = probe_settings(target, versions)

    async def step() -> None:
        result = await probe_tls(node, settings, Deadline.after(settings.timeout))
        check_sweep(result, negotiated)

    return step


def check_sweep(result: TlsProbeResult, negotiated: dict[str, int]) -> None:
    for port in result.ports:
        for handshake in port.pinned:
            if handshake.outcome is not HandshakeOutcome.ACCEPTED:
                raise BenchError(f"{handshake.pinned}: {handshake.outcome} {handshake.detail}")
            name = handshake.negotiated.value if handshake.negotiated else "?"
            key = f"TLS {name} {handshake.cipher}"
            negotiated[key] = negotiated.get(key, 0) + 1


# --- batches -----------------------------------------------------------------------------


async def measure(
    mode: str,
    target: Target,
    versions: Sequence[TlsVersion],
    count: int,
    concurrency: int,
    warmup: int,
    profile: Path | None = None,
) -> Batch:
    """Warm up, then time `count` operations; only the timed loop is on the clock."""
    negotiated: dict[str, int] = {}
    if mode in ("open_tls", "blocking"):
        (version,) = versions
        make = open_tls_step if mode == "open_tls" else blocking_step
        step = make(target, version, negotiated)
        per_operation, pinned_per_operation = 1, 1
        if mode == "blocking":
            concurrency = 1  # one thread, one handshake at a time: the floor has no overlap
    else:
        step = probe_tls_step(target, versions, negotiated)
        # The pinned 1.2 and 1.3 handshakes stand for the modern one (no CA bundle here).
        derived = {TlsVersion.TLS1_2, TlsVersion.TLS1_3} <= set(versions)
        per_operation, pinned_per_operation = len(versions) + (0 if derived else 1), len(versions)
    await run_concurrently(warmup, concurrency, step)
    negotiated.clear()
    with profiled(profile):
        start = Clock.now()
        await run_concurrently(count, concurrency, step)
        wall, user, system = Clock.now().since(start)
    return Batch(
        mode=mode,
        versions=[v.value for v in versions],
        concurrency=concurrency,
        operations=count,
        handshakes=count * per_operation,
        pinned_handshakes=count * pinned_per_operation,
        wall_seconds=wall,
        user_seconds=user,
        system_seconds=system,
        negotiated=negotiated,
    )


async def run_batches(args: argparse.Namespace) -> list[Batch]:
    """`open_tls`, `blocking`: one batch per version. `probe_tls`: one batch of sweeps."""
    target = Target(args.address, args.port, args.server_name)
    versions = [TlsVersion(v) for v in args.versions.split(",")]
    if args.mode != "probe_tls":
        batches = [([version], version.value) for version in versions]
    else:
        batches = [(versions, "sweep")]
    return [
        await measure(
            args.mode,
            target,
            pinned,
            args.count,
            args.concurrency,
            args.warmup,
            profile_path(args.profile, name),
        )
        for pinned, name in batches
    ]


def profile_path(prefix: Path | None, batch: str) -> Path | None:
    return None if prefix is None else prefix.with_name(f"{prefix.name}-{batch}.pstats")


def main(argv: Sequence[str] | None = None) -> int:
    parser = driver_parser(__doc__, "cProfile each timed loop into FILE-<batch>.pstats")
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--versions", default="1.0,1.1,1.2,1.3", help="comma-separated")
    parser.add_argument("--mode", choices=MODES, default="open_tls")
    parser.add_argument("--count", type=int, default=300, help="operations per batch")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10, help="untimed operations first")
    args = parser.parse_args(argv)
    for batch in asyncio.run(run_batches(args)):
        print(json.dumps({**asdict(batch), "cpu_seconds": batch.cpu_seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
