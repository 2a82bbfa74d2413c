"""One shared copy of equal immutable values, in a table that cannot grow without bound.

At 100,000 phones most values repeat: phones of one node and model carry the same
configuration facts (exporter/probes/cnfxml.py), and the same (node, status, firmware) basis
(exporter/probes/phoneconfig_pass.py). Holding one object for each distinct value is what
keeps the probe's state at a few hundred bytes a phone (bench/scale/phoneconfig.py measures
it). The table is bounded, so hostile files that make every value distinct cannot grow it:
past the limit a value is simply not shared.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Canonical"]

T = TypeVar("T", bound=Hashable)

DEFAULT_LIMIT = 65536


class Canonical(Generic[T]):
    """`shared(value)` gives the first-seen object equal to `value` (or `value` itself)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._held: dict[T, T] = {}

    def shared(self, value: T) -> T:
        held = self._held.get(value)
        if held is not None:
            return held
        if len(self._held) < self._limit:
            self._held[value] = value
        return value

    def __len__(self) -> int:
        return len(self._held)
