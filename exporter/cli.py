"""Command line: flags, logging, wiring and signals. The only module that knows every other.

cucm-directory-exporter [--config.file FILE] [--web.listen-address :10027] ...   run (default)
cucm-directory-exporter demo                                       lab + exporter, no config
cucm-directory-exporter lab {serve,set-tls,fault,status}           the simulated cluster
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__
from exporter.catalogue import load_catalogue
from exporter.collector import CucmCollector
from exporter.config import ClusterConfig, ConfigError, ExporterConfig, NodeConfig, load_config
from exporter.exposition import CachedExposition
from exporter.results import ProbeRun, TlsVersion
from exporter.scheduler import ProbeRunner, ProbeScheduler
from exporter.server import ExporterApp, ListenAddress, serve
from exporter.store import ExporterState, ResultStore
from exporter.webconfig import WebConfig, load_web_config

log = logging.getLogger("exporter")

# 10027: the first port above the allocations listed on Prometheus' "Default port allocations"
# wiki page as we know it (10001-10024 and 10026 are taken; see README).
DEFAULT_LISTEN = ":10027"
EXIT_CONFIG = 2


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


@dataclass(frozen=True)
class Serving:
    """How the daemon serves HTTP: where, the metrics path, and the web config file."""

    listen: ListenAddress
    telemetry_path: str
    web_config_file: Path | None


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


async def run_daemon(config: ExporterConfig, config_file: Path, serving: Serving) -> int:
    """Serve until SIGTERM or SIGINT; SIGHUP or POST /-/reload re-reads both config files."""
    listen, telemetry_path = serving.listen, serving.telemetry_path
    try:
        web_config = _web_config(serving)
        ssl_context = web_config.ssl_context()
    except ConfigError as error:
        log.error("cannot use the web config: %s", "; ".join(error.problems))
        return EXIT_CONFIG
    store = ResultStore()
    state = ExporterState(config, time.time())
    collector = CucmCollector(store, state)
    process = CollectorRegistry()
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    registry = CollectorRegistry()
    registry.register(collector)
    scheduler = ProbeScheduler(store)

    async def reload() -> str | None:
        try:
            new_config = load_config(config_file)
            new_web = _web_config(serving)
            if (new_web.tls_server_config is None) != (ssl_context is None):
                raise ConfigError(["turning TLS on or off needs a restart, not a reload"])
            if ssl_context is not None:
                new_web.apply_tls(ssl_context)  # new certificates for new connections
        except ConfigError as error:
            state.reload_failed()
            log.error(
                "reload failed, keeping the running configuration: %s", "; ".join(error.problems)
            )
            return str(error)
        app.use_web_config(new_web)
        scheduler.apply(new_config)
        state.reloaded(new_config, time.time())
        log.info("configuration reloaded from %s", config_file)
        return None

    app = ExporterApp(
        registry,
        store,
        reload,
        telemetry_path=telemetry_path,
        state=state,
        exposition=CachedExposition(collector, process),
    )
    app.use_web_config(web_config)
    try:
        runner = await serve(app.build(), listen, ssl_context)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", listen.host or "*", listen.port, error.strerror)
        return 1
    scheduler.start(config)
    app.ready = True
    scheme = "https" if ssl_context is not None else "http"
    log.info("listening on %s://%s:%d%s", scheme, listen.host or "*", listen.port, telemetry_path)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[str | None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    app.ready = False
    await scheduler.stop()
    await runner.cleanup()
    return 0


def _web_config(serving: Serving) -> WebConfig:
    if serving.web_config_file is None:
        return WebConfig()
    return load_web_config(serving.web_config_file)


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
        tls = _web_config(serving).tls_server_config is not None
    except ConfigError as error:
        _print_config_error(args.web_config_file, error)
        return EXIT_CONFIG
    return asyncio.run(_run_demo(serving, args.control, args.interval, "https" if tls else "http"))


async def _run_demo(serving: Serving, control: str, interval: float, scheme: str) -> int:
    from exporter.lab import Lab
    from exporter.lab.cli import start_control

    host, _, port = control.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="cucm-demo-") as tmp, Lab() as lab:
        config_file = lab.write_exporter_config(
            Path(tmp) / "demo.yml", interval=interval, timeout=min(8.0, interval * 0.8)
        )
        config = load_config(config_file)
        control_runner = await start_control(lab, host, int(port))
        shown = f"{serving.listen.host or '127.0.0.1'}:{serving.listen.port}"
        first = lab.nodes()[0].name
        print(
            f"\nCUCM lab running: {', '.join(f'{n.cluster}/{n.name}' for n in lab.nodes())}\n"
            f"  landing page:  {scheme}://{shown}/\n"
            f"  metrics:       {scheme}://{shown}{serving.telemetry_path}\n"
            f"  try:           cucm-directory-exporter lab set-tls {first} 1.2 "
            f"--control http://{control}\n"
            f"                 (then watch cucm_tls_min_version change; Ctrl-C stops)\n",
            flush=True,
        )
        try:
            return await run_daemon(config, config_file, serving)
        finally:
            await control_runner.cleanup()


# --- check -------------------------------------------------------------------------------


def _check(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cucm-directory-exporter check",
        description="Run every probe once against every node and print a readiness report. "
        "Exit 0: nothing at risk; 1: phones at risk or a directory route broken; 2: bad usage.",
    )
    parser.add_argument(
        "--config.file", dest="config_file", type=Path, default=Path("cucm-directory-exporter.yml")
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--assume-min-version",
        dest="assume",
        choices=[v.value for v in TlsVersion],
        help="what if every node required this TLS version?",
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="warn", choices=["debug", "info", "warn", "error"]
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level, "logfmt")
    # Only `check` draws on a terminal: the daemon need not carry rich in memory.
    from rich.console import Console

    from exporter.report import as_json, build_report, render_text

    try:
        config = load_config(args.config_file)
    except ConfigError as error:
        _print_config_error(args.config_file, error)
        return EXIT_CONFIG
    assume = TlsVersion(args.assume) if args.assume else None
    console = Console(stderr=True)
    runs = asyncio.run(_probe_everything(config, show_progress=console.is_terminal))
    report = build_report(config, runs, load_catalogue(config.catalogue), assume)
    if args.format == "json":
        print(json.dumps(as_json(report), indent=2))
    else:
        render_text(report, Console())
    return report.exit_code


async def _probe_everything(config: ExporterConfig, *, show_progress: bool) -> list[ProbeRun]:
    """One run of every applicable probe on every node, bounded like the scheduler's runs."""
    from rich.console import Console
    from rich.progress import Progress

    runner = ProbeRunner()
    limit = asyncio.Semaphore(config.scheduler.max_concurrent_probes)
    jobs = [
        (cluster, node, name)
        for cluster in config.clusters
        for node in cluster.nodes
        for name, spec in runner.probes.items()
        if spec.settings(config).enabled and spec.applies_to(node)
    ]
    with Progress(transient=True, disable=not show_progress, console=Console(stderr=True)) as bar:
        task = bar.add_task("probing", total=len(jobs))

        async def one(cluster: ClusterConfig, node: NodeConfig, probe: str) -> ProbeRun:
            async with limit:
                run = await runner.run(config, cluster, node, probe)
            bar.update(task, advance=1, description=f"{cluster.name}/{node.name} {probe}")
            return run

        try:
            return list(await asyncio.gather(*(one(*job) for job in jobs)))
        finally:
            await runner.aclose()


# --- logging -----------------------------------------------------------------------------


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..."`, as Prometheus' own components log."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": record.created,
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return json.dumps(fields)


def _level_name(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    return json.dumps(value)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING}.get(level, level.upper()))
    # These libraries log every job run and request at INFO; to us that is debug detail.
    for chatty in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    with contextlib.suppress(AttributeError):
        logging.captureWarnings(True)
