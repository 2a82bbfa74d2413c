"""The simulated cluster: CUCM nodes with TLS listeners, run on a loop of their own.

The lab runs in a background thread so that whatever it serves cannot be slowed down by (or
slow down) the exporter under test; its public methods are blocking and thread-safe.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import yaml

from exporter.lab.certs import LabCA
from exporter.lab.directory import DirectoryFault
from exporter.lab.node import (
    DEFAULT_TOPOLOGY,
    HTTP_PORT,
    LAB_COMMUNITY,
    LAB_DOMAIN,
    SNMP_PORT,
    TLS_SERVICES,
    LabNode,
    NodeState,
)
from exporter.lab.risport import RisportFault, RisportService
from exporter.lab.snmp import DEFAULT_MIX, STATUS_CODES, AgentFault, LabPhone, generate_phones
from exporter.lab.tftp import ClusterFiles
from exporter.lab.tftp_control import attach_config_files
from exporter.lab.tls import VERSIONS, PortFault

# Re-exported: tests and tools import the lab's constants from here.
__all__ = [
    "DEFAULT_TOPOLOGY",
    "HTTP_PORT",
    "LAB_COMMUNITY",
    "LAB_DOMAIN",
    "SNMP_PORT",
    "TLS_SERVICES",
    "Lab",
    "LabNode",
    "NodeState",
]

T = TypeVar("T")


class Lab:
    """A simulated CUCM deployment on loopback.

    >>> with Lab() as lab:
    ...     lab.set_tls_policy("cucm-pub", "1.2")
    """

    def __init__(
        self,
        topology: Mapping[str, tuple[str, ...]] = DEFAULT_TOPOLOGY,
        *,
        address: str = "127.0.0.1",
        directory: Path | None = None,
        restart_downtime: float = 0.5,
        phone_mix: Sequence[tuple[str, str, int]] = DEFAULT_MIX,
        optional_ports: bool = False,
    ) -> None:
        self._optional_ports = optional_ports  # also listen on 2749, 5061, 3804 and 2444
        self._tempdir = None if directory else tempfile.TemporaryDirectory(prefix="cucm-lab-")
        self.directory = directory or Path(self._tempdir.name)  # type: ignore[union-attr]
        self.restart_downtime = restart_downtime
        self._phone_mix = tuple(phone_mix)
        self._topology = topology
        self._address = address
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cucm-lab", daemon=True)
        self._nodes: dict[tuple[str, str], LabNode] = {}
        self._added = 0
        self.ca: LabCA | None = None
        self.risport: dict[str, RisportService] = {}  # cluster -> its RisPort70 (lab/risport.py)
        self._config_files: dict[str, ClusterFiles] = {}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self.ca = LabCA(self.directory)
        number = 0
        for cluster, names in self._topology.items():
            previous: LabNode | None = None
            for name in names:
                number += 1
                phones = generate_phones(number, self._phone_mix)
                if previous is not None:
                    # Phones that moved here from the previous node leave an unregistered row
                    # behind there, as CUCM keeps them for a while: the exporter must dedupe.
                    for moved in previous.agent.phones[:2]:
                        phones.append(
                            LabPhone(moved.name, moved.product, moved.active_load, "unregistered")
                        )
                node = LabNode(cluster, name, self.ca, self._address, phones, self._optional_ports)
                self._nodes[(cluster, name)] = node
                risport = self.risport.setdefault(cluster, RisportService(cluster))
                risport.serve_on(node._tomcat.app, name, node.agent)  # Tomcat's 8443
                await node.start()
                previous = node
        self._config_files = await attach_config_files(self._nodes)

    def config_files(self, cluster: str = "lab") -> ClusterFiles:
        """The cluster's TFTP files: set a phone's directory, TVS list or fault on it."""
        return self._config_files[cluster]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    async def _stop(self) -> None:
        for node in self._nodes.values():
            await node.close()
        # Whatever is still running (a "slow" page asleep) is cancelled, not abandoned.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- inspection ----------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        assert self.ca is not None, "the lab is not started"
        return self.ca.bundle_file

    def nodes(self) -> list[NodeState]:
        return self._call(self._states())

    def node(self, name: str, cluster: str | None = None) -> NodeState:
        return self._call(self._states([self._find(name, cluster)]))[0]

    async def _states(self, nodes: list[LabNode] | None = None) -> list[NodeState]:
        return [node.state() for node in (nodes if nodes is not None else self._nodes.values())]

    # --- control -------------------------------------------------------------------------

    def set_tls_policy(
        self,
        name: str,
        min_version: str,
        max_version: str | None = None,
        *,
        cluster: str | None = None,
        regenerate_certificate: bool = False,
    ) -> NodeState:
        """Like `set tls min-version X` on the node: restart it with the new policy."""
        node = self._find(name, cluster)
        self._call(
            node.apply_tls_policy(
                min_version,
                max_version or max(node.max_version, min_version, key=VERSIONS.__getitem__),
                regenerate_certificate=regenerate_certificate,
                downtime=self.restart_downtime,
            )
        )
        return self.node(name, cluster)

    def set_port_fault(
        self, name: str, port: int, fault: PortFault, *, cluster: str | None = None
    ) -> None:
        """Make a node's standard `port` stall, reset or babble instead of doing TLS."""
        self._find(name, cluster).listeners[port].fault = fault

    def set_directory_fault(
        self, name: str, fault: DirectoryFault, *, cluster: str | None = None
    ) -> None:
        """Make a node's directory pages (on 8080 and 8443) misbehave; NONE heals them."""
        self._find(name, cluster).directory.fault = fault

    def set_snmp_fault(self, name: str, fault: AgentFault, *, cluster: str | None = None) -> None:
        """Make a node's SNMP agent go silent, babble, or loop; NONE heals it."""
        self._find(name, cluster).agent.fault = fault

    def set_risport_fault(
        self, name: str, fault: RisportFault, *, cluster: str | None = None
    ) -> None:
        """Make the RisPort70 of a node's cluster stall, babble, send the rate-limit fault or
        report its other nodes as not responding; NONE heals it. RisPort70 answers for the
        whole cluster on every node (the limit is the cluster's), so the fault is too."""
        node = self._find(name, cluster)
        self.risport[node.cluster].set_fault(fault)

    def snmp_requests(self, name: str, cluster: str | None = None) -> int:
        """SNMP PDUs the node's agent has answered (to see what a poll cost)."""
        return self._find(name, cluster).agent.requests

    def phones(self, name: str, cluster: str | None = None) -> list[LabPhone]:
        return self._call(self._phones(self._find(name, cluster)))

    async def _phones(self, node: LabNode) -> list[LabPhone]:
        return [LabPhone(p.name, p.product, p.active_load, p.status) for p in node.agent.phones]

    def add_phones(
        self, name: str, product: str, active_load: str, count: int, *, cluster: str | None = None
    ) -> list[str]:
        """Register `count` new phones of a model on a node; returns their device names."""
        return self._call(self._add_phones(self._find(name, cluster), product, active_load, count))

    async def _add_phones(self, node: LabNode, product: str, load: str, count: int) -> list[str]:
        # Each call's names start past the last call's (two calls must not share names).
        start = 0xA00000 + self._added
        self._added += count
        names = [f"SEP{0x001B2C000000 + start + i:012X}" for i in range(count)]
        node.agent.phones.extend(LabPhone(n, product, load) for n in names)
        node.agent.changed()
        return names

    def set_phone_status(self, phone: str, status: str) -> None:
        """Set a phone's status on every node that has a row for it (e.g. "unregistered")."""
        if status not in STATUS_CODES:
            raise ValueError(f"status must be one of {', '.join(STATUS_CODES)}")
        self._call(self._set_status(phone, status))

    async def _set_status(self, phone: str, status: str) -> None:
        for node in self._nodes.values():
            rows = [p for p in node.agent.phones if p.name == phone]
            for row in rows:
                row.status = status
            if rows:
                node.agent.changed()

    def move_phone(self, phone: str, to: str, *, cluster: str | None = None) -> None:
        """The phone re-registers on node `to`; its old node keeps an unregistered row."""
        self._call(self._move(phone, self._find(to, cluster)))

    async def _move(self, phone: str, target: LabNode) -> None:
        template: LabPhone | None = None
        for node in self._nodes.values():
            for row in node.agent.phones:
                if row.name == phone and node is not target:
                    row.status = "unregistered"
                    template = row
                    node.agent.changed()
        if template is None:
            raise KeyError(f"no lab phone named {phone!r}")
        existing = [p for p in target.agent.phones if p.name == phone]
        if existing:
            existing[0].status = "registered"
        else:
            target.agent.phones.append(
                LabPhone(phone, template.product, template.active_load, "registered")
            )
        target.agent.changed()

    def directory_requests(self, name: str, cluster: str | None = None) -> int:
        """How many directory pages the node has answered (to check what a probe fetched)."""
        return self._find(name, cluster).directory.requests

    # --- exporter configuration ----------------------------------------------------------

    def exporter_config(
        self, *, interval: float = 10.0, timeout: float = 8.0, phoneconfig: bool = False
    ) -> dict[str, Any]:
        """A config file (as data) that points the exporter at every lab node; `phoneconfig`:
        also read each phone's configuration file from the nodes' 6970 (per-phone verdicts)."""
        clusters: dict[str, list[dict[str, Any]]] = {}
        for state in self.nodes():
            clusters.setdefault(state.cluster, []).append(
                {
                    "name": state.name,
                    "host": state.host,
                    "address": state.address,
                    "port_map": dict(state.ports),
                }
            )
        timing = {"interval": f"{interval:g}s", "timeout": f"{timeout:g}s", "jitter": "0s"}
        return {
            "probes": {
                "snmp": {**timing, "request_timeout": f"{min(2.0, timeout):g}s", "retries": 0},
                "tls": {
                    **timing,
                    "handshake_timeout": f"{min(3.0, timeout):g}s",
                    "ca_file": str(self.ca_file),
                },
                "directory": {**timing, "request_timeout": f"{min(3.0, timeout):g}s"},
                **({"phoneconfig": {**timing, "enabled": True}} if phoneconfig else {}),
            },
            "clusters": [
                {
                    "name": name,
                    "snmp": {"version": "2c", "community": LAB_COMMUNITY},
                    "nodes": nodes,
                }
                for name, nodes in clusters.items()
            ],
        }

    def write_exporter_config(self, path: Path, **kwargs: Any) -> Path:
        path.write_text(yaml.safe_dump(self.exporter_config(**kwargs), sort_keys=False))
        return path

    # --- plumbing ------------------------------------------------------------------------

    def _find(self, name: str, cluster: str | None) -> LabNode:
        matches = [
            n for (c, n_name), n in self._nodes.items() if n_name == name and cluster in (None, c)
        ]
        if len(matches) != 1:
            raise KeyError(f"no single lab node named {name!r} (cluster {cluster!r})")
        return matches[0]

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
