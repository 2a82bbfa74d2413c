"""Hostile directory pages: each is a classified failure of its own route, never a crash of the
whole probe (issue 14, findings 3, 5 and 8).

The pages come from a small HTTP/1.1 server on loopback (plain or TLS) that answers what each
test gives it, so a page can say what the lab's faithful CUCM model never would.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from exporter.config import DirectoryProbeConfig, NodeConfig
from exporter.lab.certs import LabCA
from exporter.lab.tls import server_context
from exporter.probes.directory import probe_directory
from exporter.results import DirectoryOutcome, DirectoryRoute, DirectoryStep, RouteResult
from exporter.timing import Deadline

Outcome = DirectoryOutcome
Pages = Callable[[str], bytes]  # base URL -> body of the menu page

MENU = "/ccmcip/xmldirectory.jsp"
INPUT = "/ccmcip/xmldirectoryinput.jsp"
LIST = "/ccmcip/xmldirectorylist.jsp"
CONTINUE_FOREVER = b"continue-forever"
MAX_CONTINUE_BYTES = 256 * 1024 * 1024  # the server gives up on its own after this much


def menu(input_url: str) -> bytes:
    return (
        "<CiscoIPPhoneMenu><Title>Directories</Title>"
        f"<MenuItem><Name>Corporate Directory</Name><URL>{input_url}</URL></MenuItem>"
        "</CiscoIPPhoneMenu>"
    ).encode()


def input_form(base: str) -> bytes:
    return (
        "<CiscoIPPhoneInput><Title>Directory Search</Title>"
        f"<URL>{base}{LIST}</URL><InputItem><DisplayName>Last Name</DisplayName>"
        "<QueryStringParam>l</QueryStringParam><InputFlags>A</InputFlags></InputItem>"
        "</CiscoIPPhoneInput>"
    ).encode()


DIRECTORY = (
    b"<CiscoIPPhoneDirectory><Title>Corporate Directory</Title><Prompt>1 of 1</Prompt>"
    b"<DirectoryEntry><Name>Abbott, Alice</Name><Telephone>1000</Telephone></DirectoryEntry>"
    b"</CiscoIPPhoneDirectory>"
)


class PageServer:
    """HTTP/1.1 on loopback: `pages[path]` answers with XML; CONTINUE_FOREVER sends
    `100 Continue` until the client goes away (or MAX_CONTINUE_BYTES)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.pages: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.interim_bytes = 0
        self._context = context
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"{'https' if self._context else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode().split("?")[0]
            self.requests.append(path)
            body = self.pages.get(path)
            if body == CONTINUE_FOREVER:
                chunk = b"HTTP/1.1 100 Continue\r\n\r\n" * 64
                while self.interim_bytes < MAX_CONTINUE_BYTES:
                    writer.write(chunk)
                    await writer.drain()
                    self.interim_bytes += len(chunk)
            elif body is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def page_server(context: ssl.SSLContext | None = None) -> AsyncIterator[PageServer]:
    server = PageServer(context)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    issued = LabCA(tmp_path_factory.mktemp("ca")).issue("node", ["localhost"])
    return server_context(issued.cert_file, issued.key_file, "1.2", "1.3")


async def walk(
    server: PageServer, route: DirectoryRoute = DirectoryRoute.HTTP, **settings: object
) -> RouteResult:
    standard = 8080 if route is DirectoryRoute.HTTP else 8443
    node = NodeConfig.model_validate(
        {"name": "node", "host": "127.0.0.1", "port_map": {standard: server.port}}
    )
    config = DirectoryProbeConfig.model_validate(
        {"routes": [route.value], "timeout": 6.0, "request_timeout": 5.0, **settings}
    )
    result = await probe_directory(node, config, Deadline.after(6.0))
    (only,) = result.routes
    return only


def healthy_chain(server: PageServer) -> None:
    server.pages[MENU] = menu(f"{server.base}{INPUT}")
    server.pages[INPUT] = input_form(server.base)
    server.pages[LIST] = DIRECTORY


async def test_the_page_server_serves_a_working_chain() -> None:
    async with page_server() as server:
        healthy_chain(server)
        route = await walk(server)
    assert (route.outcome, route.entries) == (Outcome.OK, 1), route.detail


@pytest.mark.parametrize("encoding", ["Shift_JIS", "EUC-JP", "GB2312", "Big5", "UTF-7", "UTF-32"])
async def test_an_undecodable_xml_encoding_is_bad_content_of_its_route(encoding: str) -> None:
    async with page_server() as server:
        healthy_chain(server)
        declaration = f'<?xml version="1.0" encoding="{encoding}"?>'.encode()
        server.pages[MENU] = declaration + server.pages[MENU]
        route = await walk(server)
    assert (route.outcome, route.failed_step) == (Outcome.BAD_CONTENT, DirectoryStep.MENU)
    assert "encoding" in route.detail


