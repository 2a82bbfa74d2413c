"""Which registered phones are cut off from the HTTPS directory: inventory x TLS policy x catalogue.

Pure functions, no network: the one computation behind /metrics, `check` and its what-if. A
legacy phone fetches the secure directory from the first node of its CallManager group, after
a TLS handshake with that node's TVS; so a phone registered to a node is at risk when its
highest TLS version is below the stricter of that node's TVS and Tomcat minimums.

Every verdict carries its completeness. A phone whose model the catalogue does not know, or
whose node's TLS policy could not be read, is counted as unknown, with the reason; a node whose
inventory could not be read is marked as such. "0 at risk" is only ever said with the facts
for it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter import perphone
from exporter.catalogue import Capability, Catalogue, DirectoryUse
from exporter.inventory_compare import NodeComparison, compare
from exporter.perphone import Basis, Missing, PhoneInputs, Verdict
from exporter.probes.spec import Key, ProbeSpec
from exporter.results import PhoneRow, ProbeRun, TlsProbeResult, TlsVersion

__all__ = [
    "Basis",
    "ClusterPhones",
    "Inputs",
    "Missing",
    "NodeFacts",
    "PhoneVerdict",
    "Verdict",
    "cluster_phones",
    "dedupe",
    "inputs_of",
    "required_version",
    "summarize",
    "summarize_runs",
]

# The listeners a legacy phone's directory lookup goes through (DESIGN.md, tls-probing.md §5).
DIRECTORY_SERVICES = ("tvs", "tomcat")
TLS_PROBE = "tls"  # the probe whose sweep gives a node's TLS policy


@dataclass(frozen=True)
class NodeFacts:
    """What a node's verdict rests on, and what it lacks (with the probes' own reasons)."""

    missing: Mapping[Missing, str] = field(default_factory=dict)  # fact -> why, for people

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class ClusterPhones:
    """Counts that do not grow with the number of phones, only with models and statuses."""

    phones: Mapping[tuple[str, str, str, str], int]  # (node, model, status, max_tls) -> count
    # Registered phones: (node, model, max_tls, verdict, missing or "") -> count.
    verdicts: Mapping[tuple[str, str, str, Verdict, str], int]
    required: Mapping[str, TlsVersion]  # node -> the TLS version its directory path requires
    facts: Mapping[str, NodeFacts]  # node -> its completeness (configured nodes only)
    sources: tuple[str, ...] = ()  # the inventory probes that had rows, the counted one first
    cross_check: tuple[NodeComparison, ...] = ()  # the second source against the first
    # Registered phones by what their verdict rests on: (node, basis, reason) -> count, the
    # reason being why no file was read (or "ok") - exporter/perphone.py.
    basis: Mapping[tuple[str, Basis, str], int] = field(default_factory=dict)

    @property
    def at_risk(self) -> dict[tuple[str, str], int]:
        """(node, model) -> registered phones cut off, every firmware level of the model."""
        counts: Counter[tuple[str, str]] = Counter()
        for (node, model, _, verdict, _), count in self.verdicts.items():
            # A judged model is listed even at 0, so alerts see it resolve.
            if verdict in (Verdict.AT_RISK, Verdict.FINE, Verdict.COVERED):
                counts[(node, model)] += count if verdict is Verdict.AT_RISK else 0
        return dict(counts)

    def count(self, verdict: Verdict, node: str | None = None) -> int:
        return sum(
            n
            for (at, _, _, v, _), n in self.verdicts.items()
            if v is verdict and node in (None, at)
        )

    def unknown_by_reason(self) -> dict[tuple[str, str], int]:
        """(node, missing fact) -> registered phones that could not be judged for it."""
        counts: Counter[tuple[str, str]] = Counter()
        for (node, _, _, verdict, missing), count in self.verdicts.items():
            if verdict is Verdict.UNKNOWN:
                counts[(node, missing)] += count
        return dict(counts)

    @property
    def complete(self) -> bool:
        return all(facts.complete for facts in self.facts.values())


@dataclass(frozen=True, slots=True)
class PhoneVerdict:
    """One registered phone's verdict, as `summarize` reached it for the counts: only for
    `check --phones` (a list that grows with phones never goes to /metrics or the logs)."""

    node: str  # the node it is registered to
    name: str
    model: str
    firmware: str  # its active load, as the inventory reports it
    max_tls: str  # the catalogue's highest TLS version for the model and load, or "unknown"
    verdict: Verdict
    missing: Missing | None
    basis: Basis  # its own configuration file, or the inference from model and node
    reason: str  # why no file was read ("ok" on basis config)
    required: TlsVersion | None  # the registered node's directory-path minimum (inference)


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
    result: dict[str, list[PhoneRow]] = {node: [] for node in inventories}
    for node, row in _deduped(inventories):
        result[node].append(row)
    return result


def _deduped(inventories: Mapping[str, Sequence[PhoneRow]]) -> Iterator[tuple[str, PhoneRow]]:
    """`dedupe`'s rows one at a time. The choice is held as (node, index) per name, which the
    garbage collector does not track: holding a row object a phone while a 100,000-phone
    summary is computed made the collector walk them all, stalling every thread
    (bench/README.md, "Per-phone configuration at scale")."""
    chosen: dict[str, tuple[str, int]] = {}
    registered: set[str] = set()
    for node, rows in inventories.items():
        for index, row in enumerate(rows):
            if row.name not in chosen or (
                row.status == "registered" and row.name not in registered
            ):
                chosen[row.name] = (node, index)
                if row.status == "registered":
                    registered.add(row.name)
    for node, rows in inventories.items():
        for index, row in enumerate(rows):
            if chosen.get(row.name) == (node, index):
                yield node, row


def judge(capability: Capability, required: TlsVersion | None) -> tuple[Verdict, Missing | None]:
    """One registered phone's verdict against the minimum its directory path requires."""
    if capability.directory in (DirectoryUse.NONE, DirectoryUse.OTHER):
        return Verdict.NO_DIRECTORY, None  # nothing over TVS/ccmcip to lose
    if capability.max_tls is None or capability.directory is DirectoryUse.UNKNOWN:
        return Verdict.UNKNOWN, Missing.CAPABILITY_UNKNOWN
    if required is None:
        return Verdict.UNKNOWN, Missing.TLS_POLICY_UNKNOWN
    return (Verdict.AT_RISK if capability.cut_off(required) else Verdict.FINE), None


