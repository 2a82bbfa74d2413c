"""The daemon's wiring: store, scheduler, collector and HTTP app, reload and signals."""

from __future__ import annotations

import asyncio
import platform
import signal
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__
from exporter.config import ConfigError, ExporterConfig, load_config_async
from exporter.frontdoor import (
    AcceptErrorLimiter,
    FrontDoor,
    FrontDoorLimits,
    MalformedRequestFilter,
    raise_fd_limit,
)
from exporter.logsetup import get_logger
from exporter.metrics.collector import CucmCollector
from exporter.metrics.exposition import CachedExposition, MetricsBodies
from exporter.metrics.frontdoor import FrontDoorCollector
from exporter.ondemand import OnDemandProber
from exporter.probegate import ProbeGate
from exporter.probes import BUILTIN_PROBES, ProbeRunner, ProbeSpec
from exporter.results import ProbeRun
from exporter.scheduler import ProbeScheduler
from exporter.server import ExporterApp, ListenAddress, serve
from exporter.state import ExporterState
from exporter.store import ResultStore
from exporter.webconfig import RotatingServerContext, WebConfig, load_web_config

__all__ = ["EXIT_CONFIG", "Daemon", "Serving", "run_daemon", "web_config_of"]

log = get_logger("exporter")

EXIT_CONFIG = 2


@dataclass(frozen=True)
class Serving:
    """How the daemon serves HTTP: where, the metrics path, the web config file, whether
    POST /-/reload is on (--web.enable-lifecycle), and the front door's timeouts and cap."""

    listen: ListenAddress
    telemetry_path: str
    web_config_file: Path | None
    lifecycle: bool = False
    limits: FrontDoorLimits = field(default_factory=FrontDoorLimits)


def web_config_of(serving: Serving) -> WebConfig:
    if serving.web_config_file is None:
        return WebConfig()
    return load_web_config(serving.web_config_file)


class Daemon:
    """Everything the running exporter is made of, wired once: start, reload, stop."""

    def __init__(
        self,
        config: ExporterConfig,
        config_file: Path,
        serving: Serving,
        web_config: WebConfig,
        specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
    ) -> None:
        specs = tuple(specs)
        self._config = config
        self._config_file = config_file
        self._serving = serving
        self._web_config = web_config
        first_context = web_config.ssl_context()
        self._ssl_context = None if first_context is None else RotatingServerContext(first_context)
        self._reloading = asyncio.Lock()
        self._store = ResultStore()
        self._state = ExporterState(config, time.time())
        # Before the front door sizes its connection cap from it.
        self._fd_limit = raise_fd_limit()
        self._door = FrontDoor(serving.limits, fd_limit=self._fd_limit[0])
        self._malformed_filter = MalformedRequestFilter(self._door)
        process = CollectorRegistry()
        ProcessCollector(registry=process)
        PlatformCollector(registry=process)
        process.register(FrontDoorCollector(self._door.counts))
        collector = CucmCollector(self._store, self._state, specs)
        self._scheduler = ProbeScheduler(
            self._store, ProbeRunner(specs, latest=self._store.snapshot)
        )
        self.app = ExporterApp(
            MetricsBodies(CachedExposition(collector, process), self._state),
            self._store,
            self.reload,
            # On-demand runs keep their own probe state (SNMP engines, walk caches).
            prober=OnDemandProber(
                self._state,
                ProbeRunner(specs, latest=self._store.snapshot),
                ProbeGate(latest=self._store.snapshot),
            ),
            summarize=_summarizer(specs),
            telemetry_path=serving.telemetry_path,
            lifecycle=serving.lifecycle,
        )
        self.app.use_web_config(web_config)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port it listens on (useful when it was asked for port 0)."""
        assert self._runner is not None, "not started"
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Listen, then schedule the probes; raises OSError when it cannot listen."""
        AcceptErrorLimiter().install(asyncio.get_running_loop())
        self._malformed_filter.install()
        self._runner = await serve(
            self.app.build(), self._serving.listen, self._ssl_context, self._door
        )
        self._scheduler.start(self._config)
        self.app.ready = True
        listen = self._serving.listen
        scheme = "https" if self._ssl_context is not None else "http"
        log.info(
            "listening",
            address=f"{scheme}://{listen.host or '*'}:{self.port}{self._serving.telemetry_path}",
            tls=self._ssl_context is not None,
            open_files_limit=self._fd_limit[0],
            max_connections=self._door.connection_limit,
        )

    async def reload(self) -> str | None:
        """Re-read both config files; None when it worked, else the reason it did not.

        Files are read and validated in a worker thread (10,000 nodes take seconds), so the
        loop keeps answering scrapes and /-/healthy meanwhile; one reload at a time."""
        async with self._reloading:
            try:
                new_config = await load_config_async(self._config_file)
                new_web = await asyncio.to_thread(web_config_of, self._serving)
                if (new_web.tls_server_config is None) != (self._ssl_context is None):
                    raise ConfigError(["turning TLS on or off needs a restart, not a reload"])
                # A fresh context (ConfigError if unreadable): a CA removed from
                # client_ca_file must stop verifying, which loading into the old one cannot do.
                new_context = await asyncio.to_thread(new_web.ssl_context)
            except ConfigError as error:
                self._state.reload_failed()
                log.error(
                    "reload failed, keeping the running configuration: %s",
                    "; ".join(error.problems),
                )
                return str(error)
            except Exception as error:  # a bug of ours; still, the gauge must not say 1
                self._state.reload_failed()
                log.exception("reload failed, keeping the running configuration")
                return f"unexpected error: {type(error).__name__}"
            if self._ssl_context is not None and new_context is not None:
                self._ssl_context.swap(new_context)  # for new connections
            self.app.use_web_config(new_web)
            self._scheduler.apply(new_config)
            self._state.reloaded(new_config, time.time())
            log.info(
                "configuration reloaded from %s", self._config_file, nodes=new_config.node_count
            )
            return None

    async def stop(self) -> None:
        self.app.ready = False
        await self._scheduler.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self._malformed_filter.uninstall()


def _summarizer(specs: Iterable[ProbeSpec]) -> Callable[[ProbeRun], str]:
    by_name = {spec.name: spec for spec in specs}

    def summarize(run: ProbeRun) -> str:
        spec = by_name.get(run.probe)
        return run.reason if spec is None else spec.summarize_run(run)

    return summarize


async def run_daemon(
    config: ExporterConfig,
    config_file: Path,
    serving: Serving,
    specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
    *,
    on_ready: Callable[[Daemon], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; SIGHUP or POST /-/reload re-reads both config files.
    `on_ready` runs once it listens (the demo prints its banner then, never before)."""
    specs = tuple(specs)
    log.info(
        "starting cucm-directory-exporter",
        version=__version__,
        python=platform.python_version(),
        openssl=ssl.OPENSSL_VERSION,
        config=str(config_file),
        clusters=len(config.clusters),
        nodes=config.node_count,
        probes=",".join(spec.name for spec in specs if spec.enabled(config)),
    )
    try:
        daemon = Daemon(config, config_file, serving, web_config_of(serving), specs)
    except ConfigError as error:
        log.error("cannot use the web config: %s", "; ".join(error.problems))
        return EXIT_CONFIG
    try:
        await daemon.start()
    except OSError as error:
        listen = serving.listen
        log.error("cannot listen on %s:%d: %s", listen.host or "*", listen.port, error.strerror)
        return 1
    if on_ready is not None:
        on_ready(daemon)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[str | None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await daemon.stop()
    return 0
