"""What a `check` report holds: frozen records, the same for the text, the JSON and the exit code.

docs/check-report.schema.json documents their JSON shape; keep the two together.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.results import TlsVersion

__all__ = [
    "BasisLine",
    "ClusterReport",
    "ExitCode",
    "MissingLine",
    "ModelLine",
    "NodeReport",
    "PortLine",
    "ProbeLine",
    "Report",
    "RouteLine",
    "WhatIf",
]


class ExitCode(enum.IntEnum):
    """`check`'s exit status, for scripts that gate a change window on it."""

    OK = 0  # every fact was there, and nothing is at risk or broken
    AT_RISK = 1  # phones are cut off (now or in the what-if), or an http/https route is broken
    USAGE = 2  # bad configuration or command line: nothing was probed
    INCOMPLETE = 3  # nothing at risk among what could be judged, but facts are missing


@dataclass(frozen=True)
class WhatIf:
    """`--assume-min-version`: the TLS minimum each node would have. It replaces the node's
    own minimum, as `set tls min-version` does; a node's own entry beats `everywhere`."""

    everywhere: TlsVersion | None = None
    nodes: Mapping[str, TlsVersion] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.everywhere is not None or bool(self.nodes)

    def for_node(self, node: str) -> TlsVersion | None:
        return self.nodes.get(node, self.everywhere)

    def describe(self) -> str:
        """'every node required TLS 1.2', 'cucm-pub required TLS 1.2', ..."""
        parts = [f"{node} required TLS {version.value}" for node, version in self.nodes.items()]
        if self.everywhere is not None:
            others = "every other node" if self.nodes else "every node"
            parts.append(f"{others} required TLS {self.everywhere.value}")
        return " and ".join(parts)


@dataclass(frozen=True)
class PortLine:
    port: int
    service: str
    accepted: tuple[str, ...]  # versions the port accepts, e.g. ("1.2",)
    unknown: tuple[str, ...]  # versions the probe could not judge (timeout, local refusal, ...)
    min_version: str | None
    max_version: str | None


@dataclass(frozen=True)
class RouteLine:
    route: str
    result: str
    failed_step: str | None
    entries: int | None
    detail: str


@dataclass(frozen=True)
class ModelLine:
    """Registered phones of one model on one firmware level (its highest TLS version)."""

    model: str
    max_tls: str  # "1.0".."1.3" or "unknown"
    registered: int
    at_risk: int  # cut off from the HTTPS directory now
    at_risk_if_assumed: int | None  # the same in the what-if; None without one
    not_judged: int  # their risk could not be judged: a fact is missing (see the node)
    no_directory: int  # no corporate directory over TVS/ccmcip: never at risk


@dataclass(frozen=True)
class MissingLine:
    """A fact a verdict lacks: `fact` is a bounded code, `reason` says why for people."""

    fact: str
    reason: str


@dataclass(frozen=True)
class ProbeLine:
    probe: str
    success: bool
    reason: str
    lines: tuple[str, ...]  # the result as its probe's spec reads it


@dataclass(frozen=True)
class NodeReport:
    name: str
    host: str
    probes: tuple[ProbeLine, ...]
    ports: tuple[PortLine, ...]
    required_tls: str | None  # the stricter of TVS and Tomcat minimum
    routes: tuple[RouteLine, ...]
    phones: tuple[ModelLine, ...]
    http_directory_url: str  # the workaround's service URL for this node
    http_route_works: bool | None  # None: the http route was not probed
    probe_failures: tuple[str, ...]  # "snmp: timeout", ...
    complete: bool  # every fact its verdict needs is there
    missing: tuple[MissingLine, ...]


@dataclass(frozen=True)
class BasisLine:
    """Registered phones whose verdict rests on `basis` ("config": their own file; "inference":
    model and registered node), with the reason no file was read ("ok" for config)."""

    basis: str
    reason: str
    phones: int


@dataclass(frozen=True)
class InventorySourceLine:
    """An inventory source with rows this run: role primary (its rows count) or cross_check."""

    source: str
    role: str


@dataclass(frozen=True)
class ClusterReport:
    name: str
    nodes: tuple[NodeReport, ...]
    nodes_agree: bool  # every node requires the same TLS version
    at_risk: int
    at_risk_if_assumed: int | None
    not_judged: int  # registered phones whose risk could not be judged now
    not_judged_if_assumed: int | None
    no_directory: int
    complete: bool
    verdict: tuple[str, ...]
    # Where the phone counts come from and, with two sources, where they disagree.
    inventory: tuple[str, ...] = ()
    # The same, as data: the cluster's `inventory` setting (snmp, risport, both) and the
    # sources that had rows this run, each with its role (cucm_inventory_source_info's).
    inventory_setting: str = "snmp"
    inventory_sources: tuple[InventorySourceLine, ...] = ()
    # Per-phone verdicts (exporter/perphone.py): phones on a working HTTP directory, and what
    # the verdicts rest on.
    covered: int = 0
    covered_if_assumed: int | None = None
    basis: tuple[BasisLine, ...] = ()


@dataclass(frozen=True)
class Report:
    generated_at: str  # RFC 3339, UTC
    exporter_version: str
    clusters: tuple[ClusterReport, ...]
    assumed_min_version: str | None  # the what-if for every node, if any
    assumed_node_min_versions: Mapping[str, str]  # the what-if per node
    complete: bool
    exit_code: int
