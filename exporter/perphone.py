"""One registered phone's directory verdict from its own configuration file.

Pure, no network. Where the inference of exporter/impact.py judges a phone by the node it is
registered to, this reads what the phone was told to use (exporter/probes/cnfxml.py):

- its secure directory goes through a TVS handshake with one of the TVS nodes its file lists
  (picked among them, e.g. round robin, so the strictest one decides), then HTTPS to the node of
  its secureDirectoryURL (or, without a host we know, the first node of its CallManager group,
  where directory requests go: TAC 118699);
- an empty secureDirectoryURL sends it to the plain directoryURL, and a subscribed Directories
  service on ccmcip over HTTP is the workaround: either is a directory over HTTP 8080, which the
  TLS policy does not touch, but works only while that node's HTTP directory route works (the
  directory probe's `http` route).

So a phone is covered when a working HTTP directory serves a phone that is legacy or whose
secure path is cut off; broken (at_risk) when its directory is cut off with no working HTTP
directory to fall back to; fine, no_directory, or unknown with the missing fact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from exporter.catalogue import Capability, DirectoryUse
from exporter.probes.cnfxml import PhoneConfig
from exporter.probes.phoneconfig_result import PhoneConfigEntry, PhoneConfigProbeResult, TftpOutcome
from exporter.results import (
    DirectoryProbeResult,
    DirectoryRoute,
    ProbeRun,
    TlsProbeResult,
    TlsVersion,
)

__all__ = [
    "NOT_READ",
    "Basis",
    "Missing",
    "NodePolicy",
    "PhoneInputs",
    "Verdict",
    "collect",
    "is_input",
    "judge_phone",
]


class Verdict(enum.Enum):
    """What the TLS policy means for one registered phone's corporate directory."""

    FINE = "fine"  # its best TLS version meets what its directory path requires
    AT_RISK = "at_risk"  # it cannot: the phone shows "Host not found" (broken)
    COVERED = "covered"  # legacy or cut off, but its directory goes over working HTTP
    NO_DIRECTORY = "no_directory"  # no corporate directory over TVS/ccmcip to lose
    UNKNOWN = "unknown"  # a fact is missing: see the reason


class Missing(enum.Enum):
    """A fact a verdict needs and does not have. Bounded: these are label values."""

    INVENTORY_NOT_CONFIGURED = "inventory_not_configured"  # no inventory probe for the node
    INVENTORY_FAILED = "inventory_failed"  # its inventory probe ran and could not read it
    TLS_POLICY_UNKNOWN = "tls_policy_unknown"  # a TVS/Tomcat minimum could not be judged
    CAPABILITY_UNKNOWN = "capability_unknown"  # the catalogue does not know the model/firmware
    HTTP_ROUTE_UNKNOWN = "http_route_unknown"  # its HTTP directory's route was not probed
    CONFIG_NODE_UNKNOWN = "config_node_unknown"  # its file names a TVS/directory host we lack


class Basis(enum.Enum):
    """What a phone's verdict rests on."""

    CONFIG = "config"  # its own configuration file
    INFERENCE = "inference"  # its model and the node it is registered to (no file read)


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """What one node's listeners accept, as the probes last saw it (None: not known)."""

    tvs: TlsVersion | None = None  # lowest version TVS (2445) accepts
    tomcat: TlsVersion | None = None  # lowest version Tomcat (8443) accepts
    http_directory: bool | None = None  # the directory probe's http route works

    def assume(self, minimum: TlsVersion) -> NodePolicy:
        """After `set tls min-version`: both listeners require `minimum`."""
        return NodePolicy(minimum, minimum, self.http_directory)


_LEGACY_BELOW = TlsVersion.TLS1_2  # a phone that cannot do 1.2 needs the workaround somewhere
Judgement = tuple[Verdict, Missing | None]


def _node(host_or_url: str, aliases: Mapping[str, str]) -> str | None:
    host = urlsplit(host_or_url).hostname if "://" in host_or_url else host_or_url
    return aliases.get((host or "").lower())


def http_directories(config: PhoneConfig) -> list[str]:
    """The directory URLs over plain HTTP the phone may use: its HTTP directory services, and
    its directoryURL when no secureDirectoryURL takes precedence."""
    urls = [u for u in config.directory_services if u.lower().startswith("http://")]
    if not config.secure_directory_url and config.directory_url.lower().startswith("http://"):
        urls.append(config.directory_url)
    return urls


def _secure_path(
    capability: Capability,
    config: PhoneConfig,
    aliases: Mapping[str, str],
    policies: Mapping[str, NodePolicy],
) -> Judgement | None:
    """The verdict of its HTTPS directory through TVS; None when it has no secure directory."""
    if not config.secure_directory_url:
        return None
    first = config.cm_group[0] if config.cm_group else ""
    tvs_hosts: Sequence[str] = config.tvs or (first,)
    tvs_nodes = [_node(h, aliases) for h in tvs_hosts]
    directory_node = _node(config.secure_directory_url, aliases) or _node(first, aliases)
    if directory_node is None or any(n is None for n in tvs_nodes):
        return Verdict.UNKNOWN, Missing.CONFIG_NODE_UNKNOWN
    minimums = [policies.get(n, NodePolicy()).tvs for n in tvs_nodes if n is not None]
    minimums.append(policies.get(directory_node, NodePolicy()).tomcat)
    if any(m is None for m in minimums):
        return Verdict.UNKNOWN, Missing.TLS_POLICY_UNKNOWN
    required = max((m for m in minimums if m is not None), key=lambda v: v.number)
    return (Verdict.AT_RISK if capability.cut_off(required) else Verdict.FINE), None


