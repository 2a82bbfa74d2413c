"""The SNMP probe: phone inventory from CISCO-CCM-MIB, walked only when it changed.

Every poll reads the cheap scalars (phone counts, ccmPhoneTableStateId,
ccmCallManagerStartTime, sysUpTime). ccmPhoneTable is walked only when the state id or the
start time moved since the last complete walk, and then only the four columns needed, in
lock-step GETBULKs of `max_repetitions` rows, as Cisco's agent limits ask
(reference/snmp-and-phones.md §1.5, §1.7).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pysnmp.proto import rfc1905

from exporter.config import NodeConfig, SnmpProbeConfig
from exporter.probes.heap import release_heap
from exporter.probes.snmp_session import (
    Oid,
    PysnmpSession,
    SnmpEngine,
    SnmpError,
    SnmpSession,
    fingerprint,
    open_session,
)
from exporter.results import (
    PHONE_STATUSES,
    NodeScalars,
    PhoneRow,
    PhoneTable,
    SnmpOutcome,
    SnmpProbeResult,
)
from exporter.timing import Deadline

# The session types are re-exported: the SNMP benchmarks import them from here.
__all__ = [
    "DEFAULT_MAX_ROWS",
    "PysnmpSession",
    "SnmpError",
    "SnmpProbe",
    "SnmpSession",
    "decode_date_and_time",
]

# A hostile or broken agent must not make a walk grow without end (issue 14: one grew RSS by
# 300 MB until the deadline). A CUCM node registers at most about 10,000 devices (the largest
# OVA); twice that is room enough. Every value the walk keeps is an SnmpAdminString, 255
# octets at most (SNMP-FRAMEWORK-MIB); ccmProductTypeTable has a few hundred rows.
DEFAULT_MAX_ROWS: int = SnmpProbeConfig.model_fields["max_rows"].default
MAX_VALUE_OCTETS = 255
MAX_PRODUCT_ROWS = 5_000

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
    """The probe, with what must outlive one run: the engine and the last walk per node.

    `max_rows` bounds a walk (default: the settings' `max_rows`): an agent claiming more
    phones, or serving more rows, than that is a BAD_RESPONSE, whatever it keeps sending.
    """

    def __init__(self, *, max_rows: int | None = None) -> None:
        self.max_rows = max_rows
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
        key = (node.connect_address, port, fingerprint(credentials))
        if session is not None:
            return await self._poll_within(session, settings, key, deadline)
        try:
            opened = await self._session(node.connect_address, port, node, settings)
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
        limit = settings.max_rows if self.max_rows is None else self.max_rows
        if total > limit:
            raise SnmpError(
                SnmpOutcome.BAD_RESPONSE,
                f"the agent claims {total} phones, more than the {limit} a walk reads",
            )
        phones = await walk_phone_table(
            session, settings.max_repetitions, expected_rows=total, max_rows=limit
        )
        walk = _Walk(scalars.state_id, scalars.callmanager_start, phones, time.time())
        self._walks[key] = walk
        release_heap()
        return SnmpProbeResult(
            SnmpOutcome.OK,
            scalars=scalars,
            phones=phones,
            walked=True,
            walked_at=walk.walked_at,
            requests=session.requests,
        )

    async def _session(
        self, address: str, port: int, node: NodeConfig, settings: SnmpProbeConfig
    ) -> PysnmpSession:
        credentials = node.snmp
        assert credentials is not None
        # An engine must not outlive or straddle event loops (pysnmp hangs): one per loop and
        # per credentials, so a v3 user's keys are never mixed up with another's.
        engine_key = (id(asyncio.get_running_loop()), fingerprint(credentials))
        engine = self._engines.get(engine_key)
        if engine is None:
            # Costs ~40 ms of CPU (MIB builder), hence kept for the life of the loop.
            engine = self._engines[engine_key] = SnmpEngine()
        return await open_session(engine, address, port, credentials, settings)


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


def _integer(value: bytes | int | None) -> int | None:
    return value if isinstance(value, int) else None


def _numeric(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


async def walk_phone_table(
    session: SnmpSession, max_repetitions: int, expected_rows: int, max_rows: int = DEFAULT_MAX_ROWS
) -> PhoneTable:
    products = await walk_columns(
        session, {"product": PRODUCT_NAMES}, max_repetitions, MAX_PRODUCT_ROWS
    )
    # Bound the walk by what the scalars announced, with room for phones that appear meanwhile.
    limit = min(expected_rows * 2 + 200, max_rows)
    columns = await walk_columns(session, PHONE_COLUMNS, max_repetitions, limit)
    names = {index: sys.intern(_text(value)) for index, value in products["product"].items()}

    def row(index: Oid, name: Any) -> PhoneRow:
        # A value of the wrong type reads as absent (unknown), not as an exception.
        status = _integer(columns["status"].get(index))
        product_index = _integer(columns["product"].get(index))
        return PhoneRow(
            name=_text(name),
            status=PHONE_STATUSES.get(status if status is not None else 1, "unknown"),
            product=names.get((product_index,), "") if product_index is not None else "",
            # Every node shares a handful of loads: keep one string of each across nodes.
            active_load=sys.intern(_text(columns["active_load"].get(index, b""))),
        )

    return PhoneTable.of(row(index, name) for index, name in columns["name"].items())


async def walk_columns(
    session: SnmpSession, columns: Mapping[str, Oid], max_repetitions: int, max_rows: int
) -> dict[str, dict[Oid, bytes | int | None]]:
    """Walk several table columns side by side with GETBULK; rows keyed by index suffix.

    What the agent sends is bounded before it is kept: at most the varbinds asked for per
    answer, `max_rows` rows per column, `MAX_VALUE_OCTETS` a value, kept as plain bytes or
    int. Past a bound the walk is a BAD_RESPONSE: memory stays bounded whatever the agent
    sends until the deadline.
    """
    cursor = dict(columns)
    rows: dict[str, dict[Oid, bytes | int | None]] = {name: {} for name in columns}
    # Every answer ends a column or adds a row to each column still open (its OIDs must
    # increase), so the row bound also bounds the number of requests.
    while cursor:
        names = list(cursor)
        reply = await session.bulk([cursor[n] for n in names], max_repetitions)
        if not reply:
            raise SnmpError(SnmpOutcome.BAD_RESPONSE, "an empty GETBULK response")
        if len(reply) > len(names) * max_repetitions:
            raise SnmpError(
                SnmpOutcome.BAD_RESPONSE,
                f"a GETBULK answer of {len(reply)} values, asked for at most "
                f"{len(names) * max_repetitions}",
            )
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
            kept = rows[name]
            kept[oid[len(prefix) :]] = _plain(value)
            if len(kept) > max_rows:
                raise SnmpError(
                    SnmpOutcome.BAD_RESPONSE, f"the table has more than {max_rows} rows"
                )
            cursor[name] = oid
        for name in finished:
            cursor.pop(name, None)
    return rows


def _plain(value: Any) -> bytes | int | None:
    """A varbind's value as plain bytes or int (a tenth of the memory of pysnmp's objects);
    an octet string longer than an SnmpAdminString may be is refused."""
    if hasattr(value, "asOctets"):
        octets: bytes = value.asOctets()
        if len(octets) > MAX_VALUE_OCTETS:
            raise SnmpError(
                SnmpOutcome.BAD_RESPONSE,
                f"a value of {len(octets)} octets, more than an SnmpAdminString holds",
            )
        return octets
    return int(value) if _numeric(value) else None


def _text(value: Any) -> str:
    """An octet string as text; anything else (a hostile agent's integer name) as ""."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _text(value.asOctets()) if hasattr(value, "asOctets") else ""
