"""The HTTP side: /metrics, /probe, the landing page, health, readiness and reload (aiohttp)."""

from __future__ import annotations

import base64
import html
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter
from prometheus_client.exposition import choose_encoder, generate_latest

from exporter import __version__
from exporter.basicauth import BasicAuth, TooBusy
from exporter.frontdoor import FrontDoor, FrontDoorSite
from exporter.metrics.exposition import Body, negotiated_format
from exporter.ondemand import TIMEOUT_HEADER, BadProbeRequest, OnDemandProber
from exporter.probedebug import render_debug
from exporter.probegate import ProbeBusy
from exporter.results import ProbeRun
from exporter.runbook import runbook_html
from exporter.store import ResultStore
from exporter.webconfig import WebConfig

# Returns None when the reload worked, else the reason it did not.
Reloader = Callable[[], Awaitable[str | None]]


class MetricsSource(Protocol):
    """What /metrics answers (exporter/metrics/exposition.py: cached, or a plain registry)."""

    async def settle(self) -> None:
        """Wait (bounded) for what is computed off the event loop before a body is asked."""
        ...

    def body(self, accept: str, accept_encoding: str) -> Body: ...


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
    """Routes and handlers; everything it shows comes from the collaborators it is given.

    Given a `prober`, it also serves /probe; without one there is no such route.
    """

    def __init__(
        self,
        metrics: MetricsSource,
        store: ResultStore,
        reload: Reloader,
        *,
        prober: OnDemandProber | None = None,
        summarize: Callable[[ProbeRun], str] = lambda run: run.reason,
        telemetry_path: str = "/metrics",
        lifecycle: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._summarize = summarize
        self._store = store
        self._reload = reload
        self._telemetry_path = telemetry_path
        self._now = now
        self._prober = prober
        self._lifecycle = lifecycle
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
            # Malformed credentials are a plain 401: no traceback, nothing logged.
            credentials = _basic_credentials(request.headers.get("Authorization", ""))
            try:
                allowed = credentials is not None and await self._auth.allows(*credentials)
            except TooBusy:
                # Password checks are queued up (a wrong-password storm): a right password
                # already seen is still answered from the cache, everything else waits.
                raise web.HTTPTooManyRequests(
                    text="Too many password checks in progress; retry.\n",
                    headers={"Retry-After": "1"},
                ) from None
            if not allowed:
                raise web.HTTPUnauthorized(
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="cucm-directory-exporter"'},
                )
        return await handler(request)

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """The web config's headers, on every response (401, 404 and 429 included)."""
        response.headers.update(self._headers)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.on_response_prepare.append(self._add_headers)
        app.router.add_get("/", self.landing)
        app.router.add_get(self._telemetry_path, self.metrics)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/-/ready", self.readiness)
        app.router.add_post("/-/reload", self.reload)
        app.router.add_get("/runbook", self.runbook)  # where the alerts' runbook links lead
        if self._prober is not None:
            app.router.add_get("/probe", self.probe)
            # Stopping the server releases what on-demand probes hold on this loop.
            app.on_cleanup.append(self._close_prober)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        await self._metrics.settle()
        body = self._metrics.body(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        headers = {"Content-Type": body.content_type, "Vary": "Accept-Encoding"}
        if body.gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=_SlicedBody(body.content, body.content_type), headers=headers)

    async def probe(self, request: web.Request) -> web.Response:
        """Probe one target now (blackbox style); 400 with a one-line reason for a bad request."""
        assert self._prober is not None  # the route exists only with a prober
        try:
            wanted = self._prober.parse(
                list(request.query.items()), request.headers.get(TIMEOUT_HEADER)
            )
        except BadProbeRequest as error:
            return web.Response(status=error.status, text=f"{error}\n")
        try:
            result = await self._prober.probe(wanted)
        except ProbeBusy as busy:
            headers = {"Retry-After": str(busy.retry_after)}
            return web.Response(status=503, text=f"{busy}\n", headers=headers)
        if wanted.debug:
            exposition = generate_latest(result.registry).decode()
            return web.Response(text=render_debug(result, self._prober, exposition))
        encoder, content_type = choose_encoder(negotiated_format(request.headers.get("Accept", "")))
        return web.Response(body=encoder(result.registry), headers={"Content-Type": content_type})

    async def _close_prober(self, app: web.Application) -> None:
        if self._prober is not None:
            await self._prober.aclose()

    async def runbook(self, request: web.Request) -> web.Response:
        return web.Response(text=runbook_html(), content_type="text/html")

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def readiness(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready: still starting.\n")

    async def reload(self, request: web.Request) -> web.Response:
        """POST /-/reload, behind --web.enable-lifecycle as in Prometheus (SIGHUP always
        works); a browser cannot be made to post it from another site."""
        if not self._lifecycle:
            return web.Response(status=403, text="Lifecycle API is not enabled.\n")
        if refusal := _cross_site(request):
            return web.Response(status=403, text=f"{refusal}\n")
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
            rows=rows or '<tr><td colspan="7">No probe has finished yet.</td></tr>',
            failures="\n".join(self._row(run) for run in failures)
            or '<tr><td colspan="7">None kept.</td></tr>',
            probe_form=_PROBE_FORM if self._prober is not None else "",
        )
        return web.Response(text=page, content_type="text/html")

    def _row(self, run: ProbeRun) -> str:
        status = "ok" if run.success else "failed"
        cells = [html.escape(text) for text in (run.cluster, run.node, run.probe)]
        cells.append(f'<span class="{status}">{html.escape(run.reason)}</span>')
        cells.append(html.escape(self._summarize(run)))
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
<li><a href="runbook">Runbook</a> (what each alert means and what to do)</li>
</ul>
<h2>Targets</h2>
<table>
<tr><th>Cluster</th><th>Node</th><th>Probe</th><th>Last result</th><th>Outcome</th>
<th>Duration</th><th>Age</th></tr>
{rows}
</table>
<h2>Recent failures</h2>
<table>
<tr><th>Cluster</th><th>Node</th><th>Probe</th><th>Result</th><th>Outcome</th>
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


_SLICE = 64 * 1024


class _SlicedBody(payload.Payload):
    """The (shared, cached) body, written a slice at a time, each waiting for the client to
    drain: one that does not read holds a slice of it, not a copy (and the front door's write
    timeout ends it), where one write of the whole body copies all of it into the transport."""

    _value: bytes

    def __init__(self, content: bytes, content_type: str) -> None:
        super().__init__(content, content_type=content_type)
        self._size = len(content)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), _SLICE):
            await writer.write(view[start : start + _SLICE])


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 (UnicodeDecodeError)
        return None
    return (user, password) if sep else None


# What an HTML form (or a fetch() without a CORS preflight) can send; reloaders and curl -X
# POST send no body at all.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _cross_site(request: web.Request) -> str | None:
    """Why a lifecycle request may come from a page on another site, or None.

    Browsers mark cross-site requests (Origin, Sec-Fetch-Site) and can only post forms without
    a preflight; tools that reload (configmap reloaders, curl -X POST) do neither."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.partition("://")[2] != request.host:
        return f"Refused: a request from {origin} (another origin)."
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "Refused: a cross-site request."
    if request.content_type in _FORM_TYPES:
        return f"Refused: a {request.content_type} body (post without a body: curl -X POST)."
    return None


async def serve(
    app: web.Application,
    address: ListenAddress,
    ssl_context: ssl.SSLContext | None = None,
    door: FrontDoor | None = None,
) -> web.AppRunner:
    """Start listening behind `door` (exporter/frontdoor.py: timeouts and a connection cap);
    the caller owns the runner and calls `cleanup()` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = FrontDoorSite(runner, door or FrontDoor(), address.host, address.port, ssl_context)
    await site.start()
    return runner
