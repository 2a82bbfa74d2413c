"""What a probe is, for everything that runs, shows or reasons about probes.

A probe is registered once, as a `ProbeSpec`: its name, where its settings live, how to build
it, which nodes it applies to, whether `/probe` may run it on demand (and narrow it to a port),
how its result reads as text, and whether its result carries phone rows. The scheduler, `/probe`,
`check`, the landing page, the logs and the phones-at-risk computation read those facts from the
spec; none of them names a probe. Adding a probe is a new module plus a spec (README, "Adding a
probe").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.config import ClusterConfig, ExporterConfig, NodeConfig, ScheduledProbeConfig
from exporter.results import PhoneRow, ProbeResult, ProbeRun
from exporter.timing import Deadline

__all__ = [
    "Key",
    "NodeProbe",
    "OnDemand",
    "Probe",
    "ProbeSpec",
    "Target",
]

Key = tuple[str, str, str]  # cluster, node, probe: one scheduled job, one stored result


@dataclass(frozen=True)
class Target:
    """One run's subject: the node, its cluster, the probe's settings, and what the other
    probes last found (a probe that builds on another's result reads it from `latest`)."""

    config: ExporterConfig
    cluster: ClusterConfig
    node: NodeConfig
    settings: Any  # the probe's own ScheduledProbeConfig subclass
    latest: Mapping[Key, ProbeRun] = field(default_factory=dict, repr=False)


class Probe(Protocol):
    """A built probe. It keeps what must outlive one run (engines, caches) and never raises
    for anything the network does: a failure is a result with a reason."""

    async def run(self, target: Target, deadline: Deadline) -> ProbeResult: ...

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        """Forget what it holds for (cluster, node) pairs not in `nodes` (after a reload)."""
        ...

    async def aclose(self) -> None:
        """Release what it holds on the running event loop (sockets)."""
        ...


NodeFunction = Callable[[NodeConfig, Any, Deadline], Awaitable[ProbeResult]]


class NodeProbe:
    """A probe that needs only the node and its settings: a coroutine function, or an object
    that also has `retain` and `aclose` (those are passed through)."""

    def __init__(self, function: NodeFunction) -> None:
        self._function = function

    async def run(self, target: Target, deadline: Deadline) -> ProbeResult:
        return await self._function(target.node, target.settings, deadline)

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        retain = getattr(self._function, "retain", None)
        if retain is not None:
            retain(nodes)

    async def aclose(self) -> None:
        close = getattr(self._function, "aclose", None)
        if close is not None:
            await close()


def _every_node(cluster: ClusterConfig, node: NodeConfig) -> bool:
    return True


def _no_text(result: Any) -> Iterable[str]:
    return ()


def _reason(result: Any) -> str:
    return str(result.reason)


@dataclass(frozen=True)
class OnDemand:
    """How `/probe` may use the probe.

    `adhoc`: it needs nothing but a host name, so a target that is not a configured node may
    be probed (a probe that needs credentials must say False: those live only in the config).
    `narrow_to_port`: given the settings and the port a target names, the settings for that
    port alone; None when the probe cannot be narrowed to a port.
    """

    allowed: bool = True
    adhoc: bool = False
    narrow_to_port: Callable[[Any, int], Any] | None = None


@dataclass(frozen=True)
class ProbeSpec:
    """One kind of probe, as the rest of the exporter sees it."""

    name: str
    settings: Callable[[ExporterConfig], ScheduledProbeConfig]
    build: Callable[[], Probe]  # a fresh probe per runner: no state shared at import time
    applies_to: Callable[[ClusterConfig, NodeConfig], bool] = _every_node
    # What a node lacks when the probe does not apply to it, for /probe's answer.
    needs: str = ""
    on_demand: OnDemand = OnDemand()
    # The result as lines of text, one per handshake, route or poll: /probe's debug output
    # and check.
    describe: Callable[[Any], Iterable[str]] = _no_text
    # The result's classified outcomes in one line (which versions a port accepts, each
    # route's result): the landing page, the logs (once per change) and the debug summary.
    summarize: Callable[[Any], str] = _reason
    # Phone rows the result carries (an inventory source); None when it carries none.
    inventory: Callable[[Any], Sequence[PhoneRow] | None] | None = None
    # A source that answers for its whole cluster from one node (RisPort70): the rows per
    # configured node name; a node it could not read is absent. None when it carries none.
    cluster_inventory: Callable[[Any], Mapping[str, Sequence[PhoneRow]] | None] | None = None
    # It reads the phone rows the inventory probes found (Target.latest): a one-off round
    # (`check`) runs it after them.
    reads_inventory: bool = False

    def enabled(self, config: ExporterConfig) -> bool:
        return self.settings(config).enabled

    def describe_run(self, run: ProbeRun) -> list[str]:
        """The run's result as text; a run without a result says why."""
        if run.result is None:
            return [f"{run.probe}: no result ({run.reason})"]
        return list(self.describe(run.result))

    def summarize_run(self, run: ProbeRun) -> str:
        return run.reason if run.result is None else self.summarize(run.result)

    def phones(self, run: ProbeRun) -> Sequence[PhoneRow] | None:
        if self.inventory is None or run.result is None:
            return None
        return self.inventory(run.result)

    @property
    def carries_phones(self) -> bool:
        return self.inventory is not None or self.cluster_inventory is not None

    def phones_by_node(self, run: ProbeRun) -> Mapping[str, Sequence[PhoneRow]] | None:
        """The run's phone rows per node: its own node's, or a cluster-wide source's."""
        if self.cluster_inventory is not None:
            return None if run.result is None else self.cluster_inventory(run.result)
        rows = self.phones(run)
        return None if rows is None else {run.node: rows}
