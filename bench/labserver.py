"""The lab in a process of its own, for the scale and load/soak benchmarks; and its client end.

Run as `python -m bench.labserver`, it starts clusters x nodes of `exporter.lab.Lab` (each node
with about `--phones` phones), apart from the exporter, so that the daemon's CPU and memory
figures hold the daemon alone. Once every node listens it writes the lab's exporter config to
`--config-out`, starts the control API (`exporter.lab.control`) and prints one JSON line (its
announcement); it serves until stdin closes or it gets SIGTERM/SIGINT, so it cannot outlive a
benchmark that died without cleaning up. `lab_process` is the benchmark's end of it.

    python -m bench.labserver --clusters 100 --nodes 10 --phones 100 --config-out /tmp/lab.yml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.exporter_api import DEFAULT_MIX, Lab, start_control, unused_port
from bench.processes import Announcing, exit_on_signals

PhoneMix = tuple[tuple[str, str, int], ...]
START_TIMEOUT = 180.0  # 1,000 nodes start in ~7 s; leave room for a busy machine


# --- the benchmark's end -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabInfo:
    """What the lab announced, and its pid."""

    pid: int
    config: Path  # the exporter config the lab wrote: every node, all three probes
    control: str  # the control API's base URL
    topology: dict[str, list[str]]  # cluster -> node names (unique across the lab)
    phones_per_node: int
    start_seconds: float
    max_rss_mb: float
    phones: dict[str, list[str]] = field(default_factory=dict)  # node -> names (--list-phones)

    @property
    def nodes(self) -> list[tuple[str, str]]:
        """(cluster, node) in a fixed order: cluster by cluster."""
        return [(cluster, node) for cluster, names in self.topology.items() for node in names]

    def base_config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.config.read_text())
        return loaded


@contextlib.contextmanager
def lab_process(
    clusters: int,
    nodes: int,
    config_out: Path,
    *,
    phones: int | None = None,
    interval: float = 10.0,
    timeout: float = 8.0,
    list_phones: bool = False,
) -> Iterator[LabInfo]:
    """`python -m bench.labserver` in its own process; closing its stdin stops it."""
    command = [sys.executable, "-m", "bench.labserver", f"--clusters={clusters}"]
    command += [f"--nodes={nodes}", f"--interval={interval:g}", f"--timeout={timeout:g}"]
    command += [f"--config-out={config_out}"]
    command += [f"--phones={phones}"] if phones is not None else []
    command += ["--list-phones"] if list_phones else []
    with Announcing(command, START_TIMEOUT, name="the lab") as lab:
        announced = {**lab.announcement, "config": Path(lab.announcement["config"])}
        yield LabInfo(pid=lab.pid, **announced)


# --- the server --------------------------------------------------------------------------------


def topology(clusters: int, nodes: int) -> dict[str, tuple[str, ...]]:
    """`c000: (c000-n00, ...)`: node names unique across the lab, so a node's cluster
    (`?cluster=`, `--cluster`) is optional."""
    return {f"c{c:03d}": tuple(f"c{c:03d}-n{n:02d}" for n in range(nodes)) for c in range(clusters)}


def scaled_mix(phones: int | None, mix: PhoneMix = DEFAULT_MIX) -> PhoneMix:
    """DEFAULT_MIX with every count scaled towards `phones` per node (None: as it is).

    Every model keeps at least one phone, so a small lab has exactly the label sets of a big
    one: comparing the two isolates the number of phones from the number of series.
    """
    if phones is None:
        return mix
    total = sum(count for _, _, count in mix)
    return tuple((model, load, max(1, round(count * phones / total))) for model, load, count in mix)


async def serve(lab: Lab, announcement: Mapping[str, object]) -> None:
    """Control API up, announce (with its URL as `control`), then wait for stdin to close."""
    port = unused_port()
    runner = await start_control(lab, "127.0.0.1", port)
    try:
        print(json.dumps({**announcement, "control": f"http://127.0.0.1:{port}"}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # returns at EOF
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--phones", type=int, help="phones per node, about (default: the lab's)")
    parser.add_argument("--interval", type=float, default=10.0, help="probe interval, seconds")
    parser.add_argument("--timeout", type=float, default=8.0, help="probe timeout, seconds")
    parser.add_argument("--restart-downtime", type=float, default=0.5)
    parser.add_argument("--list-phones", action="store_true", help="announce every phone name")
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)
    exit_on_signals()
    mix = scaled_mix(args.phones)
    layout = topology(args.clusters, args.nodes)
    started = time.perf_counter()
    # The CA and node keys live next to the config, not in /tmp: other sessions on this
    # machine clean /tmp/cucm-lab-* while a benchmark may still need the CA file.
    with (
        tempfile.TemporaryDirectory(prefix="bench-lab-", dir=args.config_out.parent) as keys,
        Lab(
            layout, directory=Path(keys), phone_mix=mix, restart_downtime=args.restart_downtime
        ) as lab,
    ):
        lab.write_exporter_config(args.config_out, interval=args.interval, timeout=args.timeout)
        announcement = {
            "config": str(args.config_out),
            "topology": {cluster: list(names) for cluster, names in layout.items()},
            "phones_per_node": sum(count for _, _, count in mix),
            "start_seconds": round(time.perf_counter() - started, 2),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "phones": {
                state.name: [phone.name for phone in lab.phones(state.name)]
                for state in lab.nodes()
            }
            if args.list_phones
            else {},
        }
        asyncio.run(serve(lab, announcement))
    return 0


if __name__ == "__main__":
    sys.exit(main())
