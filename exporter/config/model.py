"""The whole configuration file: scheduler limits, probe settings, catalogue, clusters."""

from __future__ import annotations

from pydantic import Field, field_validator

from exporter.config.base import Strict
from exporter.config.catalogue import CatalogueEntry
from exporter.config.probes import ProbesConfig
from exporter.config.targets import ClusterConfig
from exporter.config.types import Duration, distinct_names

__all__ = ["ExporterConfig", "ProbeEndpointConfig", "SchedulerConfig"]


class SchedulerConfig(Strict):
    """Limits that hold across every node and probe."""

    max_concurrent_probes: int = Field(default=16, ge=1, le=1024)


class ProbeEndpointConfig(Strict):
    """/probe: who may probe what, and how much of the nodes a client may spend.

    blackbox_exporter probes any target for anyone; for call-control nodes a careful operator
    wants less: only configured nodes, a few probes at once, none repeated within seconds.
    """

    # Probe hosts that are not configured nodes (tls and directory modules only).
    allow_adhoc_targets: bool = False
    # Probes running at once for /probe; beyond it the answer is 503 with Retry-After.
    max_concurrent: int = Field(default=8, ge=1, le=1024)
    # A target's result (scheduled or on demand) younger than this is reused, not probed
    # again. 0 probes on every request.
    min_interval: Duration = Field(default=10.0, ge=0.0)


class ExporterConfig(Strict):
    """The whole configuration file."""

    probe_endpoint: ProbeEndpointConfig = ProbeEndpointConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    probes: ProbesConfig = ProbesConfig()
    # Tried before the bundled phone catalogue (exporter/data/phone_models.yaml).
    catalogue: tuple[CatalogueEntry, ...] = ()
    clusters: tuple[ClusterConfig, ...] = Field(min_length=1)

    @field_validator("clusters")
    @classmethod
    def _unique_clusters(cls, clusters: tuple[ClusterConfig, ...]) -> tuple[ClusterConfig, ...]:
        return distinct_names(clusters, "cluster names must be unique")

    @property
    def node_count(self) -> int:
        return sum(len(cluster.nodes) for cluster in self.clusters)
