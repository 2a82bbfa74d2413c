"""What the lab servers (bench/scale/labserver.py, bench/load_soak/labserver.py) share.

Each runs an `exporter.lab.Lab` in a process of its own, apart from the exporter, so that the
daemon's CPU and memory figures hold the daemon alone. Once every node listens it writes the
lab's exporter config, starts the control API and prints one JSON line (`serve`); it serves
until stdin closes or it gets SIGTERM/SIGINT, so it cannot outlive a benchmark that died
without cleaning up. `bench.processes.lab_process` is the other end.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping

from exporter.lab import Lab
from exporter.lab.cli import start_control
from exporter.lab.tls import unused_port


def topology(clusters: int, nodes: int, digits: int) -> dict[str, tuple[str, ...]]:
    """`c00: (c00-n00, ...)`, clusters numbered with `digits` digits: node names unique across
    the lab, so a node's cluster (`?cluster=`, `--cluster`) is optional."""
    return {
        f"c{c:0{digits}d}": tuple(f"c{c:0{digits}d}-n{n:02d}" for n in range(nodes))
        for c in range(clusters)
    }


async def serve(lab: Lab, announcement: Mapping[str, object]) -> None:
    """Control API up, announce (with its URL as `control`), then wait for stdin to close."""
    port = unused_port()
    runner = await start_control(lab, "127.0.0.1", port)
    try:
        print(json.dumps({**announcement, "control": f"http://127.0.0.1:{port}"}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # returns at EOF
    finally:
        await runner.cleanup()
