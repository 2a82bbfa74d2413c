"""The lab's RisPort70: `selectCmDeviceExt` on every node's 8443, over the cluster's phone table.

Where the formats come from:
- the request and response elements, their order and namespace: the RISService70 WSDL
  (`https://<node>:8443/realtimeservice2/services/RISService70?wsdl`; a copy is in Cisco
  DevNet's serviceability-python-zeep-samples, `schema/RISService70.wsdl`), document/literal,
  namespace `http://schemas.cisco.com/ast/soap`, SOAPAction the operation name;
- `selectCmDeviceExt` merges a device's records across nodes and keeps its latest
  registration (DevNet RisPort70 tutorial): one record per device, grouped by the node it is
  registered (or was last) on, with a `ReturnCode` per node;
- paging: at most 1000 devices a request (`MaxReturnedDevices`); the response carries an
  opaque `StateInfo` the client sends back for the next page; a client stops when a page is
  short or the StateInfo comes back unchanged (public clients, e.g. sieteunoseis/cisco-risport);
- HTTP Basic with an application user, 401 otherwise (Tomcat's answer);
- the rate limit: about 15 requests a minute for the whole cluster, answered with an HTTP 500
  SOAP fault "Exceeded allowed rate for Reatime information" (typo included; field reports and
  public clients, not a Cisco page: medium confidence).

The devices are the SNMP agents' phone rows (`CcmAgent.phones`), so the two inventories agree
unless a fault says otherwise. `hide_soft_clients_from_snmp` is the fault that makes them differ
the way real clusters do (SNMP's table without soft clients).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import enum
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from exporter.lab.snmp import CcmAgent, LabPhone

RISPORT_PATH = "/realtimeservice2/services/RISService70"
SOAP_NS = "http://schemas.cisco.com/ast/soap"
MAX_PAGE = 1000  # CmSelectionCriteria.MaxReturnedDevices is capped at 1000 per request
# The lab's application user. The password is recognisable: tests grep every output for it.
LAB_RISPORT_USER = "risport-app"
LAB_RISPORT_PASSWORD = "lab-risport-pw-5c3a"
RATE_LIMIT_FAULT = (
    "Exceeded allowed rate for Reatime information. Current allowed rate for realtime "
    "information is {limit} requests per minute. If problem persists, please contact system "
    "administrator."
)

# Catalogue names -> the numeric Model codes RisPort sends (typemodel enums; the same map as
# the exporter's bundled one, from sieteunoseis/cisco-risport lib/Model.js). A product with no
# code here is sent as a code no map knows, as CUCM does for a model newer than the client.
MODEL_CODES: Mapping[str, int] = {
    "Cisco 7940": 8,
    "Cisco 7960": 7,
    "Cisco 7942": 434,
    "Cisco 7962": 404,
    "Cisco 7945": 435,
    "Cisco 7965": 436,
    "Cisco 7975": 437,
    "Cisco 6921": 495,
    "Cisco 8945": 585,
    "Cisco 9971": 493,
    "Cisco IP Communicator": 30016,
    "Cisco 7821": 621,
    "Cisco 7841": 622,
    "Cisco 8841": 683,
    "Cisco 8845": 36224,
    "Cisco 8851": 684,
    "Cisco 8875": 36336,
    "Cisco Unified Client Services Framework": 503,
    "Cisco Webex Desk Pro": 36307,
}
UNMAPPED_MODEL = 65000  # what the lab sends for a product with no code above
STATUS_NAMES = {
    "registered": "Registered",
    "unregistered": "UnRegistered",
    "rejected": "Rejected",
    "partiallyregistered": "PartiallyRegistered",
    "unknown": "Unknown",
}


class RisportFault(enum.Enum):
    NONE = "none"
    STALL = "stall"  # accept the request, never answer
    GARBAGE = "garbage"  # 200 with a body that is not XML
    TRUNCATED = "truncated"  # a valid response cut off halfway
    OVERSIZED = "oversized"  # a 200 body far larger than any real page
    ENTITY_BOMB = "entity_bomb"  # "billion laughs" in a SOAP response
    RATE_LIMITED = "rate_limited"  # every request gets the rate-limit fault
    NODE_NOT_RESPONDING = "node_not_responding"  # other nodes: ReturnCode NodeNotResponding
    HIDE_SOFT_CLIENTS_FROM_SNMP = "hide_soft_clients_from_snmp"  # SNMP's view only: see below


class MonotonicClock:
    """The lab's clock for the rate limit; tests swap in one they advance themselves."""

    def __call__(self) -> float:
        return time.monotonic()


