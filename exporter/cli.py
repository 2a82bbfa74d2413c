"""Command line: flags and dispatch. The daemon's wiring, logging, check and the demo live in
modules of their own (exporter/daemon.py, logsetup.py, check.py, demo.py).

cucm-directory-exporter [run] [--config.file FILE] [--web.listen-address :10027] ...
cucm-directory-exporter check [--assume-min-version [NODE=]VERSION] ...  change-window report
cucm-directory-exporter demo                                          lab + exporter, no config
cucm-directory-exporter lab {serve,set-tls,fault,status,...}          the simulated cluster
cucm-directory-exporter healthcheck                          GET /-/healthy (container check)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from exporter.check import run_check
from exporter.config import ConfigError, ExporterConfig, load_config
from exporter.daemon import EXIT_CONFIG, Serving, run_daemon, web_config_of
from exporter.flagvalues import (
    assumed_minimum,
    connection_count,
    listen_address,
    positive_seconds,
    telemetry_path,
)
from exporter.frontdoor import FrontDoorLimits
from exporter.logsetup import setup_logging
from exporter.report.model import WhatIf
from exporter.results import TlsVersion
from exporter.version import version_block
from exporter.webconfig import load_web_config

# 10027: the first port above the allocations listed on Prometheus' "Default port allocations"
# wiki page as we know it (10001-10024 and 10026 are taken; see README).
DEFAULT_LISTEN = ":10027"

COMMANDS = {
    "run": "run the exporter (the default: its flags may be given without the word run)",
    "check": "probe every node once and print a change-window report (exit 0, 1, 2 or 3)",
    "demo": "start the simulated CUCM lab on loopback and the exporter against it",
    "lab": "run or steer the simulated CUCM lab (see: lab --help)",
    "healthcheck": "GET /-/healthy from the running exporter, following its flags; exit 0 or 1",
}


class _Parser(argparse.ArgumentParser):
    """Bad flags and values end in one line on stderr and exit status 2, as Go's kingpin."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["lab"]:
        from exporter.lab.cli import main as lab_main  # the lab is only loaded when asked for

        return lab_main(args[1:])
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        args = ["run", *args]  # `run` is the default command, as Prometheus exporters have it
    parsed = _command_parser().parse_args(args)
    handler: Callable[[argparse.Namespace], int] = parsed.handler
    return handler(parsed)


def _command_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cucm-directory-exporter",
        description="Prometheus exporter for CUCM phone-directory health around TLS changes.",
        epilog="`cucm-directory-exporter COMMAND --help` shows a command's flags; "
        "without a command, the flags are run's.",
    )
    _version_flag(parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help=COMMANDS["run"], description=COMMANDS["run"])
    _serving_flags(run)
    _log_flags(run, default_level="info")
    _config_file_flag(run)
    run.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration (and --web.config.file) and exit: 0 valid, 2 not",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check",
        help=COMMANDS["check"],
        description="Run every probe once against every node and print a readiness report.",
        epilog=_CHECK_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _check_flags(check)
    check.set_defaults(handler=_check)

    demo = commands.add_parser("demo", help=COMMANDS["demo"], description=COMMANDS["demo"])
    _serving_flags(demo, listen="127.0.0.1:10027")
    _log_flags(demo, default_level="info")
    demo.add_argument(
        "--lab.control-address",
        dest="control",
        default="127.0.0.1:10028",
        help="where the lab's control API listens (default %(default)s)",
    )
    demo.add_argument(
        "--probe.interval",
        dest="interval",
        type=positive_seconds,
        default=10.0,
        help="seconds between probe runs in the demo (default %(default)s)",
    )
    demo.add_argument(
        "--inventory",
        choices=("snmp", "risport", "both"),
        default="snmp",
        help="where the demo's phone inventory comes from: SNMP, RisPort70, or both "
        "(RisPort counted, SNMP cross-checked) (default %(default)s)",
    )
    demo.set_defaults(handler=_demo)

    # Dispatched before parsing (it has its own parser); listed here for --help.
    commands.add_parser("lab", help=COMMANDS["lab"], add_help=False)

    health = commands.add_parser(
        "healthcheck",
        help=COMMANDS["healthcheck"],
        description="GET /-/healthy from the running exporter (the container's HEALTHCHECK). "
        "Unless given here, the listen address and web config come from the command line of "
        "process --pid, so the check follows the exporter's --web.listen-address and TLS.",
    )
    health.add_argument(
        "--pid",
        type=int,
        default=1,
        help="the exporter's process, whose flags are read from /proc (default %(default)s, "
        "the container's entry point)",
    )
    health.add_argument(
        "--web.listen-address",
        dest="listen",
        type=listen_address,
        help="the exporter's listen address, instead of reading it from --pid",
    )
    health.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="the exporter's web config (TLS: https), instead of reading it from --pid",
    )
    health.add_argument(
        "--timeout",
        type=positive_seconds,
        default=4.0,
        help="seconds to wait for the answer (default %(default)s)",
    )
    health.set_defaults(handler=_healthcheck)
    return parser


