"""What to probe: clusters and their nodes."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Strict
from exporter.config.credentials import (
    InventorySource,
    RisportCredentials,
    SnmpCredentials,
    check_inventory,
)
from exporter.config.types import Host, Name, PortNumber, distinct_names

__all__ = ["ClusterConfig", "NodeConfig"]


class NodeConfig(Strict):
    """One CUCM node.

    `address` is where to connect (default `host`); `tls_server_name` is the name sent as SNI
    and verified (default `host`). `port_map` sends CUCM's standard ports elsewhere (NAT, port
    forwards, the lab) while labels keep the standard number.
    """

    name: Name
    host: Host
    address: Host | None = None
    tls_server_name: Host | None = None
    port_map: dict[PortNumber, PortNumber] = Field(default_factory=dict)
    snmp: SnmpCredentials | None = None

    @property
    def connect_address(self) -> str:
        return self.address or self.host

    @property
    def server_name(self) -> str:
        return self.tls_server_name or self.host

    def connect_port(self, standard_port: int) -> int:
        return self.port_map.get(standard_port, standard_port)


class ClusterConfig(Strict):
    """A CUCM cluster. `snmp` applies to every node that does not set its own."""

    name: Name
    nodes: tuple[NodeConfig, ...] = Field(min_length=1)
    snmp: SnmpCredentials | None = None
    inventory: InventorySource = "snmp"  # with both, RisPort counts and SNMP is cross-checked
    risport: RisportCredentials | None = None

    @model_validator(mode="after")
    def _check_inventory(self) -> Self:
        check_inventory(self.inventory, self.risport, [node.name for node in self.nodes])
        return self

    @model_validator(mode="after")
    def _inherit_snmp(self) -> Self:
        if self.snmp is None or all(node.snmp is not None for node in self.nodes):
            return self
        nodes = tuple(
            node if node.snmp is not None else node.model_copy(update={"snmp": self.snmp})
            for node in self.nodes
        )
        return self.model_copy(update={"nodes": nodes})

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, nodes: tuple[NodeConfig, ...]) -> tuple[NodeConfig, ...]:
        return distinct_names(nodes, "node names must be unique in a cluster")
