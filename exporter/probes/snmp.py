"""The SNMP probe: phone inventory from CISCO-CCM-MIB, walked only when it changed.

Every poll reads the cheap scalars (phone counts, ccmPhoneTableStateId,
ccmCallManagerStartTime, sysUpTime). ccmPhoneTable is walked only when the state id or the
start time moved since the last complete walk, and then only the four columns needed, in
lock-step GETBULKs of `max_repetitions` rows, as Cisco's agent limits ask
(reference/snmp-and-phones.md §1.5, §1.7).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import datetime as dt
import functools
import hashlib
import itertools
import math
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyasn1.type import univ
from pysnmp.entity import config as snmp_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_NONE,
    USM_PRIV_CFB128_AES,
    USM_PRIV_NONE,
    CommunityData,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902, rfc1905

from exporter.config import NodeConfig, SnmpCredentials, SnmpProbeConfig
from exporter.results import (
    PHONE_STATUSES,
    NodeScalars,
    PhoneRow,
    PhoneTable,
    SnmpOutcome,
    SnmpProbeResult,
)
from exporter.timing import Deadline

__all__ = ["SnmpError", "SnmpProbe", "SnmpSession", "decode_date_and_time"]

Oid = tuple[int, ...]

_CCM = (1, 3, 6, 1, 4, 1, 9, 9, 156, 1)
_GLOBAL = (*_CCM, 5)
SCALARS: Mapping[str, Oid] = {
    "registered": (*_GLOBAL, 5, 0),  # ccmRegisteredPhones (a "Counter32" that is a gauge)
    "unregistered": (*_GLOBAL, 6, 0),
    "rejected": (*_GLOBAL, 7, 0),
    "start_time": (*_GLOBAL, 20, 0),  # ccmCallManagerStartTime
    "state_id": (*_GLOBAL, 21, 0),  # ccmPhoneTableStateId
    "partially_registered": (*_GLOBAL, 31, 0),
    "sys_uptime": (1, 3, 6, 1, 2, 1, 1, 3, 0),
}
PRODUCT_NAMES: Oid = (*_CCM, 1, 8, 1, 3)  # ccmProductName, by ccmProductTypeIndex
_PHONE = (*_CCM, 2, 1, 1)
PHONE_COLUMNS: Mapping[str, Oid] = {
    "status": (*_PHONE, 7),  # ccmPhoneStatus
    "product": (*_PHONE, 18),  # ccmPhoneProductTypeIndex
    "name": (*_PHONE, 20),  # ccmPhoneName
    "active_load": (*_PHONE, 25),  # ccmPhoneActiveLoadID
}

_AUTH_FAILURES = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.DecryptionError,
    errind.UnknownSecurityName,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)


class SnmpError(Exception):
    def __init__(self, outcome: SnmpOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class SnmpSession(Protocol):
    """The network seam: what the probe needs from an SNMP client."""

    requests: int

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]: ...

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]: ...


class PysnmpSession:
    """SnmpSession over pysnmp's native command generators, on the daemon's one engine.

    Not hlapi's get_cmd/bulk_cmd: those resolve every request OID in pysnmp's MIB view and
    re-configure the target each time, about half of the client's CPU per request in a walk
    whose OIDs are always new (bench/README.md, "SNMP phone-table walk").

    The target's row in the engine's SNMP-TARGET-MIB exists only while the session is open:
    a row is ~18 KB of pysnmp objects, 18 MB at a thousand nodes if each node kept one between
    its polls (bench/README.md, "Scale"). `close()` removes it.
    """

    def __init__(self, engine: SnmpEngine, auth: Any, target: UdpTransportTarget) -> None:
        self._engine = engine
        self._target_name = f"cucm-exporter-{next(_TARGET_NUMBERS)}"
        snmp_config.add_target_address(
            engine, self._target_name, target.TRANSPORT_DOMAIN, target.transport_address,
            _parameters(engine, auth, target), target.timeout * 100, target.retries,
            target.tagList,
        )  # fmt: skip
        self.requests = 0

    def close(self) -> None:
        """Forget the target. Retries of a request still pending do not need it (pysnmp keeps
        their transport details), so this is safe even when a deadline cut the poll short."""
        snmp_config.delete_target_address(self._engine, self._target_name)

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        self.requests += 1
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        cmdgen.GetCommandGenerator().send_varbinds(
            self._engine, self._target_name, None, b"", _varbinds(oids), _settle, future
        )
        return _check(await future)

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]:
        self.requests += 1
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        # SingleRun: one request, one answer (BulkCommandGenerator would walk on by itself).
        cmdgen.BulkCommandGeneratorSingleRun().send_varbinds(
            self._engine, self._target_name, None, b"", 0, max_repetitions,
            _varbinds(oids), _settle, future,
        )  # fmt: skip
        return _check(await future)


_LCD = CommandGeneratorLcdConfigurator()
_TARGET_NUMBERS = itertools.count(1)
_PARAMETERS_CONTEXT = "cucm_exporter_target_parameters"


def _parameters(engine: SnmpEngine, auth: Any, target: UdpTransportTarget) -> str:
    """The engine's target parameters for `auth`, with the community or v3 user and the UDP
    transport installed on first use (by pysnmp's own configurator, which knows every v3
    option); only the target addresses are ours to add and remove."""
    known: dict[tuple[Any, ...], str] = engine.get_user_context(_PARAMETERS_CONTEXT) or {}
    key = (auth.securityName, auth.security_level, auth.message_processing_model)  # as pysnmp's
    if key not in known:
        address, parameters = _LCD.configure(engine, auth, target, b"")
        snmp_config.delete_target_address(engine, address)  # the configurator's own: unused
        known[key] = parameters
        engine.set_user_context(**{_PARAMETERS_CONTEXT: known})
    return known[key]


_NULL = univ.Null("")


def _varbinds(oids: Sequence[Oid]) -> list[tuple[Any, Any]]:
    return [(rfc1902.ObjectName(oid), _NULL) for oid in oids]


def _settle(
    engine: Any,
    handle: Any,
    indication: Any,
    status: Any,
    index: Any,
    varbinds: Any,
    future: asyncio.Future[tuple[Any, Any, Any, Any]],
) -> None:
    if not future.done():  # the probe's deadline may have given up on it already
        future.set_result((indication, status, index, varbinds))


def _check(reply: tuple[Any, Any, Any, Any]) -> list[tuple[Oid, Any]]:
    indication, status, index, varbinds = reply
    if indication:
        if isinstance(indication, errind.RequestTimedOut):
            raise SnmpError(SnmpOutcome.TIMEOUT, "no SNMP response before the timeout")
        if isinstance(indication, _AUTH_FAILURES):
            raise SnmpError(SnmpOutcome.AUTH_ERROR, f"SNMPv3 security: {indication}")
        raise SnmpError(SnmpOutcome.BAD_RESPONSE, str(indication))
    if status:
        raise SnmpError(SnmpOutcome.AGENT_ERROR, f"agent error {status.prettyPrint()} at {index}")
    return [(tuple(name), value) for name, value in varbinds]


def _is_end(value: Any) -> bool:
    return isinstance(value, rfc1905.EndOfMibView | rfc1905.NoSuchObject | rfc1905.NoSuchInstance)


def decode_date_and_time(octets: bytes) -> float | None:
    """SNMPv2-TC DateAndTime (8 or 11 octets) as unix seconds; None if absent or invalid."""
    if len(octets) not in (8, 11):
        return None
    year = octets[0] << 8 | octets[1]
    offset = dt.timedelta()
    if len(octets) == 11:
        sign = -1 if octets[8] == ord("-") else 1
        offset = sign * dt.timedelta(hours=octets[9], minutes=octets[10])
    try:
        local = dt.datetime(
            year, octets[2], octets[3], octets[4], octets[5], min(octets[6], 59),
            octets[7] * 100000, tzinfo=dt.timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None
    return local.timestamp()


@dataclass(frozen=True, slots=True)
class _Walk:
    state_id: int
    start_time: float | None
    phones: PhoneTable
    walked_at: float


class SnmpProbe:
    """The probe, with what must outlive one run: the engine and the last walk per node."""

    def __init__(self) -> None:
        self._engines: dict[tuple[int, str], SnmpEngine] = {}
        self._walks: dict[tuple[str, int, str], _Walk] = {}

    async def aclose(self) -> None:
        """Release the sockets of the engines this event loop made (call before it ends)."""
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._engines if k[0] == loop]:
            self._engines.pop(key).close_dispatcher()

    async def __call__(
        self,
        node: NodeConfig,
        settings: SnmpProbeConfig,
        deadline: Deadline,
        session: SnmpSession | None = None,
    ) -> SnmpProbeResult:
        credentials = node.snmp
        if credentials is None:
            return SnmpProbeResult(SnmpOutcome.BAD_RESPONSE, detail="no SNMP credentials")
        port = node.connect_port(settings.port)
        key = (node.connect_address, port, _fingerprint(credentials))
        if session is not None:
            return await self._poll_within(session, settings, key, deadline)
        try:
            opened = await self._session(node.connect_address, port, credentials, settings)
        except SnmpError as error:
            return SnmpProbeResult(error.outcome, detail=error.detail)
        try:
            return await self._poll_within(opened, settings, key, deadline)
        finally:
            opened.close()

    async def _poll_within(
        self,
        session: SnmpSession,
        settings: SnmpProbeConfig,
        key: tuple[str, int, str],
        deadline: Deadline,
    ) -> SnmpProbeResult:
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await self._poll(session, settings, key)
        except SnmpError as error:
            return SnmpProbeResult(error.outcome, requests=session.requests, detail=error.detail)
        except TimeoutError:
            return SnmpProbeResult(
                SnmpOutcome.TIMEOUT, requests=session.requests, detail="the probe deadline ran out"
            )

    async def _poll(
        self, session: SnmpSession, settings: SnmpProbeConfig, key: tuple[str, int, str]
    ) -> SnmpProbeResult:
        scalars = await read_scalars(session)
        previous = self._walks.get(key)
        if (
            previous is not None
            and previous.state_id == scalars.state_id
            and previous.start_time == scalars.callmanager_start
        ):
            # Nothing was added, removed or changed since the last walk: skip the costly part.
            return SnmpProbeResult(
                SnmpOutcome.OK,
                scalars=scalars,
                phones=previous.phones,
                walked_at=previous.walked_at,
                requests=session.requests,
            )
        total = scalars.registered + scalars.unregistered + scalars.rejected
        phones = await walk_phone_table(session, settings.max_repetitions, expected_rows=total)
        walk = _Walk(scalars.state_id, scalars.callmanager_start, phones, time.time())
        self._walks[key] = walk
        _release_heap()
        return SnmpProbeResult(
            SnmpOutcome.OK,
            scalars=scalars,
            phones=phones,
            walked=True,
            walked_at=walk.walked_at,
            requests=session.requests,
        )

    async def _session(
        self, address: str, port: int, credentials: SnmpCredentials, settings: SnmpProbeConfig
    ) -> PysnmpSession:
        # An engine must not outlive or straddle event loops (pysnmp hangs): one per loop and
        # per credentials, so a v3 user's keys are never mixed up with another's.
        fingerprint = _fingerprint(credentials)
        engine_key = (id(asyncio.get_running_loop()), fingerprint)
        engine = self._engines.get(engine_key)
        if engine is None:
            # Costs ~40 ms of CPU (MIB builder), hence kept for the life of the loop.
            engine = self._engines[engine_key] = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(
                (address, port), timeout=settings.request_timeout, retries=settings.retries
            )
        except (PySnmpError, socket.gaierror) as error:
            raise SnmpError(SnmpOutcome.DNS_ERROR, f"cannot resolve {address}: {error}") from None
        return PysnmpSession(engine, _auth(credentials), target)


async def read_scalars(session: SnmpSession) -> NodeScalars:
    values = dict(
        zip(SCALARS, [v for _, v in await session.get(list(SCALARS.values()))], strict=True)
    )

    def number(name: str) -> int | None:
        value = values[name]
        return None if _is_end(value) or not _numeric(value) else int(value)

    registered, state_id, uptime = number("registered"), number("state_id"), number("sys_uptime")
    if registered is None or state_id is None or uptime is None:
        raise SnmpError(
            SnmpOutcome.BAD_RESPONSE,
            "the agent does not serve CISCO-CCM-MIB (is the Cisco CallManager SNMP service on?)",
        )
    start = values["start_time"]
    return NodeScalars(
        registered=registered,
        unregistered=number("unregistered") or 0,
        rejected=number("rejected") or 0,
        partially_registered=number("partially_registered"),
        state_id=state_id,
        callmanager_start=None if _is_end(start) else decode_date_and_time(bytes(start)),
        # Rounded: sysUpTime read a few milliseconds later must not look like a restart.
        boot_time=float(round(time.time() - uptime / 100)),
    )


def _numeric(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


async def walk_phone_table(
    session: SnmpSession, max_repetitions: int, expected_rows: int
) -> PhoneTable:
    products = await walk_columns(session, {"product": PRODUCT_NAMES}, max_repetitions, 10_000)
    # Bound the walk by what the scalars announced, with room for phones that appear meanwhile.
    limit = math.ceil((expected_rows * 2 + 200) / max_repetitions) + 10
    columns = await walk_columns(session, PHONE_COLUMNS, max_repetitions, limit)
    names = {index: sys.intern(_text(value)) for index, value in products["product"].items()}

    def row(index: Oid, name: Any) -> PhoneRow:
        status = columns["status"].get(index)
        product_index = columns["product"].get(index)
        return PhoneRow(
            name=_text(name),
            status=PHONE_STATUSES.get(int(status) if status is not None else 1, "unknown"),
            product=names.get((int(product_index),), "") if product_index is not None else "",
            # Every node shares a handful of loads: keep one string of each across nodes.
            active_load=sys.intern(_text(columns["active_load"].get(index, b""))),
        )

    return PhoneTable.of(row(index, name) for index, name in columns["name"].items())


async def walk_columns(
    session: SnmpSession, columns: Mapping[str, Oid], max_repetitions: int, max_requests: int
) -> dict[str, dict[Oid, Any]]:
    """Walk several table columns side by side with GETBULK; rows keyed by index suffix."""
    cursor = dict(columns)
    rows: dict[str, dict[Oid, Any]] = {name: {} for name in columns}
    for _ in range(max_requests):
        if not cursor:
            return rows
        names = list(cursor)
        reply = await session.bulk([cursor[n] for n in names], max_repetitions)
        if not reply:
            raise SnmpError(SnmpOutcome.BAD_RESPONSE, "an empty GETBULK response")
        finished: set[str] = set()
        for position, (oid, value) in enumerate(reply):
            name = names[position % len(names)]  # GETBULK answers row by row
            if name in finished:
                continue
            prefix = columns[name]
            if _is_end(value) or oid[: len(prefix)] != prefix:
                finished.add(name)
                continue
            if oid <= cursor[name]:
                raise SnmpError(
                    SnmpOutcome.NON_INCREASING, f"the agent answered {oid} after {cursor[name]}"
                )
            rows[name][oid[len(prefix) :]] = value
            cursor[name] = oid
        for name in finished:
            cursor.pop(name, None)
    raise SnmpError(
        SnmpOutcome.BAD_RESPONSE, f"the walk did not end within {max_requests} requests"
    )


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to do


def _release_heap() -> None:
    """Give the memory a table walk churned through back to the system.

    Decoding thousands of varbinds leaves glibc's heap with free pages it keeps by default;
    at a thousand nodes that is tens of MB of resident memory doing nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", errors="replace") if value is not None else ""


def _auth(credentials: SnmpCredentials) -> CommunityData | UsmUserData:
    if credentials.version == "2c":
        community = credentials.community_value
        assert community is not None  # the config model guarantees it
        return CommunityData(community.get_secret_value(), mpModel=1)
    auth, priv = credentials.auth_value, credentials.priv_value
    auth_protocol = {"SHA": USM_AUTH_HMAC96_SHA, "SHA256": USM_AUTH_HMAC192_SHA256}
    return UsmUserData(
        credentials.username or "",
        authKey=auth.get_secret_value() if auth else None,
        privKey=priv.get_secret_value() if priv else None,
        authProtocol=auth_protocol.get(credentials.auth_protocol or "", USM_AUTH_NONE),
        privProtocol=USM_PRIV_CFB128_AES if priv else USM_PRIV_NONE,
    )


def _fingerprint(credentials: SnmpCredentials) -> str:
    """A stable key for a set of credentials that reveals nothing about them."""
    parts = [
        credentials.version,
        credentials.username or "",
        credentials.auth_protocol or "",
        credentials.priv_protocol or "",
        *(s.get_secret_value() if s else "" for s in (
            credentials.community_value, credentials.auth_value, credentials.priv_value,
        )),
    ]  # fmt: skip
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
