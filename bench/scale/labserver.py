"""The lab at scale, in a process of its own: many clusters of nodes, each with ~N phones.

It runs apart from the exporter so that the daemon's CPU and memory figures hold the daemon
alone. Once every node listens it writes the lab's exporter config (YAML) to `--config-out`,
starts the control API (`exporter.lab.control`: `POST /nodes/{node}/tls?cluster=C` changes a
node's policy, as `lab set-tls` does) and prints one JSON line: control URL, config file, node
and phone counts, start-up time. It serves until stdin closes or it gets SIGTERM/SIGINT, so it
cannot outlive a benchmark that died without cleanup.

    python -m bench.scale.labserver --clusters 100 --nodes 10 --phones 100 \
        --config-out /tmp/lab.yml
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.labserver import serve, topology
from bench.processes import exit_on_signals
from exporter.lab import Lab
from exporter.lab.snmp import DEFAULT_MIX

PhoneMix = tuple[tuple[str, str, int], ...]


def scaled_mix(phones: int, mix: PhoneMix = DEFAULT_MIX) -> PhoneMix:
    """DEFAULT_MIX with every count scaled towards `phones` per node.

    Every model keeps at least one phone, so a small lab has exactly the label sets of a big
    one: comparing the two isolates the number of phones from the number of series.
    """
    total = sum(count for _, _, count in mix)
    return tuple((model, load, max(1, round(count * phones / total))) for model, load, count in mix)


def phones_per_node(mix: PhoneMix) -> int:
    return sum(count for _, _, count in mix)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--phones", type=int, default=100, help="phones per node (about)")
    parser.add_argument("--restart-downtime", type=float, default=0.5)
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)
    exit_on_signals()
    mix = scaled_mix(args.phones)
    started = time.perf_counter()
    # The CA and node keys live next to the config, not in /tmp: other sessions on this
    # machine clean /tmp/cucm-lab-* while a benchmark may still need the CA file.
    with (
        tempfile.TemporaryDirectory(prefix="scale-lab-", dir=args.config_out.parent) as keys,
        Lab(
            topology(args.clusters, args.nodes, digits=3),  # c000-n00: up to 1,000 clusters
            directory=Path(keys),
            phone_mix=mix,
            restart_downtime=args.restart_downtime,
        ) as lab,
    ):
        lab.write_exporter_config(args.config_out)
        announcement = {
            "config": str(args.config_out),
            "nodes": args.clusters * args.nodes,
            "phones_per_node": phones_per_node(mix),
            "start_seconds": round(time.perf_counter() - started, 2),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        asyncio.run(serve(lab, announcement))
    return 0


if __name__ == "__main__":
    sys.exit(main())
