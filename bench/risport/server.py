"""The lab both inventories read: one cluster, one node, 20,000 phones, in a process of its own.

One `exporter.lab.Lab` node holds the phone table; its SNMP agent serves it as ccmPhoneTable
and its Tomcat (8443) as RisPort70's selectCmDeviceExt, so the two sources list the same
phones. The lab's RisPort70 rate limit (15 a minute) is lifted: the benchmark measures the
clients, and the probe's own budget is accelerated on its side (see `ours.py`). It writes the
lab's exporter config (both inventory sources) to `--config-out`, prints one JSON line once
listening, then serves until stdin closes or it gets SIGTERM/SIGINT. Each `counters` line on
stdin is answered with a JSON line of what the servers answered so far (requests, bytes).

    python -m bench.risport.server --phones 20000 --config-out /tmp/risport-bench.yml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.exporter_api import LAB_COMMUNITY, Lab, risport_exporter_config
from bench.processes import exit_on_signals
from bench.snmp_walk.server import repeated_mix

CLUSTER = "bench"
NODE = "cucm-bench"
UNLIMITED = 10**9  # requests a minute: the lab's RisPort70 never sends the rate-limit fault


def counters(lab: Lab) -> dict[str, int]:
    """What each server has answered so far. Plain ints written on the lab's loop: a read
    from this thread sees a consistent value of each."""
    service = lab.risport[CLUSTER]
    agent = service.agents[NODE]  # the node's SNMP agent, whose table RisPort70 serves
    return {
        "risport_requests": service.requests,
        "risport_bytes_in": service.bytes_in,
        "risport_bytes_out": service.bytes_out,
        "snmp_requests": agent.requests,
        "snmp_bytes_in": agent.bytes_in,
        "snmp_bytes_out": agent.bytes_out,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=20_000)
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)
    exit_on_signals()
    mix = repeated_mix(args.phones)
    # The CA lives next to the config, not in /tmp (other sessions clean /tmp/cucm-lab-*).
    with (
        tempfile.TemporaryDirectory(prefix="bench-lab-", dir=args.config_out.parent) as keys,
        Lab({CLUSTER: (NODE,)}, directory=Path(keys), phone_mix=mix) as lab,
    ):
        lab.risport[CLUSTER].limit_per_minute = UNLIMITED
        config = risport_exporter_config(lab.exporter_config(), lab.ca_file, "both")
        args.config_out.write_text(yaml.safe_dump(config, sort_keys=False))
        state = lab.node(NODE)
        phones = lab.phones(NODE)
        announcement = {
            "address": state.address,
            "snmp_port": state.ports[161],
            "risport_port": state.ports[8443],
            "community": LAB_COMMUNITY,
            "config": str(args.config_out),
            "phones": len(phones),
            "products": len({phone.product for phone in phones}),
            "pid": os.getpid(),
        }
        print(json.dumps(announcement), flush=True)
        for line in sys.stdin:  # until EOF: the benchmark closed our stdin, or went away
            if line.strip() == "counters":
                print(json.dumps(counters(lab)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
