"""The lab's corporate directory: CUCM's three ccmcip JSPs, with faults settable at runtime.

Headers and XML follow the wire capture in Cisco TAC technote 118699 (reference/cucm-peers.md
§3.2-3.3): `text/xml;charset=utf-8`, a JSESSIONID cookie, an empty Server header, absolute
next-hop URLs whose scheme and port follow the request, at most 32 entries a page and a `Next`
softkey carrying `start=`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import secrets
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from aiohttp import web

PAGE_SIZE = 32  # CiscoIPPhoneDirectory holds at most 32 DirectoryEntry objects


class DirectoryFault(enum.Enum):
    """How the directory service misbehaves (every page unless noted)."""

    NONE = "none"
    HTTP_500 = "http_500"
    HTML_ERROR = "html_error"  # 200 with an HTML error page, as a proxy would send
    MALFORMED_XML = "malformed_xml"
    EMPTY_RESULT = "empty_result"  # the search page finds nobody
    NEXT_HOP_HTTPS = "next_hop_https"  # embedded URLs point at https/8443 even over http
    NEXT_HOP_UNRESOLVABLE = "next_hop_unresolvable"  # embedded URLs name an unknown host
    SLOW = "slow"  # answer only after `slow_seconds`
    TRICKLE = "trickle"  # a valid page, one byte every `trickle_interval` seconds
    OVERSIZED = "oversized"  # a body of `oversized_bytes` (100 MiB), streamed
    ENTITY_BOMB = "entity_bomb"  # "billion laughs"
    EXTERNAL_ENTITY = "external_entity"  # XXE: an entity pointing at a local file
    RESET = "reset"  # reset the connection instead of answering


@dataclass(frozen=True)
class DirectoryUser:
    first: str
    last: str
    number: str


_FIRST = ("Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas")
_LAST = (
    "Abbott", "Adams", "Alvarez", "Andersen", "Arnold", "Baker", "Berg", "Carter", "Dubois",
    "Evans", "Fischer", "Garcia", "Huber", "Ito", "Jensen", "Keller", "Lopez", "Moreau",
)  # fmt: skip


def generate_users() -> tuple[DirectoryUser, ...]:
    """180 users, 50 of them with a last name starting with "A" (so the canary pages)."""
    return tuple(
        DirectoryUser(first, last, str(1000 + i))
        for i, (last, first) in enumerate(itertools.product(_LAST, _FIRST))
    )


class DirectoryService:
    """One node's Tomcat: the same app answers on "8080" and, behind TLS, on "8443"."""

    def __init__(self, advertised_host: str, users: tuple[DirectoryUser, ...]) -> None:
        self.advertised_host = advertised_host  # what CUCM puts in next-hop URLs
        self.users = users
        self.fault = DirectoryFault.NONE
        self.slow_seconds = 30.0
        self.oversized_bytes = 100 * 1024 * 1024
        self.trickle_interval = 0.1
        self.http_port = 0  # the real ports of "8080" and "8443", known once bound
        self.https_port = 0
        self.secure_backend_port = 0  # where the 8443 TLS listener delivers requests
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ccmcip/xmldirectory.jsp", self._menu)
        app.router.add_get("/ccmcip/xmldirectoryinput.jsp", self._input)
        app.router.add_get("/ccmcip/xmldirectorylist.jsp", self._list)
        return app

    # --- pages ---------------------------------------------------------------------------

    async def _menu(self, request: web.Request) -> web.StreamResponse:
        base = self._base(request)
        body = (
            "<CiscoIPPhoneMenu><Title>Directories</Title><Prompt>Select a directory</Prompt>"
            f"<MenuItem><Name>Corporate Directory</Name>"
            f"<URL>{base}/ccmcip/xmldirectoryinput.jsp</URL></MenuItem>"
            f"<MenuItem><Name>Personal Directory</Name>"
            f"<URL>{base}/ccmpd/pdCheckLogin.do?name=undefined</URL></MenuItem>"
            "</CiscoIPPhoneMenu>"
        )
        return await self._respond(request, body)

    async def _input(self, request: web.Request) -> web.StreamResponse:
        base = self._base(request)
        items = "".join(
            f"<InputItem><DisplayName>{label}</DisplayName><QueryStringParam>{param}"
            f"</QueryStringParam><InputFlags>{flags}</InputFlags><DefaultValue></DefaultValue>"
            "</InputItem>"
            for label, param, flags in (
                ("First Name", "f", "A"), ("Last Name", "l", "A"), ("Number", "n", "T"),
            )
        )  # fmt: skip
        body = (
            "<CiscoIPPhoneInput><Title>Directory Search</Title><Prompt>Enter search criteria"
            "</Prompt>"
            "<SoftKeyItem><Name>Search</Name><Position>1</Position><URL>SoftKey:Submit</URL>"
            "</SoftKeyItem>"
            "<SoftKeyItem><Name>&lt;&lt;</Name><Position>2</Position><URL>SoftKey:&lt;&lt;</URL>"
            "</SoftKeyItem>"
            "<SoftKeyItem><Name>Cancel</Name><Position>3</Position><URL>SoftKey:Cancel</URL>"
            "</SoftKeyItem>"
            f"<URL>{base}/ccmcip/xmldirectorylist.jsp</URL>{items}</CiscoIPPhoneInput>"
        )
        return await self._respond(request, body)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        query = {key: request.query.get(key, "") for key in ("f", "l", "n")}
        matches = [u for u in self.users if _matches(u, query)]
        if self.fault is DirectoryFault.EMPTY_RESULT:
            matches = []
        try:
            start = max(1, int(request.query.get("start", "1")))
        except ValueError:
            start = 1
        page = matches[start - 1 : start - 1 + PAGE_SIZE]
        last = start + len(page) - 1
        entries = "".join(
            f"<DirectoryEntry><Name>{escape(u.last)}, {escape(u.first)}</Name>"
            f"<Telephone>{u.number}</Telephone></DirectoryEntry>"
            for u in page
        )
        softkeys = [
            ("Dial", "SoftKey:Dial"),
            ("EditDial", "SoftKey:EditDial"),
            ("Exit", "SoftKey:Exit"),
        ]
        if last < len(matches):
            next_url = f"{self._base(request)}/ccmcip/xmldirectorylist.jsp?" + urlencode(
                {**query, "start": last + 1}
            )
            softkeys.append(("Next", escape(next_url)))
        softkeys.append(("Search", "SoftKey:Search"))
        keys = "".join(
            f"<SoftKeyItem><Name>{name}</Name><Position>{i}</Position><URL>{url}</URL></SoftKeyItem>"
            for i, (name, url) in enumerate(softkeys, start=1)
        )
        prompt = f"Records {start} to {last} of {len(matches)}" if page else "No records found"
        body = (
            f"<CiscoIPPhoneDirectory><Title>Corporate Directory</Title><Prompt>{prompt}</Prompt>"
            f"{entries}{keys}</CiscoIPPhoneDirectory>"
        )
        return await self._respond(request, body)

    # --- delivery and faults -------------------------------------------------------------

    def _base(self, request: web.Request) -> str:
        """Next-hop URLs follow the request's scheme and port, as CUCM's do."""
        host = self.advertised_host
        if self.fault is DirectoryFault.NEXT_HOP_UNRESOLVABLE:
            host = "cucm-gone.invalid"
        if self._is_secure(request) or self.fault is DirectoryFault.NEXT_HOP_HTTPS:
            return f"https://{host}:{self.https_port}"
        return f"http://{host}:{self.http_port}"

    def _is_secure(self, request: web.Request) -> bool:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return sockname is not None and sockname[1] == self.secure_backend_port

    async def _respond(self, request: web.Request, xml: str) -> web.StreamResponse:
        self.requests += 1
        fault = self.fault
        if fault is DirectoryFault.SLOW:
            await asyncio.sleep(self.slow_seconds)
        if fault is DirectoryFault.RESET:
            _reset(request)
            raise asyncio.CancelledError  # nothing more to say on a reset connection
        if fault is DirectoryFault.HTTP_500:
            return web.Response(status=500, text=_TOMCAT_500, content_type="text/html")
        if fault is DirectoryFault.HTML_ERROR:
            return web.Response(text=_PROXY_ERROR, content_type="text/html")
        if fault is DirectoryFault.OVERSIZED:
            return await self._stream_oversized(request)
        if fault is DirectoryFault.TRICKLE:
            return await self._trickle(request, xml)
        body = {
            DirectoryFault.MALFORMED_XML: xml[: len(xml) // 2],
            DirectoryFault.ENTITY_BOMB: _ENTITY_BOMB,
            DirectoryFault.EXTERNAL_ENTITY: _EXTERNAL_ENTITY,
        }.get(fault, xml)
        return web.Response(
            body=('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body).encode()
            if fault not in (DirectoryFault.ENTITY_BOMB, DirectoryFault.EXTERNAL_ENTITY)
            else body.encode(),
            headers=self._headers(request),
        )

    def _headers(self, request: web.Request) -> Mapping[str, str]:
        secure = "; Secure" if self._is_secure(request) else ""
        session = secrets.token_hex(16).upper()
        return {
            "Content-Type": "text/xml;charset=utf-8",
            "Set-Cookie": f"JSESSIONID={session}; Path=/ccmcip/{secure}; HttpOnly",
            "X-Frame-Options": "SAMEORIGIN",
            "Server": "",
        }

    async def _stream_oversized(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=self._headers(request))
        await response.prepare(request)
        chunk = b"A" * 65536
        with contextlib.suppress(ConnectionError):  # a careful client hangs up early
            await response.write(b"<CiscoIPPhoneDirectory><Title>")
            for _ in range(self.oversized_bytes // len(chunk)):
                await response.write(chunk)
            await response.write(b"</Title></CiscoIPPhoneDirectory>")
            await response.write_eof()
        return response

    async def _trickle(self, request: web.Request, xml: str) -> web.StreamResponse:
        """Headers at once, then the body a byte at a time: every read succeeds, slowly."""
        response = web.StreamResponse(headers=self._headers(request))
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for byte in xml.encode():
                await response.write(bytes([byte]))
                await asyncio.sleep(self.trickle_interval)
            await response.write_eof()
        return response


def _matches(user: DirectoryUser, query: Mapping[str, str]) -> bool:
    """CUCM matches each given criterion as a case-insensitive prefix."""
    return (
        user.first.lower().startswith(query["f"].lower())
        and user.last.lower().startswith(query["l"].lower())
        and user.number.startswith(query["n"])
    )


def _reset(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


_TOMCAT_500 = (
    "<!doctype html><html><head><title>HTTP Status 500 - Internal Server Error</title></head>"
    "<body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>"
)
_PROXY_ERROR = (
    "<!DOCTYPE html><html><head><title>Access denied</title></head>"
    "<body><h1>The page you requested is blocked by policy.</h1></body></html>"
)
_ENTITY_BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>\n<CiscoIPPhoneDirectory><Title>&lol9;</Title></CiscoIPPhoneDirectory>"
)
_EXTERNAL_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    "<CiscoIPPhoneDirectory><Title>&xxe;</Title></CiscoIPPhoneDirectory>"
)