@pytest.mark.parametrize(
    "bad_url",
    [
        f"http://{where}/ccmcip/xmldirectoryinput.jsp"
        for where in ("127.0.0.1:99999", "127.0.0.1:abc", "[127.0.0.1")
    ],
)
async def test_a_broken_page_url_is_bad_content_of_its_route(bad_url: str) -> None:
    async with page_server() as server:
        healthy_chain(server)
        server.pages[MENU] = menu(bad_url)
        route = await walk(server)
    assert (route.outcome, route.failed_step) == (Outcome.BAD_CONTENT, DirectoryStep.INPUT)


async def test_a_page_url_to_another_port_is_not_followed(tls_context: ssl.SSLContext) -> None:
    """Second-order SSRF: the node's page names an internal service; we never fetch it.
    (On the http route another port is already `next_hop_not_http`.)"""
    async with page_server(tls_context) as server, page_server(tls_context) as internal:
        healthy_chain(server)
        internal.pages[INPUT] = input_form(server.base)
        server.pages[MENU] = menu(f"{internal.base}{INPUT}?secret=1")
        route = await walk(server, DirectoryRoute.HTTPS)
        assert (route.outcome, route.failed_step) == (
            Outcome.NEXT_HOP_OFF_NODE,
            DirectoryStep.INPUT,
        )
        assert internal.requests == []


async def test_a_page_url_to_another_host_is_followed_only_when_allowed() -> None:
    async with page_server() as server:
        healthy_chain(server)
        server.pages[MENU] = menu(f"http://localhost:{server.port}{INPUT}")
        refused = await walk(server)
        allowed = await walk(server, allow_off_node_next_hops=True)
    assert (refused.outcome, refused.failed_step) == (
        Outcome.NEXT_HOP_OFF_NODE,
        DirectoryStep.INPUT,
    )
    assert "localhost" in refused.detail
    assert allowed.outcome is Outcome.OK, allowed.detail


@pytest.mark.parametrize(
    ("route", "outcome"),
    [
        (DirectoryRoute.HTTP, Outcome.NEXT_HOP_NOT_HTTP),
        (DirectoryRoute.HTTPS, Outcome.NEXT_HOP_NOT_HTTPS),
    ],
)
async def test_a_non_http_next_hop_is_not_a_dns_error(
    tls_context: ssl.SSLContext, route: DirectoryRoute, outcome: DirectoryOutcome
) -> None:
    context = None if route is DirectoryRoute.HTTP else tls_context
    async with page_server(context) as server:
        healthy_chain(server)
        server.pages[MENU] = menu("ftp://files.invalid/ccmcip/xmldirectoryinput.jsp")
        result = await walk(server, route)
    assert (result.outcome, result.failed_step) == (outcome, DirectoryStep.INPUT)


async def test_an_https_route_is_not_downgraded_to_plain_http(tls_context: ssl.SSLContext) -> None:
    async with page_server(tls_context) as server, page_server() as plain:
        healthy_chain(server)
        healthy_chain(plain)
        server.pages[MENU] = menu(f"http://127.0.0.1:{server.port}{INPUT}")
        route = await walk(server, DirectoryRoute.HTTPS)
        assert (route.outcome, route.failed_step) == (
            Outcome.NEXT_HOP_NOT_HTTPS,
            DirectoryStep.INPUT,
        )
        healthy_chain(server)
        assert (await walk(server, DirectoryRoute.HTTPS)).outcome is Outcome.OK
        assert plain.requests == []


async def test_endless_100_continue_is_cut_off_before_the_deadline() -> None:
    async with page_server() as server:
        healthy_chain(server)
        server.pages[MENU] = CONTINUE_FOREVER
        route = await walk(server)
    # Without a bound this runs into the request timeout (`timeout`), parsing all the while.
    assert (route.outcome, route.failed_step) == (Outcome.HTTP_ERROR, DirectoryStep.MENU)
    assert "before the final response headers" in route.detail
    assert server.interim_bytes < MAX_CONTINUE_BYTES


async def test_out_of_file_descriptors_is_a_probe_error_not_a_tls_error(tmp_path: Path) -> None:
    async with page_server() as server:
        healthy_chain(server)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held: list[typing.IO[str]] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))
            try:
                while len(held) < 4096:
                    held.append((tmp_path / "x").open("w"))
            except OSError:
                pass
            route = await walk(server)
        finally:
            for file in held:
                file.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (route.outcome, route.failed_step) == (Outcome.PROBE_ERROR, DirectoryStep.MENU)
    assert not route.reached_node
