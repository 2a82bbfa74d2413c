"""`cucm-directory-exporter lab ...` (or `python -m exporter.lab ...`): run and steer the lab."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.lab.cluster import Lab
from exporter.lab.control import control_app
from exporter.lab.directory import DirectoryFault
from exporter.lab.risport import RisportFault
from exporter.lab.snmp import AgentFault
from exporter.lab.tftp import ConfigFault, DirectoryMode
from exporter.lab.tls import VERSIONS, PortFault

DEFAULT_CONTROL = "127.0.0.1:10028"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cucm-directory-exporter lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a simulated CUCM cluster on loopback")
    serve.add_argument(
        "--control-address", default=DEFAULT_CONTROL, help="host:port of the control API"
    )
    serve.add_argument("--config-out", type=Path, help="write an exporter config for the lab here")

    tls = commands.add_parser(
        "set-tls", help="like `set tls min-version`: restart a node with a new policy"
    )
    tls.add_argument("node")
    tls.add_argument("min_version", choices=list(VERSIONS))
    tls.add_argument("max_version", nargs="?", choices=list(VERSIONS))
    tls.add_argument("--regenerate-certificate", action="store_true")

    fault = commands.add_parser("fault", help="make a node's port misbehave (or stop: fault none)")
    fault.add_argument("node")
    fault.add_argument("port", type=int, help="the node's standard CUCM port, e.g. 2445")
    fault.add_argument("fault", choices=[f.value for f in PortFault])

    directory = commands.add_parser("directory-fault", help="make a node's directory misbehave")
    directory.add_argument("node")
    directory.add_argument("fault", choices=[f.value for f in DirectoryFault])

    snmp = commands.add_parser("snmp-fault", help="make a node's SNMP agent misbehave")
    snmp.add_argument("node")
    snmp.add_argument("fault", choices=[f.value for f in AgentFault])

    risport = commands.add_parser(
        "risport-fault",
        help="make the RisPort70 of a node's cluster misbehave (stall, garbage, rate_limited, "
        "node_not_responding: its other nodes; none heals)",
    )
    risport.add_argument("node")
    risport.add_argument("fault", choices=[f.value for f in RisportFault])

    phone = commands.add_parser("phone", help="move a phone to another node, or set its status")
    phone.add_argument("phone", help="device name, e.g. SEP001B2C010001")
    what = phone.add_mutually_exclusive_group(required=True)
    what.add_argument("--move-to", metavar="NODE")
    what.add_argument(
        "--status", choices=["registered", "unregistered", "rejected", "partiallyregistered"]
    )

    config = commands.add_parser(
        "phone-config", help="change a phone's TFTP configuration file (or every phone's: all)"
    )
    config.add_argument("phone", nargs="+", help="device names (one request each), or all")
    config.add_argument("--directory", choices=[m.value for m in DirectoryMode])
    config.add_argument("--fault", choices=[f.value for f in ConfigFault])
    config.add_argument("--tvs", help="TVS nodes in priority order, comma-separated")
    config.add_argument("--cm-group", help="CallManager group nodes, comma-separated")

    commands.add_parser("status", help="show every lab node")
    for command in (
        tls,
        fault,
        directory,
        snmp,
        risport,
        phone,
        config,
        commands.choices["status"],
    ):
        command.add_argument(
            "--control", default=f"http://{DEFAULT_CONTROL}", help="control API URL"
        )
        command.add_argument("--cluster", help="the node's cluster, when names repeat")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return asyncio.run(_serve(args.control_address, args.config_out))
    if args.command == "set-tls":
        body = {
            "min_version": args.min_version,
            "max_version": args.max_version,
            "regenerate_certificate": args.regenerate_certificate,
        }
        return _request(args.control, f"/nodes/{args.node}/tls", body, args.cluster)
    if args.command == "directory-fault":
        body = {"fault": args.fault}
        return _request(args.control, f"/nodes/{args.node}/directory-fault", body, args.cluster)
    if args.command == "snmp-fault":
        body = {"fault": args.fault}
        return _request(args.control, f"/nodes/{args.node}/snmp-fault", body, args.cluster)
    if args.command == "risport-fault":
        body = {"fault": args.fault}
        return _request(args.control, f"/nodes/{args.node}/risport-fault", body, args.cluster)
    if args.command == "phone":
        change = {"move_to": args.move_to} if args.move_to else {"status": args.status}
        return _request(args.control, f"/phones/{args.phone}", change, args.cluster)
    if args.command == "phone-config":
        settings: dict[str, Any] = {
            key: value
            for key, value in (("directory", args.directory), ("fault", args.fault))
            if value is not None
        }
        for key, nodes in (("tvs", args.tvs), ("cm_group", args.cm_group)):
            if nodes is not None:
                settings[key] = [n.strip() for n in nodes.split(",") if n.strip()]
        return max(
            _request(args.control, f"/phones/{phone}/config", settings, args.cluster)
            for phone in args.phone
        )
    if args.command == "fault":
        return _request(
            args.control,
            f"/nodes/{args.node}/fault",
            {"port": args.port, "fault": args.fault},
            args.cluster,
        )
    return _request(args.control, "/nodes", None, args.cluster)


async def _serve(control_address: str, config_out: Path | None) -> int:
    host, _, port = control_address.rpartition(":")
    with Lab() as lab:
        runner = await start_control(lab, host or "127.0.0.1", int(port))
        if config_out:
            lab.write_exporter_config(config_out)
            print(f"exporter config: {config_out}")
        for state in lab.nodes():
            ports = ", ".join(f"{std}->{real}" for std, real in state.ports.items())
            policy = f"TLS {state.min_version}-{state.max_version}"
            print(f"{state.cluster}/{state.name}: {state.address} ({ports}) {policy}")
        print(f"control API: http://{control_address}/nodes")
        await _wait_for_signal()
        await runner.cleanup()
    return 0


async def start_control(lab: Lab, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(control_app(lab), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _request(base: str, path: str, body: dict[str, Any] | None, cluster: str | None) -> int:
    url = base.rstrip("/") + path + (f"?cluster={cluster}" if cluster else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.dumps(json.load(response), indent=2))
    except urllib.error.HTTPError as error:
        print(f"lab refused: {error.read().decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as error:
        print(f"cannot reach the lab control API at {base}: {error.reason}", file=sys.stderr)
        return 1
    return 0