def judge_phone(
    capability: Capability,
    config: PhoneConfig,
    aliases: Mapping[str, str],
    policies: Mapping[str, NodePolicy],
) -> Judgement:
    """One registered phone's verdict from its configuration (see the module docstring)."""
    if capability.directory in (DirectoryUse.NONE, DirectoryUse.OTHER):
        return Verdict.NO_DIRECTORY, None
    if capability.max_tls is None or capability.directory is DirectoryUse.UNKNOWN:
        return Verdict.UNKNOWN, Missing.CAPABILITY_UNKNOWN
    secure = _secure_path(capability, config, aliases, policies)
    http_nodes = [_node(url, aliases) for url in http_directories(config)]
    routes = [policies.get(n, NodePolicy()).http_directory if n else None for n in http_nodes]
    legacy = capability.max_tls.number < _LEGACY_BELOW.number
    if any(route is True for route in routes):
        if legacy or secure is None or secure[0] is Verdict.AT_RISK:
            return Verdict.COVERED, None
        return secure
    if secure is not None and secure[0] is not Verdict.AT_RISK:
        return secure  # fine on its secure path (or unknown there, with that reason)
    if any(route is None for route in routes):
        missing = Missing.CONFIG_NODE_UNKNOWN if None in http_nodes else Missing.HTTP_ROUTE_UNKNOWN
        return Verdict.UNKNOWN, missing
    if secure is None and not routes:
        return Verdict.NO_DIRECTORY, None  # configured with no directory at all
    return Verdict.AT_RISK, None  # cut off, and no HTTP directory that works


# --- the inputs, from a cluster's latest probe runs -----------------------------------------

NOT_READ = "not_read"  # basis reason: no file was read for the phone (probe off, not a SEP)


@dataclass(frozen=True)
class PhoneInputs:
    """What per-phone verdicts of one cluster rest on, beside the inventory."""

    configs: Mapping[str, PhoneConfigEntry] | None = None  # None: no phoneconfig run
    aliases: Mapping[str, str] = field(default_factory=dict)
    policies: Mapping[str, NodePolicy] = field(default_factory=dict)
    # Verdicts repeat for every phone sharing a capability and a (shared) PhoneConfig: one
    # judgement each, for the life of these inputs (one computation). Keyed on the config's
    # id for speed (hashing a PhoneConfig is O(its fields)), the value holds the config it was
    # computed from and is used only for that very object, so a reused id cannot match.
    _memo: dict[tuple[Capability, int], tuple[PhoneConfig, Judgement]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def assuming(self, assume: Mapping[str, TlsVersion] | None) -> PhoneInputs:
        """The what-if: those nodes' listeners require the assumed minimum."""
        if not assume:
            return self
        policies = dict(self.policies)
        for node, minimum in assume.items():
            policies[node] = policies.get(node, NodePolicy()).assume(minimum)
        return PhoneInputs(self.configs, self.aliases, policies)

    def judge(
        self, phone: str, capability: Capability, inference: Callable[[], Judgement]
    ) -> tuple[Verdict, Missing | None, Basis, str]:
        """From the phone's file when it was read; else the inference, labelled as one, with
        the reason no file was read (a ConfigReason value or NOT_READ)."""
        entry = self.configs.get(phone) if self.configs is not None else None
        if entry is not None and (config := entry.config) is not None:
            key = (capability, id(config))
            held = self._memo.get(key)
            if held is not None and held[0] is config:
                judged = held[1]
            else:
                judged = judge_phone(capability, config, self.aliases, self.policies)
                self._memo[key] = (config, judged)
            return judged[0], judged[1], Basis.CONFIG, entry.reason.value
        verdict, missing = inference()
        return verdict, missing, Basis.INFERENCE, entry.reason.value if entry else NOT_READ


def is_input(run: ProbeRun) -> bool:
    return isinstance(run.result, (PhoneConfigProbeResult, DirectoryProbeResult))


def collect(runs: Iterable[ProbeRun]) -> PhoneInputs:
    """The phone files (merged over the cluster's TFTP nodes), node aliases and each node's
    policy (TVS and Tomcat minimum from its TLS sweep, its HTTP directory route)."""
    configs: dict[str, PhoneConfigEntry] | None = None
    aliases: dict[str, str] = {}
    tvs: dict[str, TlsVersion | None] = {}
    tomcat: dict[str, TlsVersion | None] = {}
    http: dict[str, bool | None] = {}
    for run in runs:
        result = run.result
        if isinstance(result, PhoneConfigProbeResult):
            if result.outcome is not TftpOutcome.NOT_TFTP:
                configs = {} if configs is None else configs
                configs.update(result.phones)
            aliases.update(result.aliases)
        elif isinstance(result, DirectoryProbeResult):
            routes = [r for r in result.routes if r.route is DirectoryRoute.HTTP]
            if routes:  # an unreachable node's HTTP directory does not work either
                http[run.node] = routes[0].up
        elif isinstance(result, TlsProbeResult):
            for port in result.ports:
                if port.service == "tvs":
                    tvs[run.node] = port.min_version
                elif port.service == "tomcat":
                    tomcat[run.node] = port.min_version
    nodes = {*tvs, *tomcat, *http}
    policies = {n: NodePolicy(tvs.get(n), tomcat.get(n), http.get(n)) for n in nodes}
    return PhoneInputs(configs, aliases, policies)
