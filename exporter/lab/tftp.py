"""The lab's TFTP service over HTTP (CUCM serves its TFTP files on 6970 as well): each phone's
SEP<MAC>.cnf.xml and ConfigFileCacheList.txt, with switches per phone and per cluster.

Where the format comes from:
- `http://<tftp>:6970/<file>`, unauthenticated: usecallmanager.nz "HTTP Provisioning", and
  trustedsec/SeeYouCM-Thief, which downloads configuration files that way.
- ConfigFileCacheList.txt: a header row "Filename  Length(In Cache)  Build Time" and one row
  per cached file (Cisco TAC document 200408 "Retrieve Phone Configuration File from TFTP
  Server"; clients read the first whitespace-separated token of a row, as SeeYouCM-Thief does).
- SEP<MAC>.cnf.xml: the element layout of a CUCM 12.5 phone configuration file published in
  acaeti/friendly-waldo, and a CUCM 12 device configuration quoted in Jabber logs. The root
  element carries an undeclared `xsi:` prefix, as real files do (so a namespace-aware parser
  fails on it); devicePool/callManagerGroup/members/member[@priority]/callManager/
  processNodeName is the CallManager group, TVS/members/member the TVS list, loadInformation
  the configured firmware, directoryURL/secureDirectoryURL from the enterprise parameters
  "URL Directories" and "Secured Directory URL", and phoneServices the subscribed services
  (type="1" a Directories service).
- With TFTP encryption in the phone's security profile only SEP<MAC>.cnf.xml.enc.sgn exists.

The files are built from the lab's phone table (the nodes' SNMP rows), so what SNMP reports and
what the TFTP service serves always agree. Every node of a cluster serves the same files, as
CUCM's TFTP nodes do.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate, parsedate_to_datetime
from typing import Protocol

from aiohttp import web

TFTP_HTTP_PORT = 6970
TVS_PORT = 2445
_HEADER = "Filename  Length(In Cache)  Build Time"


class DirectoryMode(enum.Enum):
    """How a phone's configuration points it at the corporate directory."""

    # The defaults: directoryURL over HTTP and secureDirectoryURL over HTTPS; a phone that is
    # secure by default uses the secure one (so through TVS), with the built-in service.
    SECURE = "secure"
    # secureDirectoryURL emptied: the phone falls back to the plain directoryURL (8080).
    HTTP_URL = "http_url"
    # The recommended workaround: a Directories phone service on ccmcip over HTTP 8080.
    HTTP_SERVICE = "http_service"


class ConfigFault(enum.Enum):
    NONE = "none"
    MISSING = "missing"  # no file at all: 404, and not in ConfigFileCacheList.txt
    MALFORMED = "malformed"  # the file is cut short mid-element
    ENCRYPTED = "encrypted"  # only SEP<MAC>.cnf.xml.enc.sgn exists (TFTP encryption)
    OVERSIZED = "oversized"  # a valid start, then `oversized_bytes` of padding, streamed
    ENTITY_BOMB = "entity_bomb"  # "billion laughs" in a DTD
    TRICKLE = "trickle"  # the real file, one byte every `trickle_interval` seconds


@dataclass(frozen=True)
class PhoneSettings:
    """What the administrator configured for one phone (None: the cluster's default)."""

    directory: DirectoryMode = DirectoryMode.SECURE
    fault: ConfigFault = ConfigFault.NONE
    tvs: tuple[str, ...] | None = None  # node names, in priority order
    cm_group: tuple[str, ...] | None = None  # node names, in priority order


class _Phone(Protocol):
    name: str
    product: str
    active_load: str
    status: str


class _Node(Protocol):
    name: str
    host: str

    @property
    def phones(self) -> Sequence[_Phone]: ...


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

    def _registered(self) -> dict[str, tuple[_Node, _Phone]]:
        """Each SEP device once: the node it is registered to wins over a stale row."""
        chosen: dict[str, tuple[_Node, _Phone]] = {}
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
        self, phone_name: str, registered: dict[str, tuple[_Node, _Phone]] | None = None
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
            body = _ENTITY_BOMB
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


_ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE device [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
    )
    + b']><device xsi:type="axl:XIPPhone"><loadInformation>&i;</loadInformation></device>'
)


