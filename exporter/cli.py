"""Command line: flags and dispatch. The daemon's wiring, logging, check and the demo live in
modules of their own (exporter/daemon.py, logsetup.py, check.py, demo.py).

cucm-directory-exporter [--config.file FILE] [--web.listen-address :10027] ...   run (default)
cucm-directory-exporter demo                                       lab + exporter, no config
cucm-directory-exporter lab {serve,set-tls,fault,status}           the simulated cluster
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter import __version__
from exporter.check import run_check
from exporter.config import ConfigError, load_config
from exporter.daemon import EXIT_CONFIG, Serving, run_daemon, web_config_of
from exporter.logsetup import setup_logging
from exporter.report.model import WhatIf
from exporter.results import TlsVersion
from exporter.server import ListenAddress
from exporter.webconfig import load_web_config

# 10027: the first port above the allocations listed on Prometheus' "Default port allocations"
# wiki page as we know it (10001-10024 and 10026 are taken; see README).
DEFAULT_LISTEN = ":10027"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["lab"]:
        from exporter.lab.cli import main as lab_main  # the lab is only loaded when asked for

        return lab_main(args[1:])
    if args[:1] == ["demo"]:
        return _demo(args[1:])
    if args[:1] == ["check"]:
        return _check(args[1:])
    return _run(args[1:] if args[:1] == ["run"] else args)


# --- run ---------------------------------------------------------------------------------


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        help="address to serve metrics on (default %(default)s)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose metrics (default %(default)s)",
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "error"]
    )
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"]
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="TLS and basic auth for the HTTP endpoints, in the exporter-toolkit format "
        "(the file `promtool check web-config` checks)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _serving(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Serving:
    try:
        listen = ListenAddress.parse(args.listen)
    except ValueError as error:
        parser.error(str(error))
    return Serving(listen, args.telemetry_path, args.web_config_file)


def _run(argv: Sequence[str]) -> int:
    parser = _parser(
        "cucm-directory-exporter", "Prometheus exporter for CUCM phone-directory health."
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        default=Path("cucm-directory-exporter.yml"),
        help="configuration file (default %(default)s)",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration file and exit",
    )
    args = parser.parse_args(argv)
    serving = _serving(parser, args)
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config_file)
    except ConfigError as error:
        _print_config_error(args.config_file, error)
        return EXIT_CONFIG
    if serving.web_config_file is not None:
        try:
            load_web_config(serving.web_config_file)
        except ConfigError as error:
            _print_config_error(serving.web_config_file, error)
            return EXIT_CONFIG
    if args.config_check:
        nodes = sum(len(c.nodes) for c in config.clusters)
        print(f"{args.config_file}: OK ({len(config.clusters)} clusters, {nodes} nodes)")
        return 0
    return asyncio.run(run_daemon(config, args.config_file, serving))


def _print_config_error(path: Path, error: ConfigError) -> None:
    print(f"error: {path}: the configuration is not valid:", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


# --- demo --------------------------------------------------------------------------------


def _demo(argv: Sequence[str]) -> int:
    parser = _parser(
        "cucm-directory-exporter demo", "Start the simulated CUCM lab and the exporter against it."
    )
    parser.add_argument(
        "--lab.control-address",
        dest="control",
        default="127.0.0.1:10028",
        help="where the lab's control API listens (default %(default)s)",
    )
    parser.add_argument(
        "--probe.interval",
        dest="interval",
        type=float,
        default=10.0,
        help="seconds between probe runs in the demo (default %(default)s)",
    )
    args = parser.parse_args(argv)
    serving = _serving(parser, args)
    setup_logging(args.log_level, args.log_format)
    try:
        tls = web_config_of(serving).tls_server_config is not None
    except ConfigError as error:
        _print_config_error(args.web_config_file, error)
        return EXIT_CONFIG
    from exporter.demo import run_demo

    return asyncio.run(run_demo(serving, args.control, args.interval, "https" if tls else "http"))


# --- check -------------------------------------------------------------------------------


_CHECK_EXIT_CODES = """exit status:
  0  every fact was there; nothing at risk, no http/https directory route broken
  1  phones at risk (now, or in the --assume-min-version what-if), or a route broken
  2  bad configuration or usage; nothing was probed
  3  nothing at risk among what could be judged, but facts are missing (no inventory,
     a TLS policy not judged, models the catalogue does not know): not an all-clear"""


def _check(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cucm-directory-exporter check",
        description="Run every probe once against every node and print a readiness report.",
        epilog=_CHECK_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config.file", dest="config_file", type=Path, default=Path("cucm-directory-exporter.yml")
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--assume-min-version",
        dest="assume",
        action="append",
        type=_assumed_minimum,
        default=[],
        metavar="[NODE=]VERSION",
        help="what if every node (or only NODE; repeatable) required this TLS version? "
        f"VERSION is one of {', '.join(v.value for v in TlsVersion)}",
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="warn", choices=["debug", "info", "warn", "error"]
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level, "logfmt")
    try:
        config = load_config(args.config_file)
    except ConfigError as error:
        _print_config_error(args.config_file, error)
        return EXIT_CONFIG
    what_if = WhatIf(
        everywhere=next((v for node, v in reversed(args.assume) if node is None), None),
        nodes={node: v for node, v in args.assume if node is not None},
    )
    configured = {node.name for cluster in config.clusters for node in cluster.nodes}
    if unknown := sorted(set(what_if.nodes) - configured):
        parser.error(f"argument --assume-min-version: no configured node named {unknown[0]!r}")
    return run_check(config, output_format=args.format, what_if=what_if)


def _assumed_minimum(text: str) -> tuple[str | None, TlsVersion]:
    """'1.2' -> (None, 1.2): every node; 'cucm-pub=1.2' -> ('cucm-pub', 1.2)."""
    node, _, version = text.rpartition("=")
    try:
        return (node or None), TlsVersion(version)
    except ValueError:
        choices = ", ".join(repr(v.value) for v in TlsVersion)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {version!r} (choose from {choices}, as VERSION or NODE=VERSION)"
        ) from None
