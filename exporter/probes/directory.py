"""The directory probe: walk the corporate directory the way each kind of phone would.

Per route, the chain xmldirectory.jsp -> xmldirectoryinput.jsp -> xmldirectorylist.jsp?<canary>
and its `Next` pages, following the absolute URLs the pages embed (reference/cucm-peers.md §3):

- `http`: port 8080. Every embedded URL must stay on HTTP/8080, or the workaround breaks on
  the phone's next screen (`next_hop_not_http`).
- `https`: port 8443 with a modern client.
- `https_legacy`: a client limited to the legacy phones' TLS version: first the TVS handshake on
  2445 that such a phone makes to check Tomcat's certificate, then the HTTPS chain on 8443.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from exporter import __version__
from exporter.config import DirectoryProbeConfig, NodeConfig
from exporter.probes.headcap import HeadCappedTransport
from exporter.probes.phonexml import PhoneXmlError, parse_directory, parse_input, parse_menu
from exporter.probes.tls import Connector, classify, describe, legacy_capable_context, open_tls
from exporter.results import (
    DirectoryOutcome,
    DirectoryProbeResult,
    DirectoryRoute,
    DirectoryStep,
    HandshakeOutcome,
    RouteResult,
    TlsVersion,
)
from exporter.timing import Deadline

__all__ = ["ClientFactory", "probe_directory"]

HTTP_PORT, HTTPS_PORT, TVS_PORT = 8080, 8443, 2445
_SCHEME_PORT = {DirectoryRoute.HTTP: ("http", HTTP_PORT)}

# Builds the HTTP client for a route; tests may pass their own (e.g. with a MockTransport).
ClientFactory = Callable[[DirectoryRoute, DirectoryProbeConfig], httpx.AsyncClient]


@functools.cache
def _route_context(route: DirectoryRoute, legacy_max: TlsVersion) -> ssl.SSLContext:
    # Contexts of their own: httpcore sets ALPN on whatever context it is given.
    if route is DirectoryRoute.HTTPS_LEGACY:
        return legacy_capable_context(TlsVersion.TLS1_0, legacy_max)
    context = ssl.create_default_context()
    # Phones trust Tomcat through TVS, not a CA bundle: the route checks reachability.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def new_client(route: DirectoryRoute, settings: DirectoryProbeConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        # Bounds endless `100 Continue` answers (exporter/probes/headcap.py).
        transport=HeadCappedTransport(verify=_route_context(route, settings.legacy_max_version)),
        timeout=httpx.Timeout(settings.request_timeout),
        follow_redirects=False,  # a phone does not follow them either
        trust_env=False,
        headers={
            "User-Agent": f"cucm-directory-exporter/{__version__}",
            # No compression: the size limit then bounds what we hold, not what we inflate.
            "Accept-Encoding": "identity",
        },
    )


async def probe_directory(
    node: NodeConfig,
    settings: DirectoryProbeConfig,
    deadline: Deadline,
    client_factory: ClientFactory = new_client,
    connect: Connector = open_tls,
) -> DirectoryProbeResult:
    """Walk every configured route of `node`; never raises for anything the network does."""
    walks = [
        _RouteWalk(node, settings, deadline, route, client_factory, connect).run()
        for route in settings.routes
    ]
    return DirectoryProbeResult(routes=tuple(await asyncio.gather(*walks)))


class _StepFailed(Exception):
    def __init__(self, outcome: DirectoryOutcome, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.status = status


class _RouteWalk:
    """One route's walk: each step records where it is, so a failure names its step."""

    def __init__(
        self,
        node: NodeConfig,
        settings: DirectoryProbeConfig,
        deadline: Deadline,
        route: DirectoryRoute,
        client_factory: ClientFactory,
        connect: Connector,
    ) -> None:
        self._node = node
        self._settings = settings
        self._deadline = deadline
        self._route = route
        self._client_factory = client_factory
        self._connect = connect
        self._step = DirectoryStep.MENU
        self._status: int | None = None
        self._tls_version: TlsVersion | None = None
        self._entries: int | None = None
        self._pages = 0
        secure = route is not DirectoryRoute.HTTP
        self._scheme, self._standard_port = ("https", HTTPS_PORT) if secure else ("http", HTTP_PORT)
        self._own_names = {n for n in (node.host, node.address, node.tls_server_name) if n}

    async def run(self) -> RouteResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline.remaining()):
                await self._walk()
        except _StepFailed as failure:
            return self._result(started, failure.outcome, failure.detail, failed=True)
        except PhoneXmlError as error:
            return self._result(started, DirectoryOutcome.BAD_CONTENT, str(error), failed=True)
        except TimeoutError:
            return self._result(
                started, DirectoryOutcome.TIMEOUT, "the probe deadline ran out", failed=True
            )
        return self._result(started, DirectoryOutcome.OK, "", failed=False)

    def _result(
        self, started: float, outcome: DirectoryOutcome, detail: str, *, failed: bool
    ) -> RouteResult:
        return RouteResult(
            route=self._route,
            outcome=outcome,
            failed_step=self._step if failed else None,
            duration_seconds=time.perf_counter() - started,
            status_code=self._status,
            entries=self._entries,
            pages=self._pages,
            tls_version=self._tls_version,
            detail=detail,
        )

    async def _walk(self) -> None:
        if self._route is DirectoryRoute.HTTPS_LEGACY:
            self._step = DirectoryStep.TVS
            await self._tvs_handshake()
        async with self._client_factory(self._route, self._settings) as client:
            self._step = DirectoryStep.MENU
            base = f"{self._scheme}://{_netloc(self._node.connect_address, self._port())}"
            menu = parse_menu(await self._get(client, f"{base}/ccmcip/xmldirectory.jsp"))
            input_url = menu.url_to("xmldirectoryinput.jsp")

            self._step = DirectoryStep.INPUT
            url = (
                await self._next_hop(input_url)
                if input_url
                else f"{base}/ccmcip/xmldirectoryinput.jsp"
            )
            form = parse_input(await self._get(client, url))

            self._step = DirectoryStep.SEARCH
            configured = {str(param): value for param, value in self._settings.query.items()}
            query = {param: configured.get(param, "") for param in form.params}
            page = parse_directory(
                await self._get(client, await self._next_hop(form.url, urlencode(query)))
            )
            self._pages, self._entries = 1, page.entries
            while page.next_url and self._pages < self._settings.max_pages:
                self._step = DirectoryStep.NEXT_PAGE
                page = parse_directory(await self._get(client, await self._next_hop(page.next_url)))
                self._pages += 1
                self._entries += page.entries
            if self._entries < self._settings.min_entries:
                self._step = DirectoryStep.SEARCH
                raise _StepFailed(
                    DirectoryOutcome.EMPTY_RESULT,
                    f"the canary search found {self._entries} entries, "
                    f"expected at least {self._settings.min_entries}",
                )

    def _port(self, standard: int | None = None) -> int:
        return self._node.connect_port(standard or self._standard_port)

    async def _tvs_handshake(self) -> None:
        """What a legacy phone does first: a TLS handshake with TVS on 2445."""
        context = legacy_capable_context(TlsVersion.TLS1_0, self._settings.legacy_max_version)
        budget = self._deadline.budget(self._settings.request_timeout)
        try:
            facts = await self._connect(
                self._node.connect_address,
                self._port(TVS_PORT),
                context,
                self._node.server_name,
                budget,
            )
        except Exception as error:
            raise _StepFailed(_tls_outcome(classify(error)), f"TVS: {describe(error)}") from None
        self._tls_version = TlsVersion.from_openssl(facts.version)

    async def _next_hop(self, url: str, query: str | None = None) -> str:
        """Check an embedded URL as the phone would meet it, and map it to where to connect.

        Only this node is followed (unless `allow_off_node_next_hops`): a page that names
        another host or port would otherwise have us fetch whatever it points at (SSRF), and
        an HTTPS route never continues over anything but HTTPS.
        """
        try:
            parts = urlsplit(url)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        except ValueError as error:  # port 99999, an unclosed "[", ...
            raise _StepFailed(
                DirectoryOutcome.BAD_CONTENT, f"the page's URL {url[:100]!r} is invalid: {error}"
            ) from None
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"[:200]
        if not parts.scheme:
            raise _StepFailed(
                DirectoryOutcome.BAD_CONTENT, f"the page's URL {url[:100]!r} is not absolute"
            )
        if self._route is DirectoryRoute.HTTP:
            if parts.scheme != "http" or port not in (HTTP_PORT, self._port()):
                raise _StepFailed(
                    DirectoryOutcome.NEXT_HOP_NOT_HTTP, f"the page sends the phone to {where}"
                )
        elif parts.scheme != "https":
            raise _StepFailed(
                DirectoryOutcome.NEXT_HOP_NOT_HTTPS,
                f"the page sends the phone to {where}; not followed off HTTPS",
            )
        host = parts.hostname or ""
        if not host:
            raise _StepFailed(
                DirectoryOutcome.BAD_CONTENT, f"the page's URL {url[:100]!r} names no host"
            )
        if host in self._own_names and port in (self._standard_port, self._port()):
            host = self._node.connect_address
            port = self._node.connect_port(port)
        elif not self._settings.allow_off_node_next_hops:
            raise _StepFailed(
                DirectoryOutcome.NEXT_HOP_OFF_NODE,
                f"the page sends the phone to {where}, not this node; not followed",
            )
        else:
            await _resolve(host, port)
        return urlunsplit(
            (
                parts.scheme,
                _netloc(host, port),
                parts.path,
                query if query is not None else parts.query,
                "",
            )
        )

    async def _get(self, client: httpx.AsyncClient, url: str) -> bytes:
        limit = self._settings.max_response_bytes
        budget = self._deadline.budget(self._settings.request_timeout)
        try:
            async with (
                asyncio.timeout(budget),
                client.stream(
                    "GET", url, extensions={"sni_hostname": self._node.server_name}
                ) as response,
            ):
                self._status = response.status_code
                self._note_tls(response)
                if response.status_code != 200:
                    raise _StepFailed(
                        DirectoryOutcome.HTTP_ERROR, f"HTTP {response.status_code} from {url}"
                    )
                content_type = response.headers.get("Content-Type", "")
                if "xml" not in content_type.lower():
                    # An HTML error page from a proxy or a broken JSP, not a phone page.
                    raise _StepFailed(
                        DirectoryOutcome.BAD_CONTENT,
                        f"expected XML, got Content-Type {content_type[:64]!r} from {url}",
                    )
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise _StepFailed(
                            DirectoryOutcome.BAD_CONTENT, f"response larger than {limit} bytes"
                        )
                return bytes(body)
        except TimeoutError:
            raise _StepFailed(DirectoryOutcome.TIMEOUT, f"no complete answer from {url}") from None
        except httpx.TimeoutException:
            raise _StepFailed(DirectoryOutcome.TIMEOUT, f"no complete answer from {url}") from None
        except httpx.HTTPError as error:
            raise _StepFailed(*_transport_failure(error)) from None
        except httpx.InvalidURL as error:  # not an HTTPError: a URL httpx cannot send
            raise _StepFailed(DirectoryOutcome.BAD_CONTENT, f"invalid URL: {error}") from None

    def _note_tls(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        tls = stream.get_extra_info("ssl_object") if stream is not None else None
        if tls is not None:
            self._tls_version = TlsVersion.from_openssl(tls.version())


async def _resolve(host: str, port: int) -> None:
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _StepFailed(
            DirectoryOutcome.DNS_ERROR, f"the next hop's host {host!r} does not resolve"
        ) from None


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls_outcome(outcome: HandshakeOutcome) -> DirectoryOutcome:
    if outcome.is_server_rejection:
        return DirectoryOutcome.TLS_VERSION_REJECTED
    return {
        HandshakeOutcome.TIMEOUT: DirectoryOutcome.TIMEOUT,
        HandshakeOutcome.REFUSED: DirectoryOutcome.REFUSED,
        HandshakeOutcome.UNREACHABLE: DirectoryOutcome.REFUSED,
        HandshakeOutcome.DNS_ERROR: DirectoryOutcome.DNS_ERROR,
        # Our own failure (EMFILE, a local OpenSSL refusal): no verdict on the node.
        HandshakeOutcome.PROBE_ERROR: DirectoryOutcome.PROBE_ERROR,
    }.get(outcome, DirectoryOutcome.TLS_ERROR)


def _transport_failure(error: httpx.HTTPError) -> tuple[DirectoryOutcome, str]:
    """httpx wraps the socket or TLS error that happened; classify that one."""
    cause = _root_cause(error)
    if cause is None:
        # RemoteProtocolError and friends: the server broke off or spoke something else.
        return DirectoryOutcome.HTTP_ERROR, f"{type(error).__name__}: {error}"
    outcome = classify(cause)
    if outcome is HandshakeOutcome.RESET:
        return DirectoryOutcome.HTTP_ERROR, f"connection dropped: {describe(cause)}"
    return _tls_outcome(outcome), describe(cause)


def _root_cause(error: BaseException) -> BaseException | None:
    """The innermost TLS or socket error under `error`, through causes and (anyio's)
    exception groups of connection attempts; None if there is none."""
    found: BaseException | None = None
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, ssl.SSLError) or (
            isinstance(current, OSError) and current.errno is not None
        ):
            found = current
        if isinstance(current, BaseExceptionGroup):
            pending.append(current.exceptions[0])
        elif (inner := current.__cause__ or current.__context__) is not None:
            pending.append(inner)
    return found
