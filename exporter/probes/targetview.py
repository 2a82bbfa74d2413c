"""What a probe reads of its target, for probes that take the target itself.

exporter.probes.spec.Target has all of it, but it sits a layer above the probes (it knows every
spec); the probes name only what they read, as protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from exporter.config import ClusterConfig, NodeConfig
from exporter.results import ProbeRun

__all__ = ["InventoryReaderTarget", "RunTarget"]


class RunTarget(Protocol):
    """The cluster (its credentials, its other nodes), the node asked and the probe's settings."""

    @property
    def cluster(self) -> ClusterConfig: ...

    @property
    def node(self) -> NodeConfig: ...

    @property
    def settings(self) -> Any: ...


class InventoryReaderTarget(RunTarget, Protocol):
    """A probe that reads other probes' latest runs too (the phone inventory's rows)."""

    @property
    def latest(self) -> Mapping[tuple[str, str, str], ProbeRun]: ...
