"""The probes the exporter ships: one spec each. A new probe adds its spec here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exporter.config import ClusterConfig, NodeConfig, PortConfig, TlsProbeConfig
from exporter.probes.describe import (
    describe_directory,
    describe_snmp,
    describe_tls,
    summarize_directory,
    summarize_snmp,
    summarize_tls,
)
from exporter.probes.directory import probe_directory
from exporter.probes.phoneconfig import (
    PhoneConfigProbe,
    describe_phoneconfig,
    summarize_phoneconfig,
)
from exporter.probes.risport import RisportProbe, describe_risport, summarize_risport
from exporter.probes.risport_result import RisportProbeResult
from exporter.probes.snmp import SnmpProbe
from exporter.probes.spec import NodeProbe, OnDemand, ProbeSpec
from exporter.probes.tls import probe_tls
from exporter.results import PhoneRow, ProbeRun, SnmpProbeResult

__all__ = ["BUILTIN_PROBES", "UNKNOWN_SERVICE"]

UNKNOWN_SERVICE = "unknown"  # service label of a port the tls probe settings do not list


def _tls_port_only(settings: TlsProbeConfig, port: int) -> TlsProbeConfig:
    """The sweep narrowed to the one port a /probe target names."""
    service = next((p.service for p in settings.ports if p.port == port), UNKNOWN_SERVICE)
    return settings.model_copy(update={"ports": (PortConfig(port=port, service=service),)})


def _has_snmp(cluster: ClusterConfig, node: NodeConfig) -> bool:
    # A node's own credentials, or its cluster's (the config copies those onto the node);
    # a cluster whose inventory is RisPort's alone is not polled over SNMP.
    return node.snmp is not None and cluster.inventory != "risport"


def _risport_node(cluster: ClusterConfig, node: NodeConfig) -> bool:
    """RisPort answers for the whole cluster: ask one node (risport.node, else the first)."""
    if cluster.inventory == "snmp" or cluster.risport is None:
        return False
    return node.name == (cluster.risport.node or cluster.nodes[0].name)


def _risport_phones(result: RisportProbeResult) -> Mapping[str, Sequence[PhoneRow]] | None:
    return result.phones


def _snmp_phones(result: SnmpProbeResult) -> Sequence[PhoneRow] | None:
    return result.phones


BUILTIN_PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec(
        name="tls",
        settings=lambda config: config.probes.tls,
        build=lambda: NodeProbe(probe_tls),
        on_demand=OnDemand(adhoc=True, narrow_to_port=_tls_port_only),
        describe=describe_tls,
        summarize=summarize_tls,
    ),
    ProbeSpec(
        name="directory",
        settings=lambda config: config.probes.directory,
        build=lambda: NodeProbe(probe_directory),
        on_demand=OnDemand(adhoc=True),
        describe=describe_directory,
        summarize=summarize_directory,
    ),
    ProbeSpec(
        name="snmp",
        settings=lambda config: config.probes.snmp,
        build=lambda: NodeProbe(SnmpProbe()),
        applies_to=_has_snmp,
        needs="SNMP credentials",
        describe=describe_snmp,
        summarize=summarize_snmp,
        inventory=_snmp_phones,
    ),
    ProbeSpec(
        name="risport",
        settings=lambda config: config.probes.risport,
        build=lambda: RisportProbe(),
        applies_to=_risport_node,
        needs="inventory risport or both, and RisPort70 credentials (the cluster's risport node)",
        describe=describe_risport,
        summarize=summarize_risport,
        cluster_inventory=_risport_phones,
    ),
    ProbeSpec(
        name="phoneconfig",
        settings=lambda config: config.probes.phoneconfig,
        build=lambda: PhoneConfigProbe(_inventory_rows),
        needs="the TFTP service (probes.phoneconfig.tftp_nodes)",
        # It reads the inventory's phones and a file per phone: not a scrape-time probe.
        on_demand=OnDemand(allowed=False),
        describe=describe_phoneconfig,
        summarize=summarize_phoneconfig,
        reads_inventory=True,
    ),
)


def _inventory_rows(run: ProbeRun) -> Mapping[str, Sequence[PhoneRow]] | None:
    """The phone rows per node of a run of whichever inventory probe made it, a node's own
    (SNMP) or its cluster's (RisPort70): phoneconfig reads the files of the phones these
    report."""
    spec = next((s for s in BUILTIN_PROBES if s.name == run.probe), None)
    return spec.phones_by_node(run) if spec is not None else None
