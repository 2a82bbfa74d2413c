"""The lab's SNMP agent: CISCO-CCM-MIB for one node, SNMP v1/v2c over UDP on loopback.

It answers GET, GETNEXT and GETBULK from a sorted table of OIDs that is rebuilt whenever the
node's phones change; ccmPhoneTableStateId counts the changes, as CUCM's does
(reference/snmp-and-phones.md §1). v3 is left to the independent agent in the tests.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api

CCM = (1, 3, 6, 1, 4, 1, 9, 9, 156, 1)
PRODUCT_NAME = (*CCM, 1, 8, 1, 3)  # ccmProductName, indexed by ccmProductTypeIndex
PHONE = (*CCM, 2, 1, 1)  # ccmPhoneEntry
PHONE_COLUMNS = {"mac": 2, "status": 7, "product": 18, "name": 20, "active_load": 25}
GLOBAL = (*CCM, 5)  # ccmGlobalInfo
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
CUCM_SYS_OBJECT_ID = (1, 3, 6, 1, 4, 1, 9, 1, 1348)  # ciscoUCVirtualMachine

STATUS_CODES = {"registered": 2, "unregistered": 3, "rejected": 4, "partiallyregistered": 5}
_V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
_MAX_VARBINDS = 1000  # keep a GETBULK answer well inside one UDP datagram


class AgentFault(enum.Enum):
    NONE = "none"
    SILENT = "silent"  # never answers
    GARBAGE = "garbage"  # answers with bytes that are not SNMP
    NON_INCREASING = "non_increasing"  # GETNEXT/GETBULK hand back the OID asked about


@dataclass
class LabPhone:
    name: str  # SEP<MAC> or a soft client's device name
    product: str  # ccmProductName, e.g. "Cisco 7962"
    active_load: str
    status: str = "registered"


@dataclass(frozen=True)
class Snapshot:
    """The agent's view: sorted OIDs and their values, swapped whole on every change."""

    oids: tuple[tuple[int, ...], ...]
    values: tuple[Any, ...]


