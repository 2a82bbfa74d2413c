"""The HTTP side: /metrics, /probe, the landing page, health, readiness and reload (aiohttp)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import html
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest

from exporter import __version__
from exporter.exposition import CachedExposition
from exporter.ondemand import TIMEOUT_HEADER, BadProbeRequest, OnDemandProber, render_debug
from exporter.results import ProbeRun
from exporter.store import ExporterState, ResultStore
from exporter.webconfig import BasicAuth, WebConfig

# Returns None when the reload worked, else the reason it did not.
Reloader = Callable[[], Awaitable[str | None]]

# Every scrape within this many seconds of a rendering gets the same body. Results change only
# when a probe run ends, so nothing is lost, and concurrent scrapers cannot take the event loop
# from the probes (bench/README.md, "Load and soak").
EXPOSITION_MAX_AGE = 1.0

# /metrics is gzipped for clients that ask (Prometheus does): at a thousand nodes 9.6 MB
# become ~0.6 MB. The fastest level: compression runs on the event loop, once per rendering.
GZIP_LEVEL = 1


@dataclass(frozen=True)
class ListenAddress:
    host: str | None  # None: every interface
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Accept ":10027", "127.0.0.1:10027" and "[::1]:10027", like Go exporters."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"--web.listen-address {text!r}: expected [host]:port")
        host = host.removeprefix("[").removesuffix("]")
        return cls(host or None, int(port))


class ExporterApp:
    """Routes and handlers; everything it shows comes from what it is given.

    Given the exporter's `state` (its running configuration), it also serves /probe; without
    it (tests of the other endpoints) there is no such route.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        store: ResultStore,
        reload: Reloader,
        *,
        telemetry_path: str = "/metrics",
        now: Callable[[], float] = time.time,
        state: ExporterState | None = None,
        exposition: CachedExposition | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._reload = reload
        self._telemetry_path = telemetry_path
        self._now = now
        self._prober = OnDemandProber(state) if state is not None else None
        self._state = state
        self._exposition = exposition
        # (Accept, gzipped) -> (when rendered, the state it showed, body as sent, content type)
        self._bodies: dict[tuple[str, bool], tuple[float, tuple[object, ...], bytes, str]] = {}
        self._auth = BasicAuth({})
        self._headers: dict[str, str] = {}
        self.ready = False

    def use_web_config(self, config: WebConfig) -> None:
        """Basic auth users and response headers from --web.config.file (start and reload)."""
        self._auth = BasicAuth(config.basic_auth_users)
        self._headers = dict(config.http_server_config.headers)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Liveness checks (container HEALTHCHECK, Kubernetes) need no password and learn nothing.
        if self._auth.enabled and request.path != "/-/healthy":
            credentials = _basic_credentials(request.headers.get("Authorization", ""))
            if credentials is None or not await self._auth.allows(*credentials):
                raise web.HTTPUnauthorized(
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="cucm-directory-exporter"'},
                )
        response = await handler(request)
        response.headers.update(self._headers)
        return response

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.landing)
        app.router.add_get(self._telemetry_path, self.metrics)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/-/ready", self.readiness)
        app.router.add_post("/-/reload", self.reload)
        if self._prober is not None:
            app.router.add_get("/probe", self.probe)
            # Stopping the server releases what on-demand probes hold on this loop.
            app.on_cleanup.append(self._close_prober)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        compress = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        if self._exposition is None:
            encoder, content_type = choose_encoder(accept)
            return _exposition_response(
                _encoded(encoder(self._registry), compress), content_type, compress
            )
        key = (accept, compress)
        shown = self._state_shown()
        held = self._bodies.get(key)
        if (
            held is None
            or held[1] != shown  # a reload (or a failed one) shows at once
            or time.monotonic() - held[0] >= EXPOSITION_MAX_AGE
        ):
            config = self._state.config if self._state is not None else None
            body, content_type = self._exposition.render(accept, config)
            if len(self._bodies) > 8:  # Accept headers are few in practice; never unbounded
                self._bodies.clear()
            held = (time.monotonic(), shown, _encoded(body, compress), content_type)
            self._bodies[key] = held
            # Let go of the body once it is stale: at a thousand nodes it is ~10 MB.
            asyncio.get_running_loop().call_later(EXPOSITION_MAX_AGE, self._forget_body, key, held)
        return _exposition_response(held[2], held[3], compress)

    def _forget_body(
        self, key: tuple[str, bool], held: tuple[float, tuple[object, ...], bytes, str]
    ) -> None:
        if self._bodies.get(key) is held:
            del self._bodies[key]

    def _state_shown(self) -> tuple[object, ...]:
        """What of the exporter's own state /metrics shows: its config and last reload."""
        state = self._state
        if state is None:
            return ()
        return (
            id(state.config),
            state.last_reload_successful,
            state.last_reload_success_timestamp,
        )

    async def probe(self, request: web.Request) -> web.Response:
        """Probe one target now (blackbox style); 400 with a one-line reason for a bad request."""
        assert self._prober is not None  # the route exists only with a prober
        try:
            wanted = self._prober.parse(
                list(request.query.items()), request.headers.get(TIMEOUT_HEADER)
            )
        except BadProbeRequest as error:
            return web.Response(status=400, text=f"{error}\n")
        result = await self._prober.probe(wanted)
        if wanted.debug:
            exposition = generate_latest(result.registry).decode()
            return web.Response(text=render_debug(result, exposition))
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(result.registry), headers={"Content-Type": content_type})

    async def _close_prober(self, app: web.Application) -> None:
        if self._prober is not None:
            await self._prober.aclose()

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def readiness(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready: still starting.\n")

    async def reload(self, request: web.Request) -> web.Response:
        problem = await self._reload()
        if problem is None:
            return web.Response(text="Configuration reloaded.\n")
        return web.Response(
            status=500,
            text=f"Reload failed; the previous configuration keeps running.\n{problem}\n",
        )

    async def landing(self, request: web.Request) -> web.Response:
        rows = "\n".join(self._row(run) for run in self._store.snapshot().values())
        failures = [run for run in self._store.history() if not run.success][:20]
        page = _LANDING.format(
            version=html.escape(__version__),
            metrics=html.escape(self._telemetry_path),
            rows=rows or '<tr><td colspan="6">No probe has finished yet.</td></tr>',
            failures="\n".join(self._row(run) for run in failures)
            or '<tr><td colspan="6">None kept.</td></tr>',
            probe_form=_PROBE_FORM if self._prober is not None else "",
        )
        return web.Response(text=page, content_type="text/html")

    def _row(self, run: ProbeRun) -> str:
        status = "ok" if run.success else "failed"
        cells = [html.escape(text) for text in (run.cluster, run.node, run.probe)]
        cells.append(f'<span class="{status}">{html.escape(run.reason)}</span>')
        cells.append(f"{run.duration_seconds:.3f}s")
        cells.append(f"{self._now() - run.started:.0f}s ago")
        return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CUCM directory exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .2em .8em; border-bottom: 1px solid #ddd; }}
.ok {{ color: #1a7f37; }} .failed {{ color: #cf222e; font-weight: bold; }}
</style></head>
<body>
<h1>CUCM directory exporter</h1>
<p>Version {version}. Probe results are cached and refreshed on a schedule.</p>
<ul>
<li><a href="{metrics}">Metrics</a></li>
<li><a href="-/healthy">Health</a> &middot; <a href="-/ready">Readiness</a></li>
</ul>
<h2>Targets</h2>
<table>
<tr><th>Cluster</th><th>Node</th><th>Probe</th><th>Last result</th>
<th>Duration</th><th>Age</th></tr>
{rows}
</table>
<h2>Recent failures</h2>
<table>
<tr><th>Cluster</th><th>Node</th><th>Probe</th><th>Result</th>
<th>Duration</th><th>Age</th></tr>
{failures}
</table>
{probe_form}
</body></html>
"""

_PROBE_FORM = """<h2>Probe now</h2>
<form action="probe" method="get">
<label>Target <input name="target" placeholder="node, cluster/node or host[:port]"></label>
<label>Module <input name="module" value="tls" title="tls, directory, snmp; comma-separated">
</label>
<label><input type="checkbox" name="debug" value="true"> Debug</label>
<input type="submit" value="Probe">
</form>
"""


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def serve(
    app: web.Application, address: ListenAddress, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Start listening; the caller owns the runner and calls `cleanup()` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address.host, address.port, ssl_context=ssl_context)
    await site.start()
    return runner


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (and does not refuse it with q=0)."""
    for offer in accept_encoding.split(","):
        coding, _, parameters = offer.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            quality = parameters.strip().lower().removeprefix("q=")
            try:
                return not parameters.strip() or float(quality) > 0
            except ValueError:
                return True  # a malformed weight: take the offer rather than refuse it
    return False


def _encoded(body: bytes, compress: bool) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0) if compress else body


def _exposition_response(body: bytes, content_type: str, compressed: bool) -> web.Response:
    headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)
