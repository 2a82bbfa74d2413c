"""The whole configuration file: scheduler limits, probe settings, catalogue, clusters."""

from __future__ import annotations

from pydantic import Field, field_validator

from exporter.config.base import Strict
from exporter.config.catalogue import CatalogueEntry
from exporter.config.probes import ProbesConfig
from exporter.config.targets import ClusterConfig

__all__ = ["ExporterConfig", "SchedulerConfig"]


class SchedulerConfig(Strict):
    """Limits that hold across every node and probe."""

    max_concurrent_probes: int = Field(default=16, ge=1, le=1024)


class ExporterConfig(Strict):
    """The whole configuration file."""

    scheduler: SchedulerConfig = SchedulerConfig()
    probes: ProbesConfig = ProbesConfig()
    # Tried before the bundled phone catalogue (exporter/data/phone_models.yaml).
    catalogue: tuple[CatalogueEntry, ...] = ()
    clusters: tuple[ClusterConfig, ...] = Field(min_length=1)

    @field_validator("clusters")
    @classmethod
    def _unique_clusters(cls, clusters: tuple[ClusterConfig, ...]) -> tuple[ClusterConfig, ...]:
        names = [c.name for c in clusters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"cluster names must be unique: {', '.join(repeated)}")
        return clusters

    @property
    def node_count(self) -> int:
        return sum(len(cluster.nodes) for cluster in self.clusters)
