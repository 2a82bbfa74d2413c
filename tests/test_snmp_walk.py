"""The SNMP walk logic against a recording fake session: fast, and hostile where needed.

The real agents (the lab's, net-snmp's) are in tests/test_snmp_probe.py; here a fake stands in
for the network seam (`SnmpSession`) so that each rule of the walk is shown on its own, and an
agent no real one would be (endless tables, oversized answers) can be played cheaply.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from pydantic import SecretStr
from pysnmp.proto import rfc1902, rfc1905

from exporter.config import NodeConfig, SnmpCredentials, SnmpProbeConfig
from exporter.probes.snmp import (
    DEFAULT_MAX_ROWS,
    MAX_VALUE_OCTETS,
    PHONE_COLUMNS,
    PRODUCT_NAMES,
    SCALARS,
    SnmpProbe,
)
from exporter.results import SnmpOutcome, SnmpProbeResult
from exporter.timing import Deadline

Oid = tuple[int, ...]
SETTINGS = SnmpProbeConfig(interval=60, timeout=10, request_timeout=1, retries=0, max_repetitions=5)
NODE = NodeConfig(
    name="pub",
    host="127.0.0.1",
    snmp=SnmpCredentials(version="2c", community=SecretStr("fake-community")),
)
BOOTED = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def date_and_time(moment: dt.datetime) -> bytes:
    return bytes([moment.year >> 8, moment.year & 0xFF, moment.month, moment.day, moment.hour,
                  moment.minute, moment.second, 0, ord("+"), 0, 0])  # fmt: skip


def phone_table(
    phones: Sequence[tuple[str, int, str]], *, state_id: int = 7, booted: dt.datetime = BOOTED
) -> dict[Oid, Any]:
    """CISCO-CCM-MIB as a dict: (name, status, load) rows of one product, and the scalars."""
    table: dict[Oid, Any] = {(*PRODUCT_NAMES, 1): rfc1902.OctetString(b"Cisco 7962")}
    for row, (name, status, load) in enumerate(phones, start=1):
        table[(*PHONE_COLUMNS["status"], row)] = rfc1902.Integer(status)
        table[(*PHONE_COLUMNS["product"], row)] = rfc1902.Unsigned32(1)
        table[(*PHONE_COLUMNS["name"], row)] = rfc1902.OctetString(name.encode())
        table[(*PHONE_COLUMNS["active_load"], row)] = rfc1902.OctetString(load.encode())
    statuses = [status for _, status, _ in phones]
    table.update(
        {
            SCALARS["registered"]: rfc1902.Counter32(statuses.count(2)),
            SCALARS["unregistered"]: rfc1902.Counter32(statuses.count(3)),
            SCALARS["rejected"]: rfc1902.Counter32(statuses.count(4)),
            SCALARS["start_time"]: rfc1902.OctetString(date_and_time(booted)),
            SCALARS["state_id"]: rfc1902.Integer(state_id),
            SCALARS["partially_registered"]: rfc1902.Counter32(0),
            SCALARS["sys_uptime"]: rfc1902.TimeTicks(360000),
        }
    )
    return table


class RecordingSession:
    """An agent over a dict of OIDs, GETBULK row by row as RFC 3416 says; it records each
    request and the resident memory of the process while it is being walked."""

    def __init__(self, table: Mapping[Oid, Any]) -> None:
        self.table = dict(table)
        self.requests = 0
        self.calls: list[tuple[str, list[Oid], int]] = []
        self.peak_rss = 0

    def _record(self, kind: str, oids: Sequence[Oid], repetitions: int) -> None:
        self.requests += 1
        self.calls.append((kind, list(oids), repetitions))
        self.peak_rss = max(self.peak_rss, resident_bytes())

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        self._record("get", oids, 0)
        return [(oid, self.table.get(oid, rfc1905.noSuchInstance)) for oid in oids]

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]:
        self._record("bulk", oids, max_repetitions)
        ordered = sorted(self.table)
        answer: list[tuple[Oid, Any]] = []
        cursor = list(oids)
        for _ in range(max_repetitions):
            row = [self.next(oid, ordered) for oid in cursor]
            answer += row
            cursor = [oid for oid, _ in row]
        return answer

    def next(self, oid: Oid, ordered: list[Oid]) -> tuple[Oid, Any]:
        index = bisect.bisect_right(ordered, oid)
        if index < len(ordered):
            return ordered[index], self.table[ordered[index]]
        return oid, rfc1905.endOfMibView


class EndlessSession(RecordingSession):
    """A hostile agent: the scalars claim `claimed` phones; the phone table never ends, each
    value as large as an SnmpAdminString may be; `answer` shapes each GETBULK answer."""

    def __init__(
        self, claimed: int, answer: Callable[[list[tuple[Oid, Any]]], list[tuple[Oid, Any]]]
    ) -> None:
        table = phone_table([])
        table[SCALARS["registered"]] = rfc1902.Counter32(claimed)
        super().__init__(table)
        self.answer = answer

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]:
        if oids == [PRODUCT_NAMES]:
            return await super().bulk(oids, max_repetitions)
        self._record("bulk", oids, max_repetitions)
        rows: list[tuple[Oid, Any]] = []
        for step in range(1, max_repetitions + 1):
            for oid in oids:
                column = next(c for c in PHONE_COLUMNS.values() if oid[: len(c)] == c)
                last = oid[len(column)] if len(oid) > len(column) else 0
                numeric = column in (PHONE_COLUMNS["status"], PHONE_COLUMNS["product"])
                value = 1 if numeric else b"S" * MAX_VALUE_OCTETS
                rows.append(((*column, last + step), _typed(value)))
        return self.answer(rows)


def _typed(value: bytes | int) -> Any:
    return rfc1902.Integer(value) if isinstance(value, int) else rfc1902.OctetString(value)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def poll(probe: SnmpProbe, session: RecordingSession) -> SnmpProbeResult:
    return await probe(NODE, SETTINGS, Deadline.after(60), session=session)


PHONES = [(f"SEP00000000{i:04X}", 2, "SCCP42.9-4-2SR3-1S") for i in range(23)] + [
    ("SEP00000000FFFF", 3, "SCCP42.9-4-2SR3-1S")
]


# --- the walk ----------------------------------------------------------------------------


async def test_the_four_columns_are_walked_in_lock_step() -> None:
    session = RecordingSession(phone_table(PHONES))
    result = await poll(SnmpProbe(), session)
    assert result.outcome is SnmpOutcome.OK, result.detail
    assert result.walked
    assert sorted((p.name, p.status) for p in result.phones or ()) == sorted(
        (name, {2: "registered", 3: "unregistered"}[status]) for name, status, _ in PHONES
    )
    assert {p.product for p in result.phones or ()} == {"Cisco 7962"}
    walks = [oids for kind, oids, _ in session.calls if kind == "bulk" and len(oids) == 4]
    assert walks[0] == list(PHONE_COLUMNS.values())
    # 24 rows, 5 a request: five answers full of rows, then the one that runs off the end.
    assert len(walks) == 5
    assert all(repetitions == SETTINGS.max_repetitions for _, _, repetitions in session.calls[1:])


async def test_an_unchanged_state_id_and_start_time_cost_one_get() -> None:
    probe, session = SnmpProbe(), RecordingSession(phone_table(PHONES))
    first = await poll(probe, session)
    before = session.requests
    second = await poll(probe, session)
    assert first.walked
    assert not second.walked
    assert session.requests - before == 1
    assert session.calls[-1][0] == "get"
    assert second.phones == first.phones


async def test_a_new_start_time_forces_a_walk_with_the_same_state_id() -> None:
    probe = SnmpProbe()
    await poll(probe, RecordingSession(phone_table(PHONES, state_id=0)))
    later = BOOTED + dt.timedelta(minutes=5)
    second = await poll(probe, RecordingSession(phone_table(PHONES[:3], state_id=0, booted=later)))
    assert second.scalars is not None
    assert second.scalars.state_id == 0
    assert second.walked
    assert len(second.phones or ()) == 3


async def test_a_changed_state_id_forces_a_walk() -> None:
    probe = SnmpProbe()
    await poll(probe, RecordingSession(phone_table(PHONES, state_id=1)))
    second = await poll(probe, RecordingSession(phone_table(PHONES[:2], state_id=2)))
    assert second.walked
    assert len(second.phones or ()) == 2


async def test_a_column_that_ends_early_leaves_its_field_empty() -> None:
    table = phone_table(PHONES[:3])
    del table[(*PHONE_COLUMNS["active_load"], 3)]
    table[(*PHONE_COLUMNS["status"], 2)] = rfc1902.OctetString(b"registered")  # wrong type
    result = await poll(SnmpProbe(), RecordingSession(table))
    assert result.outcome is SnmpOutcome.OK, result.detail
    by_name = {p.name: p for p in result.phones or ()}
    assert by_name[PHONES[2][0]].active_load == ""
    assert by_name[PHONES[1][0]].status == "unknown"


async def test_no_ccm_mib_is_a_bad_response() -> None:
    table = phone_table(PHONES)
    del table[SCALARS["state_id"]]
    result = await poll(SnmpProbe(), RecordingSession(table))
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert "CISCO-CCM-MIB" in result.detail


async def test_an_answer_that_does_not_move_forward_is_non_increasing() -> None:
    session = EndlessSession(10, lambda rows: [((*oid[:-1], 0), value) for oid, value in rows])
    result = await poll(SnmpProbe(), session)
    assert result.outcome is SnmpOutcome.NON_INCREASING, result.detail


async def test_an_empty_answer_is_a_bad_response() -> None:
    result = await poll(SnmpProbe(), EndlessSession(10, lambda rows: []))
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert "empty" in result.detail


# --- a hostile agent (issue 14) ----------------------------------------------------------


async def test_an_agent_claiming_too_many_phones_is_refused_before_the_walk() -> None:
    session = EndlessSession(2**32 - 1, lambda rows: rows)
    result = await poll(SnmpProbe(), session)
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert f"more than the {DEFAULT_MAX_ROWS}" in result.detail
    assert session.requests == 1  # the scalars, nothing more


@pytest.mark.parametrize("max_rows", [50, DEFAULT_MAX_ROWS])
async def test_an_endless_table_stops_at_max_rows_with_bounded_memory(max_rows: int) -> None:
    # The agent claims a plausible count just under the bound, then never ends its table.
    before = resident_bytes()
    session = EndlessSession(max_rows - 1, lambda rows: rows)
    result = await poll(SnmpProbe(max_rows=max_rows), session)
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert f"more than {max_rows} rows" in result.detail
    # Stopped at the bound: max_rows rows, five a request (and the scalars and products).
    assert session.requests <= max_rows // SETTINGS.max_repetitions + 4
    # 20,000 rows of four 255-octet values: about 25 MB. Without the bound the walk runs on
    # until the deadline (issue 14 measured +300 MB; 100,000 rows here are about 100 MB).
    assert session.peak_rss - before < 64 * 2**20


async def test_an_oversized_getbulk_answer_is_refused() -> None:
    session = EndlessSession(10, lambda rows: rows * 50)  # 50 times what was asked
    result = await poll(SnmpProbe(), session)
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert "GETBULK answer of 1000 values, asked for at most 20" in result.detail


async def test_an_oversized_value_is_refused() -> None:
    def bloated(rows: list[tuple[Oid, Any]]) -> list[tuple[Oid, Any]]:
        return [(oid, rfc1902.OctetString(b"B" * (MAX_VALUE_OCTETS + 1))) for oid, _ in rows]

    result = await poll(SnmpProbe(), EndlessSession(10, bloated))
    assert result.outcome is SnmpOutcome.BAD_RESPONSE
    assert f"{MAX_VALUE_OCTETS + 1} octets" in result.detail
