"""Directory classification edge cases through the probe's client seam, with MockTransport.

Fast unit tests of how an answer is classified: each builds one misbehaving page with
`httpx.MockTransport` and hands the probe a client over it (`client_factory`, the seam the
probe already has). They sit next to, not instead of, the tests against the lab's real
Tomcat (tests/test_directory_probe.py). Pages follow the lab's (Cisco TAC technote 118699).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from exporter.config import DirectoryProbeConfig, NodeConfig
from exporter.probes.directory import probe_directory
from exporter.results import DirectoryOutcome, DirectoryRoute, DirectoryStep, RouteResult
from exporter.timing import Deadline

HOST = "cucm-pub.lab.test"  # the node's own name: next hops to it need no DNS
NODE = NodeConfig(name="cucm-pub", host=HOST, address="127.0.0.1")
BASE = f"http://{HOST}:8080/ccmcip"
XML = {"Content-Type": "text/xml;charset=utf-8"}
Handler = Callable[[httpx.Request], httpx.Response]


def answer(
    status: int = 200, body: str | bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response whose body is streamed, as from the network (the probe reads it raw)."""
    data = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, headers=headers or XML, stream=httpx.ByteStream(data))


def settings(**overrides: object) -> DirectoryProbeConfig:
    return DirectoryProbeConfig.model_validate(
        {"routes": ["http"], "request_timeout": 2, "timeout": 5, **overrides}
    )


def menu(base: str = BASE) -> str:
    return (
        "<CiscoIPPhoneMenu><Title>Directories</Title><MenuItem><Name>Corporate Directory</Name>"
        f"<URL>{base}/xmldirectoryinput.jsp</URL></MenuItem></CiscoIPPhoneMenu>"
    )


def search_form(base: str = BASE) -> str:
    return (
        "<CiscoIPPhoneInput><Title>Directory Search</Title>"
        f"<URL>{base}/xmldirectorylist.jsp</URL>"
        "<InputItem><DisplayName>Last Name</DisplayName><QueryStringParam>l</QueryStringParam>"
        "<InputFlags>A</InputFlags><DefaultValue></DefaultValue></InputItem>"
        "</CiscoIPPhoneInput>"
    )


def directory_page(entries: int, next_url: str | None = None) -> str:
    rows = "".join(
        f"<DirectoryEntry><Name>Abbott, User{i}</Name><Telephone>{1000 + i}</Telephone>"
        "</DirectoryEntry>"
        for i in range(entries)
    )
    next_key = (
        f"<SoftKeyItem><Name>Next</Name><Position>1</Position><URL>{next_url}</URL></SoftKeyItem>"
        if next_url
        else ""
    )
    return (
        "<CiscoIPPhoneDirectory><Title>Corporate Directory</Title>"
        f"<Prompt>Records 1 to {entries}</Prompt>{rows}{next_key}</CiscoIPPhoneDirectory>"
    )


def cucm(list_page: Callable[[httpx.Request], httpx.Response] | None = None) -> Handler:
    """A well-behaved node, except for what `list_page` answers on the search."""

    def handle(request: httpx.Request) -> httpx.Response:
        page = request.url.path.rsplit("/", 1)[-1]
        if page == "xmldirectory.jsp":
            return answer(200, menu())
        if page == "xmldirectoryinput.jsp":
            return answer(200, search_form())
        if list_page is not None:
            return list_page(request)
        return answer(200, directory_page(5))

    return handle