def summarize(
    inventories: Mapping[str, Sequence[PhoneRow]],
    required: Mapping[str, TlsVersion | None],
    catalogue: Catalogue,
    facts: Mapping[str, NodeFacts] | None = None,
    assume: Mapping[str, TlsVersion] | None = None,
    inputs: PhoneInputs | None = None,
    listing: list[PhoneVerdict] | None = None,
) -> ClusterPhones:
    """`inventories`: the phone rows per node that has them; `required`: each node's
    directory-path minimum (None: unknown); `facts`: each configured node's completeness;
    `assume`: a what-if minimum per node, which replaces the node's own (that is what
    `set tls min-version` does), so a what-if needs no reading of today's policy;
    `inputs`: the phones' own configuration files and each node's policy, for the
    per-phone verdict (exporter/perphone.py); without them every verdict is the inference;
    `listing`: when given, each registered phone's verdict is appended to it as it is
    counted (`check --phones`), so the list and the counts are one computation."""
    required = {**required, **(assume or {})}
    judged = (inputs or PhoneInputs()).assuming(assume)
    phones: Counter[tuple[str, str, str, str]] = Counter()
    verdicts: Counter[tuple[str, str, str, Verdict, str]] = Counter()
    basis: Counter[tuple[str, Basis, str]] = Counter()
    unknown: dict[tuple[str, Missing], int] = {}
    for node, row in _deduped(inventories):
        needed = required.get(node)
        capability = catalogue.lookup(row.product, row.active_load)
        model = row.product or "unknown"
        phones[(node, model, row.status, capability.max_tls_label)] += 1
        if row.status != "registered":
            continue
        verdict, missing, on, reason = judged.judge(
            row.name, capability, functools.partial(judge, capability, needed)
        )
        verdicts[(node, model, capability.max_tls_label, verdict, _text(missing))] += 1
        basis[(node, on, reason)] += 1
        if listing is not None:
            listing.append(
                PhoneVerdict(node, row.name, model, row.active_load,
                             capability.max_tls_label, verdict, missing, on, reason, needed)
            )  # fmt: skip
        # Inference: the node's own missing TLS policy is in its facts already.
        if missing is not None and (
            on is Basis.CONFIG or missing is not Missing.TLS_POLICY_UNKNOWN
        ):
            unknown[(node, missing)] = unknown.get((node, missing), 0) + 1
    all_facts = dict(facts) if facts is not None else {node: NodeFacts() for node in inventories}
    for (node, missing), count in unknown.items():
        held = all_facts.get(node, NodeFacts())
        if missing not in held.missing:
            all_facts[node] = NodeFacts({**held.missing, missing: _why(missing, count)})
    return ClusterPhones(
        phones=dict(phones),
        verdicts=dict(verdicts),
        required={node: v for node, v in required.items() if v is not None},
        facts=all_facts,
        basis=dict(basis),
    )


_WHY = {
    Missing.CAPABILITY_UNKNOWN: "of models or firmware the catalogue does not know",
    Missing.TLS_POLICY_UNKNOWN: "whose files list a TVS or directory node of unknown policy",
    Missing.HTTP_ROUTE_UNKNOWN: "whose HTTP directory's route the directory probe has not seen",
    Missing.CONFIG_NODE_UNKNOWN: "whose files name a TVS or directory host no node goes by",
}


