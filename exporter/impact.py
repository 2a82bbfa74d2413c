"""Which registered phones are cut off from the HTTPS directory: inventory x TLS policy x catalogue.

Pure functions, no network. A legacy phone fetches the secure directory from the first node of
its CallManager group, after a TLS handshake with that node's TVS; so a phone registered to a
node is at risk when its highest TLS version is below the stricter of that node's TVS and
Tomcat minimums.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.catalogue import Catalogue
from exporter.results import PhoneRow, TlsProbeResult, TlsVersion

__all__ = ["ClusterPhones", "dedupe", "required_version", "summarize"]

# The listeners a legacy phone's directory lookup goes through (DESIGN.md, tls-probing.md §5).
DIRECTORY_SERVICES = ("tvs", "tomcat")


@dataclass(frozen=True)
class ClusterPhones:
    """Counts that do not grow with the number of phones, only with models and statuses."""

    phones: Mapping[tuple[str, str, str, str], int]  # (node, model, status, max_tls) -> count
    at_risk: Mapping[tuple[str, str], int]  # (node, model) -> registered phones cut off
    required: Mapping[str, TlsVersion]  # node -> the TLS version its directory path requires


def required_version(tls: TlsProbeResult) -> TlsVersion | None:
    """The stricter of the node's TVS and Tomcat minimum; None if either is unknown."""
    minimums = [p.min_version for p in tls.ports if p.service in DIRECTORY_SERVICES]
    if not minimums or any(m is None for m in minimums):
        return None
    return max((m for m in minimums if m is not None), key=lambda v: v.number)


def dedupe(inventories: Mapping[str, Sequence[PhoneRow]]) -> dict[str, list[PhoneRow]]:
    """Each device once per cluster: the registered row wins, else the first node's row.

    A phone that moved keeps an unregistered row on its old node for a while; counting both
    would count one phone twice.
    """
    chosen: dict[str, tuple[str, PhoneRow]] = {}
    for node, rows in inventories.items():
        for row in rows:
            held = chosen.get(row.name)
            if held is None or (row.status == "registered" and held[1].status != "registered"):
                chosen[row.name] = (node, row)
    result: dict[str, list[PhoneRow]] = {node: [] for node in inventories}
    for node, row in chosen.values():
        result[node].append(row)
    return result


def summarize(
    inventories: Mapping[str, Sequence[PhoneRow]],
    required: Mapping[str, TlsVersion | None],
    catalogue: Catalogue,
) -> ClusterPhones:
    phones: Counter[tuple[str, str, str, str]] = Counter()
    at_risk: Counter[tuple[str, str]] = Counter()
    for node, rows in dedupe(inventories).items():
        needed = required.get(node)
        for row in rows:
            capability = catalogue.lookup(row.product, row.active_load)
            model = row.product or "unknown"
            phones[(node, model, row.status, capability.max_tls_label)] += 1
            if needed is None or capability.max_tls is None or row.status != "registered":
                continue  # unknown capability is never guessed into a risk
            at_risk[(node, model)] += capability.max_tls.number < needed.number
    return ClusterPhones(
        phones=dict(phones),
        at_risk=dict(at_risk),
        required={node: v for node, v in required.items() if v is not None},
    )