class CcmAgent(asyncio.DatagramProtocol):
    """SNMP v1/v2c agent answering for one simulated CUCM node."""

    def __init__(self, community: str, sys_name: str) -> None:
        self.community = community.encode()
        self.sys_name = sys_name
        self.fault = AgentFault.NONE
        self.requests = 0  # PDUs answered; tests count them to prove a walk was skipped
        self.bytes_in = self.bytes_out = 0  # UDP payloads of those PDUs (what a walk cost)
        self.phones: list[LabPhone] = []
        self.state_id = 0
        self._booted = time.time()
        self._transport: asyncio.DatagramTransport | None = None
        self._snapshot = Snapshot((), ())
        self.rebuild()

    # --- the node's state ----------------------------------------------------------------

    def restart(self) -> None:
        """The node rebooted: uptime and CallManager start time reset, the table is fresh."""
        # DateAndTime has a resolution of 0.1 s: a restart must show a different start time.
        self._booted = max(time.time(), self._booted + 0.1)
        self.state_id = 0
        self.rebuild()

    def changed(self) -> None:
        """A phone registered, unregistered, moved or changed: bump ccmPhoneTableStateId."""
        self.state_id += 1
        self.rebuild()

    def rebuild(self) -> None:
        entries: dict[tuple[int, ...], Any] = {}
        products = sorted({p.product for p in self.phones})
        product_index = {name: i for i, name in enumerate(products, start=1)}
        for name, index in product_index.items():
            entries[(*PRODUCT_NAME, index)] = _V2C.OctetString(name)
        counts = dict.fromkeys(STATUS_CODES.values(), 0)
        for row, phone in enumerate(self.phones, start=1):
            status = STATUS_CODES[phone.status]
            counts[status] += 1
            mac = bytes.fromhex(phone.name[3:15]) if phone.name.startswith("SEP") else b"\0" * 6
            columns = {
                "mac": _V2C.OctetString(mac),
                "status": _V2C.Integer(status),
                "product": _V2C.Unsigned32(product_index[phone.product]),
                "name": _V2C.OctetString(phone.name),
                "active_load": _V2C.OctetString(phone.active_load),
            }
            for column, value in columns.items():
                entries[(*PHONE, PHONE_COLUMNS[column], row)] = value
        start = _date_and_time(self._booted)
        entries.update(
            {
                (*GLOBAL, 5, 0): _V2C.Counter32(counts[2]),  # ccmRegisteredPhones
                (*GLOBAL, 6, 0): _V2C.Counter32(counts[3]),  # ccmUnregisteredPhones
                (*GLOBAL, 7, 0): _V2C.Counter32(counts[4]),  # ccmRejectedPhones
                (*GLOBAL, 20, 0): _V2C.OctetString(start),  # ccmCallManagerStartTime
                (*GLOBAL, 21, 0): _V2C.Integer(self.state_id),  # ccmPhoneTableStateId
                (*GLOBAL, 31, 0): _V2C.Counter32(counts[5]),  # ccmPartiallyRegisteredPhones
                SYS_OBJECT_ID: _V2C.ObjectIdentifier(CUCM_SYS_OBJECT_ID),
                SYS_NAME: _V2C.OctetString(self.sys_name),
                SYS_UPTIME: None,  # computed when asked
            }
        )
        oids = tuple(sorted(entries))
        self._snapshot = Snapshot(oids, tuple(entries[o] for o in oids))

    # --- the protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.fault is AgentFault.SILENT or self._transport is None:
            return
        if self.fault is AgentFault.GARBAGE:
            self._transport.sendto(b"\x30\x03\x02\x01" + b"\xff" * 16, addr)
            return
        try:
            answer = self._answer(data)
        except (PyAsn1Error, ValueError, KeyError):
            return  # not SNMP we understand: real agents drop it silently
        if answer is not None:
            self.requests += 1
            self.bytes_in += len(data)
            self.bytes_out += len(answer)
            self._transport.sendto(answer, addr)

    def _answer(self, data: bytes) -> bytes | None:
        version = int(api.decodeMessageVersion(data))
        if version not in api.PROTOCOL_MODULES:
            return None
        module = api.PROTOCOL_MODULES[version]
        message, _ = decoder.decode(data, asn1Spec=module.Message())
        if bytes(module.apiMessage.get_community(message)) != self.community:
            return None  # a wrong community gets no answer, so the client times out
        request = module.apiMessage.get_pdu(message)
        response = module.apiMessage.get_response(message)
        pdu = module.apiMessage.get_pdu(response)
        asked = [tuple(oid) for oid, _ in module.apiPDU.get_varbinds(request)]
        if request.isSameTypeWith(module.GetRequestPDU()):
            varbinds = [(oid, self._get(oid, module)) for oid in asked]
        elif request.isSameTypeWith(module.GetNextRequestPDU()):
            varbinds = [self._next(oid, module) for oid in asked]
            ended = [
                i
                for i, (_, value) in enumerate(varbinds, 1)
                if isinstance(value, _V2C.EndOfMibView)
            ]
            if version == api.SNMP_VERSION_1 and ended:
                # SNMPv1 has no endOfMibView: the end of the MIB is a noSuchName error.
                module.apiPDU.set_error_status(pdu, 2)
                module.apiPDU.set_error_index(pdu, ended[0])
                varbinds = [(oid, module.Null()) for oid in asked]
        elif version != api.SNMP_VERSION_1 and request.isSameTypeWith(module.GetBulkRequestPDU()):
            varbinds = self._bulk(request, asked, module)
        else:
            return None
        module.apiPDU.set_varbinds(pdu, varbinds)
        return bytes(encoder.encode(response))

    def _value(self, index: int, module: Any) -> Any:
        value = self._snapshot.values[index]
        if value is None:  # sysUpTime, in hundredths of a second since "boot"
            return module.TimeTicks(int((time.time() - self._booted) * 100) % 2**32)
        return value

    def _get(self, oid: tuple[int, ...], module: Any) -> Any:
        index = bisect.bisect_left(self._snapshot.oids, oid)
        if index < len(self._snapshot.oids) and self._snapshot.oids[index] == oid:
            return self._value(index, module)
        return _V2C.NoSuchInstance() if module is _V2C else module.Null()

    def _next(self, oid: tuple[int, ...], module: Any) -> tuple[Any, Any]:
        if self.fault is AgentFault.NON_INCREASING:
            return oid, module.Integer(0)
        index = bisect.bisect_right(self._snapshot.oids, oid)
        if index < len(self._snapshot.oids):
            return self._snapshot.oids[index], self._value(index, module)
        return oid, _V2C.EndOfMibView()

    def _bulk(self, request: Any, asked: Sequence[tuple[int, ...]], module: Any) -> list[Any]:
        non_repeaters = min(int(module.apiBulkPDU.get_non_repeaters(request)), len(asked))
        repetitions = int(module.apiBulkPDU.get_max_repetitions(request))
        varbinds = [self._next(oid, module) for oid in asked[:non_repeaters]]
        cursor = list(asked[non_repeaters:])
        for _ in range(repetitions):
            if not cursor or len(varbinds) + len(cursor) > _MAX_VARBINDS:
                break
            row = [self._next(oid, module) for oid in cursor]
            varbinds.extend(row)
            cursor = [oid for oid, _ in row]
        return varbinds


