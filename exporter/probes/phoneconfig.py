"""The phoneconfig probe: each registered phone's own configuration file, from a TFTP node.

CUCM's TFTP service serves every phone's SEP<MAC>.cnf.xml over HTTP on 6970, without
authentication, and ConfigFileCacheList.txt listing the files it holds with their length and
build time. This probe reads, for the phones the inventory probes report registered (SNMP per
node, or RisPort70 for the whole cluster), only what the directory verdict needs
(exporter/probes/cnfxml.py), politely (when a file is due and how it is asked for:
exporter/probes/phoneconfig_pass.py; the HTTP: exporter/probes/tftp_http.py):

- the phones of a cluster are split among its TFTP nodes by a stable hash of the name, so each
  file is read from one node only;
- state is one small frozen entry per phone the inventory still reports: it cannot grow.

A file that is missing, encrypted (only SEP<MAC>.cnf.xml.enc.sgn exists), malformed, unsafe
(a DTD), oversized, or could not be fetched is a reason, never a guess.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

import httpx

from exporter.config import ClusterConfig, PhoneConfigProbeConfig
from exporter.probes.phoneconfig_pass import Pass, shared_basis
from exporter.probes.phoneconfig_result import (
    Basis,
    ConfigReason,
    PhoneConfigEntry,
    PhoneConfigProbeResult,
    TftpOutcome,
    describe_phoneconfig,
    summarize_phoneconfig,
)
from exporter.probes.targetview import InventoryReaderTarget
from exporter.results import PhoneRow, ProbeRun
from exporter.timing import Deadline

__all__ = [
    "ConfigReason",
    "Inventory",
    "PhoneConfigEntry",
    "PhoneConfigProbe",
    "PhoneConfigProbeResult",
    "TftpOutcome",
    "describe_phoneconfig",
    "registered_phones",
    "shared_basis",
    "summarize_phoneconfig",
    "tftp_nodes",
]

_SEP = re.compile(r"^SEP[0-9A-F]{12}$")  # hardware phones; soft clients' CSF files differ

# A run's phone rows per node (a node's own SNMP table, or RisPort70's for every node of its
# cluster); None when the run carries no phone rows.
Inventory = Callable[[ProbeRun], Mapping[str, Sequence[PhoneRow]] | None]


def tftp_nodes(cluster: ClusterConfig, settings: PhoneConfigProbeConfig) -> list[str]:
    """The cluster's TFTP nodes, in config order."""
    names = [node.name for node in cluster.nodes]
    return [n for n in names if n in settings.tftp_nodes] if settings.tftp_nodes else names


def node_aliases(cluster: ClusterConfig) -> dict[str, str]:
    """Each name a node goes by (lower-cased) -> its configured name."""
    aliases: dict[str, str] = {}
    for node in cluster.nodes:
        for alias in (node.name, node.host, node.connect_address, node.server_name):
            aliases.setdefault(alias.lower(), node.name)
    return aliases


def assigned(name: str, nodes: Sequence[str]) -> str:
    """Which TFTP node a phone's file is read from: stable across runs and processes."""
    return nodes[zlib.crc32(name.encode()) % len(nodes)]


def registered_phones(
    cluster: str, latest: Mapping[tuple[str, str, str], ProbeRun], inventory: Inventory
) -> dict[str, Basis] | None:
    """Registered SEP phones of a cluster -> (node, status, load); None without inventory.

    Every inventory source counts (a cluster with `inventory: both` has SNMP and RisPort70
    rows); a phone two sources report registered keeps the one of the last run in key order.
    """
    phones: dict[str, Basis] = {}
    seen = False
    for (at, _, _), run in sorted(latest.items()):
        if at != cluster or (by_node := inventory(run)) is None:
            continue
        seen = True
        for node, rows in by_node.items():
            for row in rows:
                if row.status == "registered" and _SEP.match(row.name):
                    phones[row.name] = (node, row.status, row.active_load)
    return phones if seen else None


class PhoneConfigProbe:
    """Holds each phone's last entry per (cluster, TFTP node) between runs."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        now: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._inventory = inventory
        self._now = now
        self._transport = transport
        self._held: dict[tuple[str, str], dict[str, PhoneConfigEntry]] = {}

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        for key in [k for k in self._held if k not in nodes]:
            del self._held[key]

    async def aclose(self) -> None:
        return None

    async def run(
        self, target: InventoryReaderTarget, deadline: Deadline
    ) -> PhoneConfigProbeResult:
        settings: PhoneConfigProbeConfig = target.settings
        cluster, node = target.cluster, target.node
        nodes = tftp_nodes(cluster, settings)
        if node.name not in nodes:
            return PhoneConfigProbeResult(TftpOutcome.NOT_TFTP)
        phones = registered_phones(cluster.name, target.latest, self._inventory)
        if phones is None:
            return PhoneConfigProbeResult(TftpOutcome.NO_INVENTORY, detail="no phone rows yet")
        mine = {name: basis for name, basis in phones.items() if assigned(name, nodes) == node.name}
        held = self._held.setdefault((cluster.name, node.name), {})
        for gone in [name for name in held if name not in mine]:
            del held[gone]  # bounded: only phones the inventory still reports
        run = Pass(node, settings, deadline, held, self._now(), self._transport)
        await run.execute(mine)
        return replace(run.result(), aliases=node_aliases(cluster))
