"""What per-phone configuration files cost at scale: the memory of the phoneconfig probe's
state and the time of the per-phone verdict, for 100,000 phones (issue 16).

    .venv/bin/python -m bench.scale.phoneconfig --clusters 100 --nodes 10 --phones 100

In-process, no network: each phone's file is rendered by the lab in CUCM's layout (a few in
ten on the HTTP workaround), parsed by the probe's own parser, and held as the probe holds it
(one PhoneConfigEntry a phone, with an ETag and a Last-Modified like the lab's). Then every
cluster's verdict is computed from those entries (exporter.impact.summarize with the per-phone
inputs) and, for comparison, by the inference alone. tracemalloc measures what the held
entries take (the inventory is built before it starts); the time is the median of `--repeat` rounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Sequence

from bench.exporter_api import (
    DEFAULT_MIX,
    ConfigReason,
    DirectoryMode,
    LabPhone,
    NodePolicy,
    PhoneConfigEntry,
    PhoneInputs,
    PhoneRow,
    TlsVersion,
    generate_phones,
    load_catalogue,
    parse_phone_config,
    render_config,
    shared_basis,
    summarize,
)
from bench.report import machine


def _mix(phones: int) -> list[tuple[str, str, int]]:
    """The lab's default mix scaled to about `phones` a node."""
    total = sum(count for _, _, count in DEFAULT_MIX)
    return [(p, load, max(1, round(count * phones / total))) for p, load, count in DEFAULT_MIX]


Inventories = dict[str, dict[str, list[PhoneRow]]]


def inventories_of(clusters: int, nodes: int, phones: int) -> Inventories:
    inventories: Inventories = {}
    mix = _mix(phones)
    for c in range(clusters):
        cluster = f"c{c:03d}"
        inventories[cluster] = {}
        for n in range(nodes):
            rows = [
                PhoneRow(_name(c * nodes + n, i), "registered", p.product, p.active_load)
                for i, p in enumerate(generate_phones(c * nodes + n + 1, mix))
            ]
            inventories[cluster][f"n{n:02d}"] = rows
    return inventories


def _name(node: int, i: int) -> str:
    return f"SEP{node * 0x10000 + i + 1:012X}"  # unique across the run, unlike the lab's


def held_of(inventories: Inventories) -> tuple[dict[str, dict[str, PhoneConfigEntry]], int]:
    """What the probe holds after a full pass (the cache list in use: no ETag kept)."""
    held: dict[str, dict[str, PhoneConfigEntry]] = {}
    parsed = 0
    for cluster, nodes in inventories.items():
        hosts = [f"{n}.{cluster}.example" for n in nodes]
        entries: dict[str, PhoneConfigEntry] = {}
        for host, rows in zip(hosts, nodes.values(), strict=True):
            order = [host, *(h for h in hosts if h != host)][:3]
            for i, row in enumerate(rows):
                if row.product.startswith("Cisco Unified Client"):
                    continue
                mode = DirectoryMode.HTTP_SERVICE if i % 10 == 0 else DirectoryMode.SECURE
                phone = LabPhone(row.name, row.product, row.active_load)
                body = render_config(phone, mode, order, order)
                # The probe's keys are fresh strings from the inventory's compact table.
                name = "".join(["SEP", row.name[3:]])
                entries[name] = PhoneConfigEntry(
                    ConfigReason.OK,
                    parse_phone_config(body),
                    basis=shared_basis((host.split(".")[0], "registered", row.active_load)),
                    checked_at=time.time(),
                    listed=zlib.crc32(body) or 1,
                )
                parsed += 1
        held[cluster] = entries
    return held, parsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--phones", type=int, default=100, help="phones per node (about)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    inventories = inventories_of(args.clusters, args.nodes, args.phones)
    rows = sum(len(r) for nodes in inventories.values() for r in nodes.values())
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    held, parsed = held_of(inventories)
    build_seconds = time.perf_counter() - started
    gc.collect()
    held_bytes, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    catalogue = load_catalogue()
    policy = NodePolicy(TlsVersion.TLS1_2, TlsVersion.TLS1_2, True)

    def round_(per_phone: bool) -> float:
        began = time.perf_counter()
        for cluster, nodes in inventories.items():
            names = [f"{n}.{cluster}.example" for n in nodes]
            aliases = {host: host.split(".")[0] for host in names}
            inputs = (
                PhoneInputs(held[cluster], aliases, dict.fromkeys(aliases.values(), policy))
                if per_phone
                else None
            )
            required = dict.fromkeys(nodes, TlsVersion.TLS1_2)
            summarize(nodes, required, catalogue, inputs=inputs)
        return time.perf_counter() - began

    with_files = statistics.median(round_(True) for _ in range(args.repeat))
    inference = statistics.median(round_(False) for _ in range(args.repeat))
    print(
        json.dumps(
            {
                "environment": machine(),
                "phones": rows,
                "files_parsed": parsed,
                "build_and_parse_seconds": round(build_seconds, 2),
                "held_phoneconfig_bytes": held_bytes,
                "peak_while_parsing_bytes": peak_bytes,
                "held_bytes_per_phone": round(held_bytes / max(parsed, 1), 1),
                "verdict_round_seconds_per_phone_files": round(with_files, 3),
                "verdict_round_seconds_inference": round(inference, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
