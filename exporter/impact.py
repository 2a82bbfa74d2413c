"""Which registered phones are cut off from the HTTPS directory: inventory x TLS policy x catalogue.

Pure functions, no network. A legacy phone fetches the secure directory from the first node of
its CallManager group, after a TLS handshake with that node's TVS; so a phone registered to a
node is at risk when its highest TLS version is below the stricter of that node's TVS and
Tomcat minimums.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.catalogue import Catalogue
from exporter.probes.spec import Key, ProbeSpec
from exporter.results import PhoneRow, ProbeRun, TlsProbeResult, TlsVersion

__all__ = [
    "ClusterPhones",
    "PhoneSummaries",
    "cluster_phones",
    "dedupe",
    "required_version",
    "summarize",
]

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


def _inputs(
    runs: Mapping[Key, ProbeRun], specs: Mapping[str, ProbeSpec]
) -> list[tuple[Key, ProbeRun]]:
    """The runs a cluster's phone summary depends on: inventory sources and TLS sweeps."""
    return [
        (key, run)
        for key, run in sorted(runs.items())
        if isinstance(run.result, TlsProbeResult)
        or ((spec := specs.get(key[2])) is not None and spec.inventory is not None)
    ]


def _summarize_runs(
    used: Iterable[tuple[Key, ProbeRun]], specs: Mapping[str, ProbeSpec], catalogue: Catalogue
) -> ClusterPhones:
    inventories: dict[str, Sequence[PhoneRow]] = {}
    required: dict[str, TlsVersion | None] = {}
    for (_, node, probe), run in used:
        if isinstance(run.result, TlsProbeResult):
            required[node] = required_version(run.result)
        elif (rows := specs[probe].phones(run)) is not None:
            inventories.setdefault(node, rows)  # the first source in spec order wins
    return summarize(inventories, required, catalogue)


def cluster_phones(
    runs: Mapping[Key, ProbeRun], specs: Mapping[str, ProbeSpec], catalogue: Catalogue
) -> ClusterPhones:
    """One cluster's phones and phones at risk, from its latest runs: the inventory comes from
    whichever probes' specs say their results carry phone rows."""
    return _summarize_runs(_inputs(runs, specs), specs, catalogue)


class PhoneSummaries:
    """`cluster_phones` per cluster, recomputed only when a run it was computed from changed.

    It holds the runs it used (not their ids, which a freed object's successor can reuse), so
    an unchanged cluster costs a comparison by identity per scrape, not O(phones).
    """

    def __init__(self, specs: Mapping[str, ProbeSpec], catalogue: Catalogue) -> None:
        self._specs = specs
        self._catalogue = catalogue
        self._held: dict[str, tuple[tuple[ProbeRun, ...], ClusterPhones]] = {}

    def of(self, cluster: str, runs: Mapping[Key, ProbeRun]) -> ClusterPhones:
        used = _inputs(runs, self._specs)
        objects = tuple(run for _, run in used)
        held = self._held.get(cluster)
        if (
            held is not None
            and len(held[0]) == len(objects)
            and all(a is b for a, b in zip(held[0], objects, strict=True))
        ):
            return held[1]
        summary = _summarize_runs(used, self._specs, self._catalogue)
        self._held[cluster] = (objects, summary)
        return summary

    def retain(self, clusters: Iterable[str]) -> None:
        """Keep only the clusters still configured."""
        wanted = set(clusters)
        self._held = {name: held for name, held in self._held.items() if name in wanted}
