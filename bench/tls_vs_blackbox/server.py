"""The TLS server both clients handshake with: one lab node, in a process of its own.

It runs apart from both clients so that its CPU never lands in either side's figure. It prints
one JSON line (address, port, policy) once listening, then serves until stdin closes or it gets
SIGTERM/SIGINT; the stdin rule means it cannot outlive a benchmark that died without cleanup.

    python -m bench.tls_vs_blackbox.server --min 1.0 --max 1.3
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bench.exporter_api import VERSIONS, Lab
from bench.processes import exit_on_signals

NODE = "node"
TOMCAT = 8443  # the lab's standard Tomcat port; any of its TLS listeners would do


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min", dest="min_version", default="1.0", choices=list(VERSIONS))
    parser.add_argument("--max", dest="max_version", default="1.3", choices=list(VERSIONS))
    args = parser.parse_args(argv)
    exit_on_signals()  # SystemExit: the `with` block still stops the lab, removes its files
    with Lab(topology={"bench": (NODE,)}, restart_downtime=0.0) as lab:
        # A lab node starts as CUCM's default (1.0-1.2); widen or narrow it before announcing.
        state = lab.set_tls_policy(NODE, args.min_version, args.max_version)
        announcement = {
            "address": state.address,
            "port": state.ports[TOMCAT],
            "server_name": state.host,
            "min_version": state.min_version,
            "max_version": state.max_version,
        }
        print(json.dumps(announcement), flush=True)
        sys.stdin.read()  # returns at EOF: the benchmark closed our stdin or went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