def _why(missing: Missing, count: int) -> str:
    return f"{count} phones {_WHY.get(missing, 'lack a fact')}"


def _text(missing: Missing | None) -> str:
    return "" if missing is None else missing.value


# --- from probe runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What one cluster's summary is computed from."""

    used: tuple[tuple[Key, ProbeRun], ...]  # the runs the summary depends on
    nodes: tuple[str, ...]  # the cluster's configured nodes


def inputs_of(
    runs: Mapping[Key, ProbeRun], specs: Mapping[str, ProbeSpec], nodes: Iterable[str]
) -> Inputs:
    """The runs a cluster's phone summary depends on: inventory sources and TLS sweeps."""
    used = tuple(
        (key, run)
        for key, run in sorted(runs.items())
        if isinstance(run.result, TlsProbeResult)
        or perphone.is_input(run)
        or key[2] == TLS_PROBE
        or ((spec := specs.get(key[2])) is not None and spec.carries_phones)
    )
    return Inputs(used, tuple(nodes))


def summarize_runs(
    inputs: Inputs,
    specs: Mapping[str, ProbeSpec],
    catalogue: Catalogue,
    assume: Mapping[str, TlsVersion] | None = None,
    listing: list[PhoneVerdict] | None = None,
) -> ClusterPhones:
    inventories: dict[str, Sequence[PhoneRow]] = {}
    required: dict[str, TlsVersion | None] = {}
    tls_missing: dict[str, str] = {}
    inventory_failed: dict[str, str] = {}
    sources: dict[str, dict[str, Sequence[PhoneRow]]] = {}  # probe -> node -> rows
    for (_, node, probe), run in inputs.used:
        if perphone.is_input(run):
            continue  # the phones' files and HTTP routes: perphone.collect below
        if isinstance(run.result, TlsProbeResult):
            required[node] = required_version(run.result)
            if required[node] is None:
                tls_missing[node] = "the TVS or Tomcat minimum could not be judged"
        elif probe == TLS_PROBE:
            tls_missing[node] = f"the tls probe failed ({run.reason})"
        else:
            by_node = specs[probe].phones_by_node(run)
            for at, rows in (by_node or {}).items():
                sources.setdefault(probe, {}).setdefault(at, rows)
            # A cluster-wide source answers for every node: one it lacks, it failed to read.
            covered = inputs.nodes if specs[probe].cluster_inventory is not None else (node,)
            for at in covered:
                if at not in (by_node or {}):
                    inventory_failed.setdefault(at, f"{probe}: {run.reason}")
    # Node by node, the first source wins: a cluster-wide one (it has merged each device's
    # records across nodes), then spec order.
    order = [
        p for p in sorted(specs, key=lambda p: specs[p].cluster_inventory is None) if p in sources
    ]
    for probe in order:
        for at, rows in sources[probe].items():
            inventories.setdefault(at, rows)
    facts: dict[str, NodeFacts] = {}
    for node in dict.fromkeys((*inputs.nodes, *inventories)):
        missing: dict[Missing, str] = {}
        if node not in inventories:
            if node in inventory_failed:
                missing[Missing.INVENTORY_FAILED] = inventory_failed[node]
            else:
                missing[Missing.INVENTORY_NOT_CONFIGURED] = "no phone inventory probe runs here"
        # A node known to have no registered phone needs no TLS policy for its verdict.
        has_phones = any(row.status == "registered" for row in inventories.get(node, ()))
        if (
            required.get(node) is None
            and node not in (assume or {})
            and (has_phones or node not in inventories)
        ):
            missing[Missing.TLS_POLICY_UNKNOWN] = tls_missing.get(node, "the tls probe has not run")
        facts[node] = NodeFacts(missing)
    per_phone = perphone.collect(run for _, run in inputs.used)
    summary = summarize(inventories, required, catalogue, facts, assume, per_phone, listing)
    return replace(summary, sources=tuple(order), cross_check=compare(sources, order))


def cluster_phones(
    runs: Mapping[Key, ProbeRun],
    specs: Mapping[str, ProbeSpec],
    catalogue: Catalogue,
    nodes: Iterable[str] = (),
    assume: Mapping[str, TlsVersion] | None = None,
    listing: list[PhoneVerdict] | None = None,
) -> ClusterPhones:
    """One cluster's phones and verdicts, from its latest runs: the inventory comes from
    whichever probes' specs say their results carry phone rows. `nodes`: the cluster's
    configured nodes, so that a node with no run at all is reported as lacking facts;
    `listing`: see `summarize`."""
    return summarize_runs(inputs_of(runs, specs, nodes), specs, catalogue, assume, listing)
