"""Part 1, blackbox_exporter's side: the same 8,000 handshakes against the same lab.

What one TLS round of ours does per node and port (four pinned handshakes; with no CA bundle
configured the highest accepted one also answers for the certificate and cipher), blackbox does
as four `/probe` requests: one tcp+TLS module pinned to each of TLS 1.0-1.3 (as in
bench/tls_vs_blackbox). The lab's nodes accept 1.0-1.2 (CUCM's default), so the TLS 1.3 probe
is a rejection on both sides. Every answer is checked against the node's
policy read from the lab's control API, or the batch stops.

Concurrency means handshakes in flight, as on our side: `max_concurrent_probes` node runs with
up to 4 handshakes each (`probes.tls.concurrency`), so blackbox gets 4x as many HTTP clients,
each on a kept-alive connection (aiohttp in this process; its CPU is not counted).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import blackbox
from bench.blackbox import Blackbox
from bench.labserver import LabInfo
from bench.processes import cpu_seconds
from bench.report import loadavg
from bench.scale import configs

VERSIONS = ("1.0", "1.1", "1.2", "1.3")
TLS_PORTS = (8443, 2445)
WARMUP = 200


@dataclass(frozen=True)
class Probe:
    target: str  # 127.0.0.1:<the lab port>
    module: str
    accepted: bool  # what the node's policy says the handshake must do


@dataclass(frozen=True)
class BlackboxResult:
    concurrency: int  # HTTP requests (so handshakes) in flight
    handshakes: int
    wall_seconds: float
    cpu_seconds: float
    handshakes_per_cpu_second: float
    lab_cpu_seconds: float
    loadavg_before: str
    loadavg_after: str


def probes(lab: LabInfo) -> list[Probe]:
    """Four probes per node and TLS port, in node order, as a round of ours would do them."""
    config = lab.base_config()
    policies = _policies(lab.control)
    planned = []
    for cluster in config["clusters"]:
        for node in cluster["nodes"]:
            low, high = policies[(cluster["name"], node["name"])]
            for port in TLS_PORTS:
                target = f"127.0.0.1:{node['port_map'][port]}"
                for version in VERSIONS:
                    accepted = low <= float(version) <= high
                    planned.append(Probe(target, blackbox.module_name(version), accepted))
    return planned


def _policies(control: str) -> dict[tuple[str, str], tuple[float, float]]:
    with urllib.request.urlopen(f"{control}/nodes", timeout=30) as response:
        nodes = json.load(response)
    return {
        (n["cluster"], n["name"]): (float(n["min_version"]), float(n["max_version"])) for n in nodes
    }


class ProbeFailed(RuntimeError):
    """blackbox answered, but not as the node's policy says it must."""


async def _probe_all(
    session: aiohttp.ClientSession, base: str, planned: Sequence[Probe], concurrency: int
) -> None:
    """`concurrency` workers pull from one list, so exactly that many probes are in flight."""
    work: Iterator[Probe] = iter(planned)

    async def worker() -> None:
        for probe in work:
            url = f"{base}/probe?target={probe.target}&module={probe.module}"
            async with session.get(url) as response:
                body = await response.text()
            if ("\nprobe_success 1\n" in body) != probe.accepted:
                raise ProbeFailed(f"{probe}: unexpected answer\n{body[-400:]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _measure(
    box: Blackbox, planned: Sequence[Probe], concurrency: int, lab_pid: int
) -> BlackboxResult:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _probe_all(session, box.url, planned[:WARMUP], concurrency)
        load_before = loadavg()
        cpu, lab_cpu = cpu_seconds(box.pid), cpu_seconds(lab_pid)
        started = time.perf_counter()
        await _probe_all(session, box.url, planned, concurrency)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(box.pid) - cpu
        lab_cpu = cpu_seconds(lab_pid) - lab_cpu
    return BlackboxResult(
        concurrency=concurrency,
        handshakes=len(planned),
        wall_seconds=wall,
        cpu_seconds=cpu,
        handshakes_per_cpu_second=len(planned) / cpu,
        lab_cpu_seconds=lab_cpu,
        loadavg_before=load_before,
        loadavg_after=loadavg(),
    )


def measure(lab: LabInfo, concurrency: int, directory: Path) -> BlackboxResult:
    """All probes of one round (8,000 handshakes at 1,000 nodes) once, after a warm-up."""
    planned = probes(lab)
    expected = configs.node_count(lab.base_config()) * len(TLS_PORTS) * configs.HANDSHAKES_PER_PORT
    assert len(planned) == expected, "the plan must match a round of ours"
    # Config and log: scale-blackbox.yml and .log in `directory`, kept for a look afterwards.
    with Blackbox(VERSIONS, directory, "scale-blackbox") as box:
        return asyncio.run(_measure(box, planned, concurrency, lab.pid))