def render_config(
    phone: _Phone, directory: DirectoryMode, cm_group: Sequence[str], tvs: Sequence[str]
) -> bytes:
    """One phone's SEP<MAC>.cnf.xml in CUCM's element layout (abridged to the elements a
    12.5 file carries around the ones that matter; see the module docstring)."""
    first = cm_group[0]
    members = "".join(
        f'<member priority="{i}"><callManager><name>{host.split(".")[0]}</name>'
        f"<description>{host}</description><ports><ethernetPhonePort>2000"
        "</ethernetPhonePort><sipPort>5060</sipPort><securedSipPort>5061</securedSipPort>"
        "<mgcpPorts><listen>2427</listen><keepAlive>2428</keepAlive></mgcpPorts></ports>"
        f"<processNodeName>{host}</processNodeName></callManager></member>"
        for i, host in enumerate(cm_group)
    )
    tvs_members = "".join(
        f'<member priority="{i}"><port>{TVS_PORT}</port><address>{host}</address></member>'
        for i, host in enumerate(tvs)
    )
    secure_directory = (
        ""
        if directory is DirectoryMode.HTTP_URL
        else f"https://{first}:8443/ccmcip/xmldirectory.jsp"
    )
    services = [
        ("1", "Missed Calls", "Application:Cisco/MissedCalls"),
        ("1", "Received Calls", "Application:Cisco/ReceivedCalls"),
        ("1", "Placed Calls", "Application:Cisco/PlacedCalls"),
        ("1", "Personal Directory", "Application:Cisco/PersonalDirectory"),
        ("1", "Corporate Directory", "Application:Cisco/CorporateDirectory"),
        ("2", "Voicemail", "Application:Cisco/Voicemail"),
    ]
    if directory is DirectoryMode.HTTP_SERVICE:
        services.append(
            ("1", "Corporate Directory (HTTP)", f"http://{first}:8080/ccmcip/xmldirectoryinput.jsp")
        )
    service_xml = "".join(
        f'<phoneService type="{kind}" category="0"><name>{name}</name><url>{url}</url>'
        "<vendor></vendor><version></version></phoneService>"
        for kind, name, url in services
    )
    protocol = "SCCP" if phone.active_load.upper().startswith("SCCP") else "SIP"
    mac = phone.name[3:]
    uuid = hashlib.md5(phone.name.encode(), usedforsecurity=False).hexdigest()
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<device xsi:type="axl:XIPPhone" ctiid="{int(mac[-4:], 16)}" '
        f'uuid="{{{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}}}">\n'
        f"<fullConfig>true</fullConfig>\n<deviceProtocol>{protocol}</deviceProtocol>\n"
        "<sshUserId></sshUserId>\n<sshPassword></sshPassword>\n<ipAddressMode>0</ipAddressMode>\n"
        "<allowAutoConfig>true</allowAutoConfig>\n<tzdata><tzolsonversion>2019c</tzolsonversion>"
        "<tzupdater>tzupdater.jar</tzupdater></tzdata>\n"
        '<devicePool uuid="{1b1b9eb6-7803-11d3-bdf0-00108302ead1}"><revertPriority>0'
        "</revertPriority><name>Default</name><dateTimeSetting><name>CMLocal</name>"
        "<dateTemplate>M/D/Y</dateTemplate><timeZone>Greenwich Standard Time</timeZone>"
        "<olsonTimeZone>Etc/GMT</olsonTimeZone></dateTimeSetting>"
        f"<callManagerGroup><name>Default</name><tftpDefault>true</tftpDefault><members>"
        f"{members}</members></callManagerGroup>"
        "<connectionMonitorDuration>120</connectionMonitorDuration></devicePool>\n"
        f"<TVS><members>{tvs_members}</members></TVS>\n"
        "<MissedCallLoggingOption>10</MissedCallLoggingOption>\n"
        f"<loadInformation>{phone.active_load}</loadInformation>\n"
        "<vendorConfig><disableSpeaker>false</disableSpeaker><webAccess>1</webAccess>"
        "</vendorConfig>\n"
        "<versionStamp>1607617020-a5d8d03a-3a4e-4f7b-a1e1-8a7c18dae5c1</versionStamp>\n"
        f"<userLocale><name>English_United_States</name></userLocale>\n"
        f"<directoryURL>http://{first}:8080/ccmcip/xmldirectory.jsp</directoryURL>\n"
        "<idleURL></idleURL>\n"
        f"<informationURL>http://{first}:8080/ccmcip/GetTelecasterHelpText.jsp</informationURL>\n"
        "<messagesURL></messagesURL>\n<proxyServerURL></proxyServerURL>\n"
        f"<servicesURL>http://{first}:8080/ccmcip/getservicesmenu.jsp</servicesURL>\n"
        f"<secureAuthenticationURL>https://{first}:8443/ccmcip/authenticate.jsp"
        "</secureAuthenticationURL>\n"
        f"<secureDirectoryURL>{secure_directory}</secureDirectoryURL>\n"
        "<secureIdleURL></secureIdleURL>\n"
        f"<secureInformationURL>https://{first}:8443/ccmcip/GetTelecasterHelpText.jsp"
        "</secureInformationURL>\n<secureMessagesURL></secureMessagesURL>\n"
        f"<secureServicesURL>https://{first}:8443/ccmcip/getservicesmenu.jsp</secureServicesURL>\n"
        f'<phoneServices useHTTPS="true"><provisioning>0</provisioning>{service_xml}'
        "</phoneServices>\n"
        "<certHash></certHash><encrConfig>false</encrConfig>\n"
        "</device>\n"
    )
    return text.encode()


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