def _date_and_time(timestamp: float) -> bytes:
    """SNMPv2-TC DateAndTime, 11 octets, UTC."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return bytes(
        [
            moment.year >> 8,
            moment.year & 0xFF,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.microsecond // 100000,
            ord("+"),
            0,
            0,
        ]
    )


async def start_agent(agent: CcmAgent, address: str, port: int = 0) -> int:
    """Serve `agent` on UDP; returns the bound port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=(address, port))
    bound: int = transport.get_extra_info("sockname")[1]
    return bound


def stop_agent(agent: CcmAgent) -> None:
    if agent._transport is not None:
        agent._transport.close()
        agent._transport = None


# --- the phones a lab node has -----------------------------------------------------------

# (product name, active load, how many) per node by default: legacy phones, modern phones on
# new and on old firmware, soft clients, and models no catalogue knows.
DEFAULT_MIX: tuple[tuple[str, str, int], ...] = (
    ("Cisco 7962", "SCCP42.9-4-2SR3-1S", 8),
    ("Cisco 7942", "SIP42.9-4-2SR3-1S", 4),
    ("Cisco 7965", "SCCP45.9-4-2SR4-3S", 2),
    ("Cisco 6921", "SCCP69xx.9-4-1-3SR3", 3),
    ("Cisco 8945", "SCCP894x.9-4-2SR3-1", 1),
    ("Cisco 9971", "sip9971.9-4-2SR4-1", 2),
    ("Cisco IP Communicator", "CIPC-8-6-6-0", 1),
    ("Cisco 7841", "sip78xx.14-1-1-0001-125", 6),
    ("Cisco 7821", "sip78xx.11-0-1-11", 1),  # old firmware: no TLS 1.2 yet
    ("Cisco 8845", "sip8845_65.14-1-1-0001-125", 4),
    ("Cisco 8851", "sip88xx.10-3-2-16", 1),  # old firmware: no TLS 1.2 yet
    ("Cisco Unified Client Services Framework", "", 3),
    ("Cisco Webex Desk Pro", "RoomOS 11.5", 1),  # in no catalogue
)


def generate_phones(
    node_number: int, mix: Iterable[tuple[str, str, int]] = DEFAULT_MIX
) -> list[LabPhone]:
    """Phones registered to one node, with device names unique across the lab."""
    phones = []
    serial = 0
    for product, load, count in mix:
        for _ in range(count):
            serial += 1
            if product.startswith("Cisco Unified Client"):
                name = f"CSFUSER{node_number:02d}{serial:04d}"
            else:
                name = f"SEP{0x001B2C000000 + node_number * 0x10000 + serial:012X}"
            phones.append(LabPhone(name, product, load))
    return phones