class Recorder:
    """The client factory: an httpx client over `handler`, with every request kept."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, route: DirectoryRoute, config: DirectoryProbeConfig) -> httpx.AsyncClient:
        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.handler(request)

        return httpx.AsyncClient(transport=httpx.MockTransport(record), follow_redirects=False)


async def walk(handler: Handler, **overrides: object) -> tuple[RouteResult, Recorder]:
    recorder = Recorder(handler)
    result = await probe_directory(
        NODE, settings(**overrides), Deadline.after(5), client_factory=recorder
    )
    (route,) = result.routes
    return route, recorder


async def test_a_healthy_walk_sends_the_canary_and_counts_the_entries() -> None:
    route, recorder = await walk(cucm())
    assert route.outcome is DirectoryOutcome.OK, route.detail
    assert (route.entries, route.pages, route.status_code) == (5, 1, 200)
    search = recorder.requests[-1]
    assert parse_qs(search.url.query.decode()) == {"l": ["a"]}  # the default canary
    # Next hops to the node's own name go to its address, not through DNS.
    assert {r.url.host for r in recorder.requests} == {"127.0.0.1"}


@pytest.mark.parametrize("status", [500, 404, 302])
async def test_a_status_other_than_200_is_an_http_error(status: int) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        return answer(status, headers={"Location": f"{BASE}/login"})

    route, _ = await walk(cucm(failing))
    assert route.outcome is DirectoryOutcome.HTTP_ERROR
    assert route.failed_step is DirectoryStep.SEARCH
    assert route.status_code == status


async def test_an_html_page_with_200_is_bad_content() -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        return answer(200, "<html></html>", {"Content-Type": "text/html"})

    route, _ = await walk(cucm(proxy))
    assert route.outcome is DirectoryOutcome.BAD_CONTENT
    assert "text/html" in route.detail


async def test_a_body_over_the_limit_is_bad_content() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return answer(200, b"<a>" + b"x" * 4096 + b"</a>")

    route, _ = await walk(cucm(huge), max_response_bytes=1024)
    assert route.outcome is DirectoryOutcome.BAD_CONTENT
    assert "larger than 1024 bytes" in route.detail


async def test_an_empty_search_is_an_empty_result_at_the_search_step() -> None:
    def nobody(request: httpx.Request) -> httpx.Response:
        return answer(200, directory_page(0))

    route, _ = await walk(cucm(nobody))
    assert route.outcome is DirectoryOutcome.EMPTY_RESULT
    assert route.failed_step is DirectoryStep.SEARCH
    assert route.entries == 0


async def test_an_endless_next_chain_stops_at_max_pages() -> None:
    def forever(request: httpx.Request) -> httpx.Response:
        return answer(200, directory_page(32, f"{BASE}/xmldirectorylist.jsp?start=33"))

    route, recorder = await walk(cucm(forever), max_pages=4)
    assert route.outcome is DirectoryOutcome.OK, route.detail
    assert (route.pages, route.entries) == (4, 4 * 32)
    assert len(recorder.requests) == 2 + 4  # menu, input, then exactly max_pages list pages


async def test_a_next_hop_leaving_http_breaks_the_http_route() -> None:
    def secure_menu(request: httpx.Request) -> httpx.Response:
        return answer(200, menu(f"https://{HOST}:8443/ccmcip"))

    route, recorder = await walk(secure_menu)
    assert route.outcome is DirectoryOutcome.NEXT_HOP_NOT_HTTP
    assert route.failed_step is DirectoryStep.INPUT
    assert len(recorder.requests) == 1  # the phone would not even try


async def test_a_server_that_drops_the_exchange_is_an_http_error() -> None:
    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    route, _ = await walk(cucm(dropped))
    assert route.outcome is DirectoryOutcome.HTTP_ERROR
    assert route.failed_step is DirectoryStep.SEARCH
    assert "RemoteProtocolError" in route.detail


async def test_a_read_timeout_is_a_timeout() -> None:
    def stalled(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    route, _ = await walk(cucm(stalled))
    assert route.outcome is DirectoryOutcome.TIMEOUT
    assert route.failed_step is DirectoryStep.SEARCH


async def test_a_refused_connection_is_refused_at_the_first_step() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        cause = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        raise httpx.ConnectError("connection refused", request=request) from cause

    route, _ = await walk(refused)
    assert route.outcome is DirectoryOutcome.REFUSED
    assert route.failed_step is DirectoryStep.MENU
    assert route.outcome.node_answered is False


async def test_a_page_that_is_not_phone_xml_is_bad_content() -> None:
    def wrong_root(request: httpx.Request) -> httpx.Response:
        return answer(200, "<CiscoIPPhoneText><Text>hi</Text></CiscoIPPhoneText>")

    route, _ = await walk(cucm(wrong_root))
    assert route.outcome is DirectoryOutcome.BAD_CONTENT
    assert route.failed_step is DirectoryStep.SEARCH
