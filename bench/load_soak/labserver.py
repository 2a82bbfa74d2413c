"""The lab in a process of its own: clusters x nodes, steered through the control API.

It runs apart from the exporter so that the daemon's CPU and memory figures hold the daemon
alone. Once every node listens it writes the lab's exporter config (YAML) to `--config-out`
(probe intervals and timeouts from the flags), starts the control API
(`exporter.lab.control.control_app`) and prints one JSON line: control URL, config file, the
node names per cluster, its start-up time. It serves until stdin closes or it gets
SIGTERM/SIGINT, so it cannot outlive a benchmark that died without cleaning up.

    python -m bench.load_soak.labserver --clusters 10 --nodes 10 --config-out /tmp/lab.yml
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.labserver import serve, topology
from bench.processes import exit_on_signals
from exporter.lab import Lab


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--interval", type=float, default=10.0, help="probe interval, seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout, seconds")
    parser.add_argument("--restart-downtime", type=float, default=0.5)
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)
    exit_on_signals()
    started = time.perf_counter()
    layout = topology(args.clusters, args.nodes, digits=2)  # c00-n00
    with Lab(layout, restart_downtime=args.restart_downtime) as lab:
        lab.write_exporter_config(args.config_out, interval=args.interval, timeout=args.timeout)
        announcement = {
            "config": str(args.config_out),
            "topology": {cluster: list(names) for cluster, names in layout.items()},
            "phones": {
                state.name: [p.name for p in lab.phones(state.name)] for state in lab.nodes()
            },
            "start_seconds": round(time.perf_counter() - started, 2),
        }
        asyncio.run(serve(lab, announcement))
    return 0


if __name__ == "__main__":
    sys.exit(main())