class _PrintVersion(argparse.Action):
    """argparse's own version action rewraps the text; the block keeps its lines."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version_block())
        parser.exit(0)


def _config_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        default=Path("cucm-directory-exporter.yml"),
        help="configuration file (default %(default)s)",
    )


def _version_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        action=_PrintVersion,
        nargs=0,
        help="print the version block (version, revision, build date, Python, OpenSSL) and exit",
    )


def _serving_flags(parser: argparse.ArgumentParser, listen: str = DEFAULT_LISTEN) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        type=listen_address,
        default=listen,
        help="address to serve metrics on, [host]:port (default %(default)s)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=telemetry_path,
        default="/metrics",
        help="path under which to expose metrics (default %(default)s)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="TLS and basic auth for the HTTP endpoints, in the exporter-toolkit format "
        "(the file `promtool check web-config` checks)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="lifecycle",
        action="store_true",
        help="enable reload over HTTP (POST /-/reload), as Prometheus' flag does; "
        "SIGHUP reloads either way",
    )
    parser.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=connection_count,
        default=FrontDoorLimits.max_connections,
        help="most HTTP connections held at once, as Prometheus' flag; lowered to keep file "
        "descriptors for the probes (default %(default)s)",
    )
    parser.add_argument(
        "--web.read-header-timeout",
        dest="head_timeout",
        type=positive_seconds,
        default=FrontDoorLimits.head_timeout,
        help="seconds a new connection has to send its request head (and finish TLS) "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--web.write-timeout",
        dest="write_timeout",
        type=positive_seconds,
        default=FrontDoorLimits.write_timeout,
        help="seconds a client may leave the answer unread before it is cut off "
        "(default %(default)s)",
    )
    _version_flag(parser)


def _log_flags(parser: argparse.ArgumentParser, *, default_level: str) -> None:
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default=default_level,
        choices=["debug", "info", "warn", "error"],
        help="only log messages at this level or above (default %(default)s)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="output format of log messages (default %(default)s)",
    )
    parser.add_argument(
        "--log.libraries",
        dest="log_libraries",
        action="store_true",
        help="let third-party libraries (APScheduler, aiohttp, httpx, pysnmp) log at "
        "--log.level too; otherwise they only say warnings and errors",
    )


def _serving(args: argparse.Namespace) -> Serving:
    limits = FrontDoorLimits(
        head_timeout=args.head_timeout,
        write_timeout=args.write_timeout,
        max_connections=args.max_connections,
    )
    return Serving(args.listen, args.telemetry_path, args.web_config_file, args.lifecycle, limits)


def _run(args: argparse.Namespace) -> int:
    serving = _serving(args)
    setup_logging(args.log_level, args.log_format, libraries=args.log_libraries)
    config = _load_config(args.config_file)
    if config is None:
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


def _healthcheck(args: argparse.Namespace) -> int:
    from exporter.healthcheck import run_healthcheck

    return run_healthcheck(args.pid, args.listen, args.web_config_file, args.timeout)


def _load_config(path: Path) -> ExporterConfig | None:
    """The configuration, or None once its problems are on stderr (the caller exits 2)."""
    try:
        return load_config(path)
    except ConfigError as error:
        _print_config_error(path, error)
        return None


def _print_config_error(path: Path, error: ConfigError) -> None:
    print(f"error: {path}: the configuration is not valid:", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


# --- demo --------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    serving = _serving(args)
    setup_logging(args.log_level, args.log_format, libraries=args.log_libraries)
    try:
        tls = web_config_of(serving).tls_server_config is not None
    except ConfigError as error:
        _print_config_error(args.web_config_file, error)
        return EXIT_CONFIG
    from exporter.demo import run_demo

    scheme = "https" if tls else "http"
    return asyncio.run(run_demo(serving, args.control, args.interval, scheme, args.inventory))


# --- check -------------------------------------------------------------------------------


_CHECK_EXIT_CODES = """exit status:
  0  every fact was there; nothing at risk, no http/https directory route broken
  1  phones at risk (now, or in the --assume-min-version what-if), or a route broken
  2  bad configuration or usage; nothing was probed
  3  nothing at risk among what could be judged, but facts are missing (no inventory,
     a TLS policy not judged, models the catalogue does not know): not an all-clear"""


def _check_flags(parser: argparse.ArgumentParser) -> None:
    _config_file_flag(parser)
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text for people, json for scripts (docs/check-report.schema.json)",
    )
    parser.add_argument(
        "--phones",
        choices=["csv", "json"],
        help="instead of the report, write on stdout the phones broken now or in the "
        "--assume-min-version what-if, one row each: cluster, node, name, model, firmware, "
        "max_tls, when (now or what-if), basis (config: its own file; inference), reason. "
        "The same verdicts the report counts; the exit status is the report's",
    )
    parser.add_argument(
        "--assume-min-version",
        dest="assume",
        action="append",
        type=assumed_minimum,
        default=[],
        metavar="[NODE=]VERSION",
        help="what if every node (or only NODE; repeatable) required this TLS version? "
        f"VERSION is one of {', '.join(v.value for v in TlsVersion)}",
    )
    _log_flags(parser, default_level="warn")
    _version_flag(parser)


def _check(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format, libraries=args.log_libraries)
    config = _load_config(args.config_file)
    if config is None:
        return EXIT_CONFIG
    what_if = WhatIf(
        everywhere=next((v for node, v in reversed(args.assume) if node is None), None),
        nodes={node: v for node, v in args.assume if node is not None},
    )
    configured = {node.name for cluster in config.clusters for node in cluster.nodes}
    if unknown := sorted(set(what_if.nodes) - configured):
        message = f"argument --assume-min-version: no configured node named {unknown[0]!r}"
        print(f"cucm-directory-exporter check: error: {message}", file=sys.stderr)
        return EXIT_CONFIG
    return run_check(config, output_format=args.format, what_if=what_if, phones_format=args.phones)
