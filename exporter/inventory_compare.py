"""Where a cluster's phone inventory comes from, and whether its two sources agree.

Pure, no network. With `inventory: both`, RisPort70 is primary (it merges each device's records
across nodes and includes soft clients) and SNMP's phone table is cross-checked against it,
node by node, on the registered devices each lists. impact.py computes this once per cluster
summary; the metrics and `check` read it from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.results import PhoneRow

__all__ = ["NodeComparison", "compare", "inventory_lines"]


@dataclass(frozen=True)
class NodeComparison:
    node: str
    primary: str  # the source whose rows count (a probe name)
    other: str  # the source cross-checked against it
    primary_registered: int
    other_registered: int
    only_in_primary: int  # registered in the primary's rows, absent from the other's
    only_in_other: int

    @property
    def agree(self) -> bool:
        return not self.only_in_primary and not self.only_in_other


def compare(
    sources: Mapping[str, Mapping[str, Sequence[PhoneRow]]], order: Sequence[str]
) -> tuple[NodeComparison, ...]:
    """`sources`: probe -> node -> rows; `order`: the sources present, primary first. Each
    node both of the first two read is compared."""
    if len(order) < 2:
        return ()
    primary, other = order[0], order[1]
    comparisons = []
    for node in sorted(set(sources[primary]) & set(sources[other])):
        mine = {r.name for r in sources[primary][node] if r.status == "registered"}
        theirs = {r.name for r in sources[other][node] if r.status == "registered"}
        comparisons.append(
            NodeComparison(
                node, primary, other, len(mine), len(theirs), len(mine - theirs), len(theirs - mine)
            )
        )
    return tuple(comparisons)


def inventory_lines(order: Sequence[str], comparisons: Iterable[NodeComparison]) -> Iterable[str]:
    """`check`'s lines: the source of the inventory, and each node where the sources disagree."""
    if not order:
        return
    if len(order) == 1:
        yield f"phone inventory from {order[0]}"
        return
    yield f"phone inventory from {order[0]}, cross-checked with {order[1]}"
    for c in comparisons:
        if not c.agree:
            yield (
                f"inventory sources disagree on {c.node}: {c.primary} lists "
                f"{c.primary_registered} registered phones, {c.other} {c.other_registered} "
                f"({c.only_in_primary} only in {c.primary}, {c.only_in_other} only in {c.other})"
            )
