"""What per-phone configuration files cost at scale: the phoneconfig probe's memory, the
per-phone verdict round, and how long it stalls the event loop (issue 16).

    MALLOC_ARENA_MAX=2 .venv/bin/python -m bench.scale.phoneconfig --clusters 100 --nodes 10 \
        --phones 100                       # 100,000 phones; --clusters 20: 20,000
    .venv/bin/python -m bench.scale.phoneconfig_fetch   # the HTTP passes (first, refresh)

In-process, no network. Each phone's file is rendered by the lab in CUCM's layout (one in ten
on the HTTP directory service) and parsed by the probe's own parser, once per distinct
(node, model, firmware, directory mode) file: the name is all that differs between the files
of one such group, and the probe keeps nothing of it (cnfxml.py shares equal configs anyway).
Each phone gets its own PhoneConfigEntry, as the probe holds it; tracemalloc and RSS measure
what those take. The inventory is the SNMP probe's packed PhoneTable per node, the TLS policy
a sweep per node (TVS and Tomcat require 1.2).

Then, per cluster, `cluster_phones` over those runs (what /metrics computes) with the files
and by the inference alone; and the event loop's longest stall (bench/looplag.py) during a
scrape after every cluster changed (a reload, or a TLS round that moved every node): on the
loop, as the summaries were computed before, and through PhoneSummaries, which computes what
exceeds a scrape's budget on a worker thread while the scrape awaits it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.exporter_api import (
    BUILTIN_PROBES,
    DEFAULT_MIX,
    ConfigReason,
    DirectoryMode,
    Handshake,
    HandshakeOutcome,
    LabPhone,
    PhoneConfigEntry,
    PhoneConfigProbeResult,
    PhoneRow,
    PhoneSummaries,
    PhoneTable,
    PortResult,
    ProbeRun,
    SnmpOutcome,
    SnmpProbeResult,
    TftpOutcome,
    TlsProbeResult,
    TlsVersion,
    cluster_phones,
    generate_phones,
    load_catalogue,
    parse_phone_config,
    render_config,
    shared_basis,
)
from bench.looplag import LoopLag
from bench.report import environment

SPECS = {spec.name: spec for spec in BUILTIN_PROBES}
Key = tuple[str, str, str]
Runs = dict[str, dict[Key, ProbeRun]]  # cluster -> its runs


def _mix(phones: int) -> list[tuple[str, str, int]]:
    """The lab's default mix scaled to about `phones` a node."""
    total = sum(count for _, _, count in DEFAULT_MIX)
    return [(p, load, max(1, round(count * phones / total))) for p, load, count in DEFAULT_MIX]


def _name(node: int, i: int) -> str:
    return f"SEP{node * 0x10000 + i + 1:012X}"  # unique across the run, unlike the lab's


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _run(cluster: str, node: str, probe: str, result: Any) -> ProbeRun:
    return ProbeRun(cluster, node, probe, time.time(), 0.01, True, "ok", result)


def _tls(minimum: TlsVersion) -> TlsProbeResult:
    def port(number: int, service: str) -> PortResult:
        pinned = tuple(
            Handshake(
                v,
                HandshakeOutcome.ACCEPTED
                if v.number >= minimum.number
                else HandshakeOutcome.REJECTED_PROTOCOL_VERSION,
                0.01,
            )
            for v in TlsVersion
        )
        return PortResult(number, service, pinned, Handshake(None, HandshakeOutcome.ACCEPTED, 0.01))

    return TlsProbeResult((port(2445, "tvs"), port(8443, "tomcat")))


def inventories(clusters: int, nodes: int, phones: int) -> dict[str, dict[str, list[PhoneRow]]]:
    mix = _mix(phones)
    return {
        f"c{c:03d}": {
            f"n{n:02d}": [
                PhoneRow(_name(c * nodes + n, i), "registered", p.product, p.active_load)
                for i, p in enumerate(generate_phones(c * nodes + n + 1, mix))
            ]
            for n in range(nodes)
        }
        for c in range(clusters)
    }


def held_of(
    rows_by_cluster: Mapping[str, Mapping[str, list[PhoneRow]]],
) -> tuple[dict[str, dict[str, PhoneConfigEntry]], int, int]:
    """What the probe holds after a full pass (the cache list in use: no ETag kept);
    (held, files, distinct files parsed)."""
    held: dict[str, dict[str, PhoneConfigEntry]] = {}
    parsed: dict[tuple[str, str, str, DirectoryMode], Any] = {}
    files = 0
    for cluster, nodes in rows_by_cluster.items():
        hosts = [f"{n}.{cluster}.example" for n in nodes]
        entries: dict[str, PhoneConfigEntry] = {}
        for host, rows in zip(hosts, nodes.values(), strict=True):
            order = [host, *(h for h in hosts if h != host)][:3]
            for i, row in enumerate(rows):
                if row.product.startswith("Cisco Unified Client"):
                    continue
                mode = DirectoryMode.HTTP_SERVICE if i % 10 == 0 else DirectoryMode.SECURE
                key = (host, row.product, row.active_load, mode)
                if key not in parsed:
                    phone = LabPhone(row.name, row.product, row.active_load)
                    parsed[key] = parse_phone_config(render_config(phone, mode, order, order))
                # The probe's keys are fresh strings from the inventory's compact table.
                name = "".join(["SEP", row.name[3:]])
                entries[name] = PhoneConfigEntry(
                    ConfigReason.OK,
                    parsed[key],
                    basis=shared_basis((host.split(".")[0], "registered", row.active_load)),
                    checked_at=time.time(),
                    listed=zlib.crc32(name.encode()) or 1,
                )
                files += 1
        held[cluster] = entries
    return held, files, len(parsed)


