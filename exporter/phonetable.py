"""A node's phone inventory as results carry it: rows, and a compact table of them.

Below every result module: a probe that reads phones (SNMP today, others tomorrow) builds a
`PhoneTable`; the impact layer reads its `PhoneRow`s.
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

__all__ = ["PHONE_STATUSES", "PhoneRow", "PhoneTable"]

PHONE_STATUSES = {
    1: "unknown",
    2: "registered",
    3: "unregistered",
    4: "rejected",
    5: "partiallyregistered",
}


@dataclass(frozen=True, slots=True)
class PhoneRow:
    """One row of a node's ccmPhoneTable, joined with ccmProductTypeTable."""

    name: str  # ccmPhoneName: SEP<MAC>, or a soft client's device name
    status: str  # one of PHONE_STATUSES' values
    product: str  # ccmProductName, e.g. "Cisco 7962"; "" when the index is unknown
    active_load: str


@dataclass(frozen=True, slots=True)
class PhoneTable(Sequence[PhoneRow]):
    """A node's phone rows in compact columns; each row is made when it is read.

    A PhoneRow object per phone cost ~140 bytes, 14 MB of a daemon watching 100,000 phones
    (bench/README.md, "Scale"). Here a phone costs its name's characters, a 4-byte offset and a
    4-byte index into the node's few distinct (status, product, load) combinations.
    """

    names: str  # every ccmPhoneName, one after the other
    ends: bytes  # native unsigned ints: where each row's name ends in `names`
    kinds: bytes  # native unsigned ints: each row's index into `distinct`
    distinct: tuple[tuple[str, str, str], ...]  # (status, product, active_load)

    @classmethod
    def of(cls, rows: Iterable[PhoneRow]) -> PhoneTable:
        names: list[str] = []
        ends, kinds = array.array("I"), array.array("I")
        distinct: dict[tuple[str, str, str], int] = {}
        end = 0
        for row in rows:
            names.append(row.name)
            end += len(row.name)
            ends.append(end)
            kinds.append(
                distinct.setdefault((row.status, row.product, row.active_load), len(distinct))
            )
        return cls("".join(names), ends.tobytes(), kinds.tobytes(), tuple(distinct))

    def __len__(self) -> int:
        return len(self.ends) // _UINT_SIZE

    @overload
    def __getitem__(self, index: int) -> PhoneRow: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PhoneRow]: ...

    def __getitem__(self, index: int | slice) -> PhoneRow | Sequence[PhoneRow]:
        if isinstance(index, slice):
            return list(self)[index]
        position = range(len(self))[index]  # negative indices, and IndexError past the end
        ends = memoryview(self.ends).cast("I")
        start = ends[position - 1] if position else 0
        kind = memoryview(self.kinds).cast("I")[position]
        return PhoneRow(self.names[start : ends[position]], *self.distinct[kind])

    def __iter__(self) -> Iterator[PhoneRow]:
        start = 0
        kinds = memoryview(self.kinds).cast("I")
        for position, end in enumerate(memoryview(self.ends).cast("I")):
            yield PhoneRow(self.names[start:end], *self.distinct[kinds[position]])
            start = end


_UINT_SIZE = array.array("I").itemsize