class _NodeView:
    def __init__(self, node: object) -> None:
        self._node = node
        self.name: str = node.name  # type: ignore[attr-defined]
        self.host: str = node.host  # type: ignore[attr-defined]

    @property
    def phones(self) -> Sequence[_Phone]:
        return self._node.agent.phones  # type: ignore[attr-defined, no-any-return]


async def attach_config_files(nodes: Mapping[tuple[str, str], object]) -> dict[str, ClusterFiles]:
    """One ClusterFiles per cluster, served on every node's "6970"; the nodes are LabNodes
    (a `tftp` TftpServer, an SNMP `agent` with the phone table)."""
    by_cluster: dict[str, list[object]] = {}
    for (cluster, _), node in nodes.items():
        by_cluster.setdefault(cluster, []).append(node)
    files: dict[str, ClusterFiles] = {}
    for cluster, members in by_cluster.items():
        views = [_NodeView(n) for n in members]
        files[cluster] = ClusterFiles(lambda views=views: views)  # type: ignore[misc]
        for node in members:
            server: TftpServer = node.tftp  # type: ignore[attr-defined]
            server.files = files[cluster]
            await server.start()
        # Out of the box, two phones per node use the HTTP workaround (the first two 7962s):
        # one subscribed to the HTTP directory service, one with its secure URL emptied.
        for view in views:
            legacy = [p.name for p in view.phones if p.product == "Cisco 7962"]
            modes = (DirectoryMode.HTTP_SERVICE, DirectoryMode.HTTP_URL)
            for name, mode in zip(legacy, modes, strict=False):
                files[cluster].configure(name, directory=mode)
    return files


def config_route(
    files_of: Callable[[str], ClusterFiles],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The control API's POST /phones/{phone}/config: {"directory", "fault", "tvs",
    "cm_group"} (each optional; tvs and cm_group are lists of node names, [] for the
    default). `phone` "all" changes every SEP phone of the cluster (`?cluster=`, default
    "lab"): e.g. subscribe them all to the HTTP directory service."""

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            files = files_of(request.query.get("cluster", "lab"))
            changes: dict[str, object] = {}
            if "directory" in body:
                changes["directory"] = DirectoryMode(body["directory"])
            if "fault" in body:
                changes["fault"] = ConfigFault(body["fault"])
            for key in ("tvs", "cm_group"):
                if key in body:
                    changes[key] = tuple(str(n) for n in body[key]) or None
            phone = request.match_info["phone"]
            names = sorted(files.phone_names()) if phone == "all" else [phone]
            for name in names:
                files.configure(name, **changes)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise web.HTTPBadRequest(text=f"bad phone config request: {error}\n") from None
        return web.json_response({"phones": len(names), **body})

    return handler
