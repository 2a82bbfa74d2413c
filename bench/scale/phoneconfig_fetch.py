"""What the phoneconfig probe fetches over HTTP: a first pass, then refresh passes (issue 16).

    .venv/bin/python -m bench.scale.phoneconfig_fetch --phones 5000   # a node, 2 TFTP nodes

The lab (in this process: its SNMP agents and its TFTP service on 6970 serve one phone table)
gets `--phones` more registered phones a node; the SNMP probe walks them, then the
phoneconfig probe runs on both TFTP nodes, through the exporter's own runner. Passes:

1. first: every file fetched (`max_fetches` raised to the phone count);
2. again, nothing changed: the cache list alone (ConfigFileCacheList.txt, one a node);
3. the full pass due (`refresh` 1 ms), cache list on: it vouches every file unchanged;
4. the same two passes with `use_cache_list: false`: the full pass asks every file with
   If-None-Match (the lab sends an ETag), answered 304 with no body.

The lab counts what it served (requests, 304s, bytes): the server's side of the same passes.
Figures are per phone as well: a 100,000-phone cluster multiplies them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.exporter_api import (
    Lab,
    PhoneConfigProbeResult,
    ProbeRunner,
    ResultStore,
    parse_config,
)
from bench.report import environment


def config(lab: Lab, phones: int, **phoneconfig: Any) -> Any:
    data = lab.exporter_config(interval=600.0, timeout=300.0)
    data["probes"]["snmp"]["request_timeout"] = "5s"
    data["probes"]["phoneconfig"] = {
        "enabled": True,
        "interval": "600s",
        "timeout": "300s",
        "jitter": "0s",
        "request_timeout": "5s",
        "max_fetches": min(100_000, phones),
        **phoneconfig,
    }
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


async def passes(lab: Lab, phones: int, use_list: bool) -> list[dict[str, Any]]:
    store = ResultStore()
    runner = ProbeRunner(latest=store.snapshot)
    files = lab.config_files()
    out: list[dict[str, Any]] = []
    try:
        first = config(lab, phones, use_cache_list=use_list)
        cluster = first.clusters[0]
        for node in cluster.nodes:
            store.put(await runner.run(first, cluster, node, "snmp"))
        names = ("first", "unchanged", "full pass due")
        refresh = (None, None, "1ms")
        for name, every in zip(names, refresh, strict=True):
            settings = (
                first
                if every is None
                else config(lab, phones, use_cache_list=use_list, refresh=every)
            )
            served = (files.requests, files.not_modified, files.bytes_sent, files.list_requests)
            began = time.perf_counter()
            totals = dict.fromkeys(
                ("files", "fetched", "not_modified", "unchanged_in_list", "requests", "bytes"), 0
            )
            for node in cluster.nodes:
                run = await runner.run(settings, cluster, node, "phoneconfig")
                store.put(run)
                result = run.result
                assert isinstance(result, PhoneConfigProbeResult), run.reason
                totals["files"] += len(result.phones)
                totals["fetched"] += result.fetched
                totals["not_modified"] += result.not_modified
                totals["unchanged_in_list"] += result.unchanged_in_list
                totals["requests"] += result.requests
                totals["bytes"] += result.bytes
            out.append(
                {
                    "pass": name,
                    "cache_list": use_list,
                    "seconds": round(time.perf_counter() - began, 2),
                    **totals,
                    "bytes_per_phone": round(totals["bytes"] / max(totals["files"], 1), 1),
                    "lab_served": {
                        "file_requests": files.requests - served[0],
                        "answered_304": files.not_modified - served[1],
                        "bytes": files.bytes_sent - served[2],
                        "cache_lists": files.list_requests - served[3],
                    },
                }
            )
            if name == "first":
                await asyncio.sleep(1.1)  # Last-Modified has whole seconds
    finally:
        await runner.aclose()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=5000, help="phones added to each node")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"environment": environment()}
    with Lab(restart_downtime=0.0) as lab:
        for node in ("cucm-pub", "cucm-sub1"):
            lab.add_phones(node, "Cisco 7962", "SCCP42.9-4-2SR3-1S", args.phones // 2)
            lab.add_phones(node, "Cisco 8865", "sip88xx.14-2-1-0101-15", args.phones // 2)
        report["passes"] = [
            *asyncio.run(passes(lab, args.phones * 2, use_list=True)),
            *asyncio.run(passes(lab, args.phones * 2, use_list=False)),
        ]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
