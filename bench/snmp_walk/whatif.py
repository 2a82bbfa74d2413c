"""What-if session for `--what-if` rows: SNMP v2c without pysnmp's engine or pyasn1.

`RawV2cSession` implements the probe's network seam (`exporter.probes.snmp.SnmpSession`) and is
handed to the unchanged `SnmpProbe` through its `session` argument, so everything above the
wire (the scalar check, the lock-step walk, building the rows) stays the exporter's own code.
The request is encoded and the response decoded by the few lines of BER below; the session
matches request ids, checks the community, and handles timeouts and retries. It is a sketch of
the change suggested in bench/README.md, not production code: v2c only, no fuzzing, and value
types the probe never reads decode to None.

The exporter does not use it; it exists to measure what that change would buy.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

from pysnmp.proto import rfc1905

from exporter.probes.snmp import SnmpError
from exporter.results import SnmpOutcome

Oid = tuple[int, ...]
Varbinds = list[tuple[Oid, Any]]

# --- SNMP v2c with a minimal BER codec ---------------------------------------------------------

GET, RESPONSE, GETBULK = 0xA0, 0xA2, 0xA5
_EXCEPTIONS: dict[int, Any] = {
    0x80: rfc1905.noSuchObject,
    0x81: rfc1905.noSuchInstance,
    0x82: rfc1905.endOfMibView,
}
_UNSIGNED = {0x41, 0x42, 0x43, 0x46}  # Counter32, Gauge32/Unsigned32, TimeTicks, Counter64
_OCTETS = {0x04, 0x40, 0x44}  # OCTET STRING, IpAddress, Opaque


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(oid: Oid) -> bytes:
    encoded = bytearray([oid[0] * 40 + oid[1]])
    for arc in oid[2:]:
        septets = [arc & 0x7F]
        arc >>= 7
        while arc:
            septets.append(0x80 | (arc & 0x7F))
            arc >>= 7
        encoded += bytes(reversed(septets))
    return _tlv(0x06, bytes(encoded))


def encode_request(
    community: bytes, tag: int, request_id: int, first: int, second: int, oids: Sequence[Oid]
) -> bytes:
    """A v2c GetRequest (first, second = 0, 0) or GetBulkRequest (non-repeaters, max-reps)."""
    varbinds = b"".join(_tlv(0x30, _oid(oid) + b"\x05\x00") for oid in oids)
    fields = _integer(request_id) + _integer(first) + _integer(second)
    pdu = _tlv(tag, fields + _tlv(0x30, varbinds))
    return _tlv(0x30, _integer(1) + _tlv(0x04, community) + pdu)


def _header(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the TLV at `at`; ValueError if the
    value would run past the datagram (IndexError if the header itself does)."""
    tag, size = data[at], data[at + 1]
    at += 2
    if size & 0x80:
        count = size & 0x7F
        if at + count > len(data):
            raise ValueError("truncated BER length")
        size = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + size > len(data):
        raise ValueError("BER value runs past the datagram")
    return tag, at, at + size


def _decode_oid(body: bytes) -> Oid:
    first = body[0]
    arcs = [first // 40, first % 40] if first < 80 else [2, first - 80]
    arc = 0
    for octet in body[1:]:
        arc = arc << 7 | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(arc)
            arc = 0
    return tuple(arcs)


def _value(tag: int, body: bytes) -> Any:
    if tag in _OCTETS:
        return body
    if tag == 0x02:
        return int.from_bytes(body, "big", signed=True)
    if tag in _UNSIGNED:
        return int.from_bytes(body, "big")
    if tag == 0x06:
        return _decode_oid(body)
    return _EXCEPTIONS.get(tag)  # NULL and anything unknown: None


def decode_response(data: bytes) -> tuple[int, bytes, int, int, Varbinds]:
    """(request id, community, error status, error index, varbinds) of a v2c Response."""
    _, at, _ = _header(data, 0)  # Message SEQUENCE
    _, at, end = _header(data, at)  # version
    _, at, end = _header(data, end)  # community
    community = data[at:end]
    tag, at, _ = _header(data, end)
    if tag != RESPONSE:
        raise ValueError(f"PDU tag {tag:#x} is not a Response")
    numbers = []
    for _ in range(3):
        _, at, end = _header(data, at)
        numbers.append(int.from_bytes(data[at:end], "big", signed=True))
        at = end
    _, at, list_end = _header(data, at)
    varbinds: Varbinds = []
    while at < list_end:
        _, at, _ = _header(data, at)  # VarBind SEQUENCE
        _, at, end = _header(data, at)
        oid = _decode_oid(data[at:end])
        tag, at, end = _header(data, end)
        varbinds.append((oid, _value(tag, data[at:end])))
        at = end
    return numbers[0], community, numbers[1], numbers[2], varbinds


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[tuple[int, int, Varbinds]]] = {}
        self.community = b""

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            request_id, community, status, index, varbinds = decode_response(data)
        except (ValueError, IndexError):
            return  # not a v2c Response: dropped, the request times out
        future = self.waiting.pop(request_id, None)
        if future is not None and not future.done() and community == self.community:
            future.set_result((status, index, varbinds))


class RawV2cSession:
    """SnmpSession for v2c over a connected UDP socket, one request in flight at a time."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        replies: _Replies,
        request_timeout: float,
        retries: int,
    ) -> None:
        self._transport = transport
        self._replies = replies
        self._timeout = request_timeout
        self._retries = retries
        self._ids = itertools.count(1)
        self.requests = 0

    @classmethod
    async def create(
        cls, address: str, port: int, community: str, request_timeout: float, retries: int = 0
    ) -> RawV2cSession:
        loop = asyncio.get_running_loop()
        transport, replies = await loop.create_datagram_endpoint(
            _Replies, remote_addr=(address, port)
        )
        replies.community = community.encode()
        return cls(transport, replies, request_timeout, retries)

    def close(self) -> None:
        self._transport.close()

    async def get(self, oids: Sequence[Oid]) -> Varbinds:
        return await self._ask(GET, 0, 0, oids)

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> Varbinds:
        return await self._ask(GETBULK, 0, max_repetitions, oids)

    async def _ask(self, tag: int, first: int, second: int, oids: Sequence[Oid]) -> Varbinds:
        self.requests += 1
        loop = asyncio.get_running_loop()
        for _ in range(self._retries + 1):
            request_id = next(self._ids) & 0x7FFFFFFF
            future: asyncio.Future[tuple[int, int, Varbinds]] = loop.create_future()
            self._replies.waiting[request_id] = future
            message = encode_request(self._replies.community, tag, request_id, first, second, oids)
            self._transport.sendto(message)
            try:
                status, index, varbinds = await asyncio.wait_for(future, self._timeout)
            except TimeoutError:
                self._replies.waiting.pop(request_id, None)
                continue
            if status:
                raise SnmpError(SnmpOutcome.AGENT_ERROR, f"agent error {status} at {index}")
            return varbinds
        raise SnmpError(SnmpOutcome.TIMEOUT, "no SNMP response before the timeout")
