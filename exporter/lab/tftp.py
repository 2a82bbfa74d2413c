"""The lab's TFTP service over HTTP (CUCM serves its TFTP files on 6970 as well): each phone's
SEP<MAC>.cnf.xml (rendered by lab/phonefiles.py) and ConfigFileCacheList.txt, with conditional
requests and the bytes of each fault switch.

Where the format comes from:
- `http://<tftp>:6970/<file>`, unauthenticated: usecallmanager.nz "HTTP Provisioning", and
  trustedsec/SeeYouCM-Thief, which downloads configuration files that way.
- ConfigFileCacheList.txt: a header row "Filename  Length(In Cache)  Build Time" and one row
  per cached file (Cisco TAC document 200408 "Retrieve Phone Configuration File from TFTP
  Server"; clients read the first whitespace-separated token of a row, as SeeYouCM-Thief does).

The files are built from the lab's phone table (the nodes' SNMP rows), so what SNMP reports and
what the TFTP service serves always agree. Every node of a cluster serves the same files, as
CUCM's TFTP nodes do (lab/tftp_control.py attaches and steers them).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate, parsedate_to_datetime
from typing import Protocol

from aiohttp import web

# Re-exported: tests, tools and the lab's CLI import the file switches from here.
from exporter.lab.phonefiles import (
    ENTITY_BOMB,
    TVS_PORT,
    ConfigFault,
    DirectoryMode,
    PhoneLike,
    PhoneSettings,
    render_config,
)

__all__ = [
    "TFTP_HTTP_PORT",
    "TVS_PORT",
    "ClusterFiles",
    "ConfigFault",
    "DirectoryMode",
    "PhoneSettings",
    "TftpServer",
    "render_config",
]

TFTP_HTTP_PORT = 6970
_HEADER = "Filename  Length(In Cache)  Build Time"


class _Node(Protocol):
    name: str
    host: str

    @property
    def phones(self) -> Sequence[PhoneLike]: ...


@dataclass(frozen=True)
class _File:
    body: bytes
    built: float  # when CUCM (re)built it: Last-Modified and the cache list's build time
    etag: str


class ClusterFiles:
    """One cluster's TFTP files, built from its nodes' phone tables on request.

    Settings may be changed from any thread (the lab's control API, tests); the files are
    read on the lab's loop.
    """

    def __init__(self, nodes: Callable[[], Sequence[_Node]]) -> None:
        self._nodes = nodes
        self._lock = threading.Lock()
        self._settings: dict[str, PhoneSettings] = {}
        self._tvs: tuple[str, ...] | None = None  # the cluster default: the CM group's nodes
        self._cm_group: tuple[str, ...] | None = None
        self._versions: dict[str, float] = {}  # phone -> when its settings last changed
        self._started = time.time()
        self.oversized_bytes = 8 * 1024 * 1024
        self.trickle_interval = 0.2
        self.requests = 0  # file requests answered, 304s included
        self.not_modified = 0  # of which answered 304
        self.bytes_sent = 0
        self.list_requests = 0

    # --- settings ------------------------------------------------------------------------

    def configure(self, phone: str, **changes: object) -> PhoneSettings:
        """Change one phone's settings (directory=, fault=, tvs=, cm_group=)."""
        with self._lock:
            settings = replace(self._settings.get(phone, PhoneSettings()), **changes)  # type: ignore[arg-type]
            self._settings[phone] = settings
            self._versions[phone] = self._next_version(phone)
            return settings

    def settings(self, phone: str) -> PhoneSettings:
        with self._lock:
            return self._settings.get(phone, PhoneSettings())

    def set_defaults(
        self, *, tvs: Sequence[str] | None = None, cm_group: Sequence[str] | None = None
    ) -> None:
        """The cluster's TVS list / CallManager group for phones that set none (None: each
        phone's own node first, then the others)."""
        with self._lock:
            self._tvs = tuple(tvs) if tvs is not None else None
            self._cm_group = tuple(cm_group) if cm_group is not None else None
            stamp = max(time.time(), max(self._versions.values(), default=0.0) + 1.0)
            self._versions = dict.fromkeys(self._versions, stamp)
            self._started = max(self._started, stamp)

    def phone_names(self) -> list[str]:
        """Every SEP phone the cluster's TFTP service has a file for."""
        return list(self._registered())

    def _next_version(self, phone: str) -> float:
        # HTTP dates have a one-second resolution: a change must show a later Last-Modified.
        held = self._versions.get(phone, self._started)
        return float(int(max(time.time(), held + 1.0)))

    # --- the files -----------------------------------------------------------------------

    def _registered(self) -> dict[str, tuple[_Node, PhoneLike]]:
        """Each SEP device once: the node it is registered to wins over a stale row."""
        chosen: dict[str, tuple[_Node, PhoneLike]] = {}
        for node in self._nodes():
            for phone in node.phones:
                if not phone.name.startswith("SEP"):
                    continue  # soft clients' CSF files are not modelled
                held = chosen.get(phone.name)
                if held is None or (
                    phone.status == "registered" and held[1].status != phone.status
                ):
                    chosen[phone.name] = (node, phone)
        return chosen

    def build(
        self, phone_name: str, registered: dict[str, tuple[_Node, PhoneLike]] | None = None
    ) -> tuple[PhoneSettings, _File] | None:
        found = (registered if registered is not None else self._registered()).get(phone_name)
        if found is None:
            return None
        node, phone = found
        names = [n.name for n in self._nodes()]
        hosts = {n.name: n.host for n in self._nodes()}
        with self._lock:
            settings = self._settings.get(phone_name, PhoneSettings())
            default_order = (node.name, *(n for n in names if n != node.name))
            cm_group = settings.cm_group or self._cm_group or default_order
            tvs = settings.tvs or self._tvs or cm_group
            built = self._versions.get(phone_name, float(int(self._started)))
        body = render_config(phone, settings.directory, [hosts.get(n, n) for n in cm_group],
                             [hosts.get(n, n) for n in tvs])  # fmt: skip
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        return settings, _File(body, built, etag)

    def cache_list(self) -> str:
        rows = [_HEADER]
        registered = self._registered()
        for name in sorted(registered):
            built = self.build(name, registered)
            if built is None:
                continue
            settings, file = built
            if settings.fault is ConfigFault.MISSING:
                continue
            suffix = ".cnf.xml.enc.sgn" if settings.fault is ConfigFault.ENCRYPTED else ".cnf.xml"
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(file.built))
            rows.append(f"{name}{suffix}  {len(file.body)}  {stamp}")
        return "\r\n".join(rows) + "\r\n"

    # --- HTTP ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ConfigFileCacheList.txt", self._list)
        app.router.add_get("/{name}", self._file)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        self.list_requests += 1
        return web.Response(text=self.cache_list(), content_type="text/plain")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests += 1
        for suffix in (".cnf.xml.enc.sgn", ".cnf.xml"):
            if name.endswith(suffix):
                break
        else:
            raise web.HTTPNotFound()
        built = self.build(name.removesuffix(suffix))
        if built is None:
            raise web.HTTPNotFound()
        settings, file = built
        encrypted = settings.fault is ConfigFault.ENCRYPTED
        if settings.fault is ConfigFault.MISSING or encrypted != (suffix == ".cnf.xml.enc.sgn"):
            raise web.HTTPNotFound()
        headers = {"ETag": file.etag, "Last-Modified": formatdate(file.built, usegmt=True)}
        if _not_modified(request, file):
            self.not_modified += 1
            return web.Response(status=304, headers=headers)
        if encrypted:
            # An encrypted, signed file is opaque bytes to anyone without the phone's key.
            return self._send(
                web.Response(body=secrets.token_bytes(len(file.body)), headers=headers)
            )
        if settings.fault is ConfigFault.OVERSIZED:
            return await self._stream_oversized(request, file.body)
        if settings.fault is ConfigFault.TRICKLE:
            return await self._trickle(request, file.body)
        body = file.body
        if settings.fault is ConfigFault.MALFORMED:
            body = body[: len(body) // 2]
        elif settings.fault is ConfigFault.ENTITY_BOMB:
            body = ENTITY_BOMB
        return self._send(web.Response(body=body, content_type="text/xml", headers=headers))

    def _send(self, response: web.Response) -> web.Response:
        self.bytes_sent += len(response.body) if isinstance(response.body, bytes) else 0
        return response

    async def _stream_oversized(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/xml"})
        await response.prepare(request)
        head = body.split(b"<vendorConfig>")[0] + b"<vendorConfig>"
        await response.write(head)
        chunk = b"<pad>" + b"x" * 65536 + b"</pad>"
        for _ in range(-(-self.oversized_bytes // len(chunk))):  # at least oversized_bytes
            await response.write(chunk)
            self.bytes_sent += len(chunk)
        await response.write_eof()
        return response

    async def _trickle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/xml"})
        await response.prepare(request)
        for byte in body:
            await response.write(bytes([byte]))
            await asyncio.sleep(self.trickle_interval)
        await response.write_eof()
        return response


def _not_modified(request: web.Request, file: _File) -> bool:
    if (etag := request.headers.get("If-None-Match")) is not None:
        return file.etag in (e.strip() for e in etag.split(","))
    if (since := request.headers.get("If-Modified-Since")) is not None:
        try:
            return int(file.built) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


class TftpServer:
    """One node's TFTP-over-HTTP listener ("6970"); serves its cluster's files."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.port = 0  # the real port of "6970", kept across restarts once bound
        self.files: ClusterFiles | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.files is None:
            return  # attached once the cluster's nodes exist
        if self._runner is None:
            self._runner = web.AppRunner(self.files.app(), access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[-1][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