def runs_of(
    rows_by_cluster: Mapping[str, Mapping[str, list[PhoneRow]]],
    held: Mapping[str, Mapping[str, PhoneConfigEntry]],
    with_files: bool,
) -> Runs:
    runs: Runs = {}
    policy = _tls(TlsVersion.TLS1_2)
    for cluster, nodes in rows_by_cluster.items():
        mine: dict[Key, ProbeRun] = {}
        aliases = {f"{n}.{cluster}.example": n for n in nodes} | {n: n for n in nodes}
        for node, rows in nodes.items():
            table = PhoneTable.of(rows)
            mine[(cluster, node, "snmp")] = _run(
                cluster, node, "snmp", SnmpProbeResult(SnmpOutcome.OK, phones=table)
            )
            mine[(cluster, node, "tls")] = _run(cluster, node, "tls", policy)
        if with_files:
            first = next(iter(nodes))  # one TFTP node answers for all: the same entries
            result = PhoneConfigProbeResult(TftpOutcome.OK, held[cluster], aliases=aliases)
            mine[(cluster, first, "phoneconfig")] = _run(cluster, first, "phoneconfig", result)
        runs[cluster] = mine
    return runs


def verdict_round(runs: Runs, catalogue: Any, nodes: Sequence[str]) -> float:
    began = time.perf_counter()
    for mine in runs.values():
        cluster_phones(mine, SPECS, catalogue, nodes)
    return time.perf_counter() - began


def _changed(runs: Runs) -> Runs:
    """Every cluster's TLS runs anew (same findings): every summary must be recomputed."""
    return {
        cluster: {
            key: dataclasses.replace(run, started=run.started + 60) if key[2] == "tls" else run
            for key, run in mine.items()
        }
        for cluster, mine in runs.items()
    }


async def stalls(runs: Runs, catalogue: Any, nodes: Sequence[str]) -> dict[str, float]:
    """The loop's longest stall during a scrape after every cluster changed: before (every
    summary on the loop) and now (PhoneSummaries, awaited as /metrics awaits it)."""
    async with LoopLag() as before:
        began = time.perf_counter()
        for mine in runs.values():
            cluster_phones(mine, SPECS, catalogue, nodes)
        on_loop = time.perf_counter() - began
    summaries = PhoneSummaries(SPECS, catalogue)
    for cluster, mine in runs.items():  # what the previous scrapes showed
        summaries.begin()
        summaries.of(cluster, mine, nodes)
    changed = _changed(runs)
    async with LoopLag() as after:
        began = time.perf_counter()
        summaries.begin()
        for cluster, mine in changed.items():
            summaries.of(cluster, mine, nodes)
        await summaries.settle()
        shown = {cluster: summaries.of(cluster, mine, nodes) for cluster, mine in changed.items()}
        offloaded = time.perf_counter() - began
    for cluster, mine in changed.items():  # what the scrape shows is the fresh computation
        assert shown[cluster] == cluster_phones(mine, SPECS, catalogue, nodes)
    return {
        "before_longest_stall_seconds": round(before.worst, 3),
        "before_scrape_seconds": round(on_loop, 3),
        "after_longest_stall_seconds": round(after.worst, 3),
        "after_scrape_seconds": round(offloaded, 3),
        "after_loop_samples": after.samples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--phones", type=int, default=100, help="phones per node (about)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"environment": environment()}

    rows = inventories(args.clusters, args.nodes, args.phones)
    report["phones"] = sum(len(r) for nodes in rows.values() for r in nodes.values())
    gc.collect()
    rss_before = _rss()
    tracemalloc.start()
    held, files, distinct = held_of(rows)
    gc.collect()
    held_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    rss_held = _rss() - rss_before
    report |= {
        "files": files,
        "distinct_files_parsed": distinct,
        "held_phoneconfig_bytes": held_bytes,
        "held_bytes_per_phone": round(held_bytes / max(files, 1), 1),
        "rss_growth_bytes_per_phone": round(rss_held / max(files, 1), 1),
    }
    catalogue = load_catalogue()
    nodes = [f"n{n:02d}" for n in range(args.nodes)]
    runs = runs_of(rows, held, with_files=True)
    inference = runs_of(rows, held, with_files=False)
    # From here on the inventory is the runs' packed PhoneTables, as in the daemon: a PhoneRow
    # object a phone would be 100,000 more objects for the garbage collector to walk.
    del rows
    gc.collect()
    report["rss_with_runs_mb"] = round(_rss() / 2**20, 1)
    report["verdict_round_seconds_per_phone_files"] = round(
        statistics.median(verdict_round(runs, catalogue, nodes) for _ in range(args.repeat)), 3
    )
    report["verdict_round_seconds_inference"] = round(
        statistics.median(verdict_round(inference, catalogue, nodes) for _ in range(args.repeat)),
        3,
    )
    report |= asyncio.run(stalls(runs, catalogue, nodes))
    report["rss_end_mb"] = round(_rss() / 2**20, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