@dataclass
class RisportService:
    """One cluster's RisPort70, answered on every node of it (the limit is the cluster's)."""

    cluster: str
    agents: dict[str, CcmAgent] = field(default_factory=dict)  # node name -> its phone table
    username: str = LAB_RISPORT_USER
    password: str = LAB_RISPORT_PASSWORD
    limit_per_minute: int = 15
    fault: RisportFault = RisportFault.NONE
    clock: Callable[[], float] = field(default_factory=MonotonicClock)
    oversized_bytes: int = 64 * 1024 * 1024
    requests: int = 0  # every POST that passed authentication
    rejected: int = 0  # 401s
    faults: int = 0  # rate-limit faults sent
    bytes_in: int = 0  # request bodies of the pages answered (what a walk cost)
    bytes_out: int = 0  # the page bodies sent
    # Clock readings of every authenticated request: tests check the budget on any minute.
    times: list[float] = field(default_factory=list)
    _window: collections.deque[float] = field(default_factory=collections.deque)
    _hidden: dict[str, list[LabPhone]] = field(default_factory=dict)  # kept from SNMP's table
    _loop: asyncio.AbstractEventLoop | None = None

    def serve_on(self, app: web.Application, node: str, agent: CcmAgent) -> None:
        """Answer RisPort70 on this node's Tomcat (8443) for the whole cluster (called on the
        lab's loop, before the node's Tomcat starts)."""
        self.agents[node] = agent
        self._loop = asyncio.get_running_loop()
        app.router.add_post(RISPORT_PATH, self._handle)

    def set_fault(self, fault: RisportFault) -> None:
        """Switch a fault on (NONE heals); thread-safe, like the lab's other controls."""
        assert self._loop is not None, "the lab is not started"
        asyncio.run_coroutine_threadsafe(self._set_fault(fault), self._loop).result(10)

    async def _set_fault(self, fault: RisportFault) -> None:
        self.fault = fault
        hide = fault is RisportFault.HIDE_SOFT_CLIENTS_FROM_SNMP
        for node, agent in self.agents.items():
            if hide and node not in self._hidden:
                # Soft clients leave SNMP's ccmPhoneTable only; RisPort still reports them.
                self._hidden[node] = [p for p in agent.phones if _soft_client(p)]
                agent.phones = [p for p in agent.phones if not _soft_client(p)]
                agent.changed()
            elif not hide and node in self._hidden:
                agent.phones.extend(self._hidden.pop(node))
                agent.changed()

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use `clock` for the rate limit (a test's accelerated clock)."""
        self.clock = clock
        self._window.clear()

    # --- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request.headers.get("Authorization", "")):
            self.rejected += 1
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Cisco Unified Serviceability"'},
                text="<html><body>HTTP Status 401 - Unauthorized</body></html>",
                content_type="text/html",
            )
        body = await request.read()
        now = self.clock()
        self.requests += 1
        self.times.append(now)
        while self._window and self._window[0] <= now - 60.0:
            self._window.popleft()
        self._window.append(now)
        if self.fault is RisportFault.RATE_LIMITED or len(self._window) > self.limit_per_minute:
            self.faults += 1
            return _fault(RATE_LIMIT_FAULT.format(limit=self.limit_per_minute))
        if self.fault is RisportFault.STALL:
            await asyncio.sleep(3600)
        if self.fault is RisportFault.GARBAGE:
            return web.Response(body=b"\x00\xffnot xml at all", content_type="text/xml")
        if self.fault is RisportFault.ENTITY_BOMB:
            return web.Response(body=_ENTITY_BOMB, content_type="text/xml")
        if self.fault is RisportFault.OVERSIZED:
            return await self._oversized(request)
        text = body.decode("utf-8", "replace")
        if "selectCmDeviceExt" not in text:
            return _fault("Operation not supported by the lab: use selectCmDeviceExt")
        page = self._page(text)
        if self.fault is RisportFault.TRUNCATED:
            page = page[: len(page) // 2]
        self.bytes_in += len(body)
        self.bytes_out += len(page)
        return web.Response(body=page, content_type="text/xml", charset="utf-8")

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        )

    async def _oversized(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/xml"})
        await response.prepare(request)
        await response.write(_ENVELOPE_HEAD.encode())
        chunk = b"<!-- padding -->" * 4096
        sent = 0
        while sent < self.oversized_bytes:
            await response.write(chunk)
            sent += len(chunk)
        return response

    # --- the answer ----------------------------------------------------------------------

    def devices(self) -> list[tuple[str, LabPhone]]:
        """(node, phone) per device, one record each: the registered row wins (what
        selectCmDeviceExt's merge of records across nodes does), sorted by name."""
        chosen: dict[str, tuple[str, LabPhone]] = {}
        for node, agent in self.agents.items():
            for phone in (*agent.phones, *self._hidden.get(node, ())):
                held = chosen.get(phone.name)
                if held is None or (
                    phone.status == "registered" and held[1].status != "registered"
                ):
                    chosen[phone.name] = (node, phone)
        return [chosen[name] for name in sorted(chosen)]

    def _page(self, request: str) -> bytes:
        wanted = _int(_element(request, "MaxReturnedDevices"), MAX_PAGE)
        size = max(1, min(wanted, MAX_PAGE))
        returned = _int(_attribute(_element(request, "StateInfo"), "TotalItemsReturned"), 0)
        devices = self.devices()
        page = devices[returned : returned + size]
        total = returned + len(page)
        by_node: dict[str, list[LabPhone]] = {node: [] for node in self.agents}
        for node, phone in page:
            by_node[node].append(phone)
        down = self.fault is RisportFault.NODE_NOT_RESPONDING
        nodes = "".join(
            _node(name, phones, down and index > 0)
            for index, (name, phones) in enumerate(by_node.items())
        )
        state_id = sum(agent.state_id for agent in self.agents.values())
        state = (
            f'<StateInfo><Node Name="{next(iter(self.agents), "")}" SubsystemStartTime="0" '
            f'StateId="{state_id}" TotalItemsFound="{len(devices)}" '
            f'TotalItemsReturned="{total}"/></StateInfo>'
        )
        return (
            f"{_ENVELOPE_HEAD}<ns1:selectCmDeviceResponse xmlns:ns1={quoteattr(SOAP_NS)}>"
            "<ns1:selectCmDeviceReturn><ns1:SelectCmDeviceResult>"
            f"<ns1:TotalDevicesFound>{len(page)}</ns1:TotalDevicesFound>"
            f"<ns1:CmNodes>{nodes}</ns1:CmNodes></ns1:SelectCmDeviceResult>"
            f"<ns1:StateInfo>{escape(state)}</ns1:StateInfo>"
            f"</ns1:selectCmDeviceReturn></ns1:selectCmDeviceResponse>{_ENVELOPE_TAIL}"
        ).encode()


def _soft_client(phone: LabPhone) -> bool:
    return phone.product.startswith("Cisco Unified Client")


def _node(name: str, phones: list[LabPhone], not_responding: bool) -> str:
    if not_responding:
        return (
            "<ns1:item><ns1:ReturnCode>NodeNotResponding</ns1:ReturnCode>"
            f"<ns1:Name>{escape(name)}</ns1:Name><ns1:NoChange>false</ns1:NoChange>"
            "<ns1:CmDevices/></ns1:item>"
        )
    code = "Ok" if phones else "NotFound"
    devices = "".join(_device(name, phone) for phone in phones)
    return (
        f"<ns1:item><ns1:ReturnCode>{code}</ns1:ReturnCode><ns1:Name>{escape(name)}</ns1:Name>"
        f"<ns1:NoChange>false</ns1:NoChange><ns1:CmDevices>{devices}</ns1:CmDevices></ns1:item>"
    )


def _device(node: str, phone: LabPhone) -> str:
    model = MODEL_CODES.get(phone.product, UNMAPPED_MODEL)
    sip = phone.product.startswith(("Cisco 88", "Cisco 78", "Cisco Unified Client"))
    return (
        f"<ns1:item><ns1:Name>{escape(phone.name)}</ns1:Name>"
        "<ns1:DirNumber>1000-Registered</ns1:DirNumber><ns1:DeviceClass>Phone</ns1:DeviceClass>"
        f"<ns1:Model>{model}</ns1:Model><ns1:Product>{model}</ns1:Product>"
        f"<ns1:BoxProduct>0</ns1:BoxProduct><ns1:Httpd>Yes</ns1:Httpd>"
        "<ns1:RegistrationAttempts>0</ns1:RegistrationAttempts>"
        "<ns1:IsCtiControllable>true</ns1:IsCtiControllable><ns1:LoginUserId/>"
        f"<ns1:Status>{STATUS_NAMES.get(phone.status, 'Unknown')}</ns1:Status>"
        "<ns1:StatusReason>0</ns1:StatusReason><ns1:PerfMonObject>2</ns1:PerfMonObject>"
        "<ns1:DChannel>0</ns1:DChannel><ns1:Description>lab phone</ns1:Description>"
        "<ns1:H323Trunk><ns1:ConfigName/><ns1:TechPrefix/><ns1:Zone/><ns1:RemoteCmServer1/>"
        "<ns1:RemoteCmServer2/><ns1:RemoteCmServer3/><ns1:AltGkList/><ns1:ActiveGk/>"
        "<ns1:CallSignalAddr/><ns1:RasAddr/></ns1:H323Trunk>"
        "<ns1:TimeStamp>1764633600</ns1:TimeStamp>"
        f"<ns1:Protocol>{'SIP' if sip else 'SCCP'}</ns1:Protocol>"
        "<ns1:NumOfLines>1</ns1:NumOfLines><ns1:LinesStatus/>"
        f"<ns1:ActiveLoadID>{escape(phone.active_load)}</ns1:ActiveLoadID>"
        "<ns1:InactiveLoadID/><ns1:DownloadStatus>Unknown</ns1:DownloadStatus>"
        "<ns1:DownloadFailureReason/><ns1:DownloadServer/>"
        "<ns1:IPAddress><ns1:item><ns1:IP>192.0.2.10</ns1:IP><ns1:IPAddrType>ipv4</ns1:IPAddrType>"
        "<ns1:Attribute>Unknown</ns1:Attribute></ns1:item></ns1:IPAddress></ns1:item>"
    )


def _fault(text: str) -> web.Response:
    """An Axis 1.x SOAP fault, as Tomcat sends it: HTTP 500."""
    body = (
        f"{_ENVELOPE_HEAD}<soapenv:Fault><faultcode>soapenv:Server.generalException</faultcode>"
        f"<faultstring>{escape(text)}</faultstring><detail><ns1:hostname "
        'xmlns:ns1="http://xml.apache.org/axis/">cucm</ns1:hostname></detail>'
        f"</soapenv:Fault>{_ENVELOPE_TAIL}"
    )
    return web.Response(status=500, body=body.encode(), content_type="text/xml", charset="utf-8")


def _element(text: str, name: str) -> str:
    """The text of the first `<prefix:name>` in a request (the lab trusts its clients' XML no
    more than it has to: a regular expression, not a parser)."""
    match = re.search(rf"<(?:\w+:)?{name}(?:\s[^>]*)?>(.*?)</(?:\w+:)?{name}>", text, re.S)
    return match[1] if match else ""


def _attribute(text: str, name: str) -> str:
    unescaped = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    match = re.search(rf'\b{name}="(\d+)"', unescaped)
    return match[1] if match else ""


def _int(text: str, default: int) -> int:
    return int(text) if text.strip().isdigit() else default


_ENVELOPE_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
)
_ENVELOPE_TAIL = "</soapenv:Body></soapenv:Envelope>"
_ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body><x>&lol9;</x></soapenv:Body></soapenv:Envelope>"
).encode()


def risport_exporter_config(
    data: dict[str, Any], ca_file: Path, inventory: str, *, interval: float = 60.0
) -> dict[str, Any]:
    """The lab's exporter config (as data) with every cluster's inventory from RisPort70
    (`risport`) or from both sources (`both`), with the lab's application user."""
    timeout = min(50.0, interval * 0.8)
    data = {**data, "probes": {**data["probes"]}}
    data["probes"]["risport"] = {
        "interval": f"{interval:g}s",
        "timeout": f"{timeout:g}s",
        "jitter": "0s",
        # Under half the run: a request is started only if its timeout fits in what is left.
        "request_timeout": f"{min(5.0, timeout / 2):g}s",
        "ca_file": str(ca_file),
    }
    data["clusters"] = [
        {
            **cluster,
            "inventory": inventory,
            "risport": {"username": LAB_RISPORT_USER, "password": LAB_RISPORT_PASSWORD},
        }
        for cluster in data["clusters"]
    ]
    return data
