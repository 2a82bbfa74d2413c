"""On-demand probing behind /probe: one target, the named modules, now, within the scrape's time.

This is the blackbox_exporter multi-target pattern (reference/ecosystem-conventions.md §1.2) for
those who prefer probing at scrape time over the scheduled, cached path of /metrics. Prometheus
passes `target` and `module`; the probe gets the module's configured timeout, cut to what the
scrape can wait (`X-Prometheus-Scrape-Timeout-Seconds` minus an offset for the answer's way
back); the answer comes from a registry built for this request alone, so nothing leaks between
targets. The same ProbeRunner and the same families function as the scheduled path do the
work, so metric names and labels are those of /metrics. What a module may do on demand (ad hoc
hosts, narrowing to a port) is its spec's `on_demand`.

Credentials are never request parameters (they would show in Prometheus' UI): SNMP works only
for configured nodes, with the credentials their configuration names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from exporter.catalogue import load_catalogue
from exporter.config import ClusterConfig, ExporterConfig, NodeConfig
from exporter.impact import cluster_phones
from exporter.metrics import Freshness, target_families, timeout_family
from exporter.probegate import GateKey, ProbeGate
from exporter.probes import ProbeRunner, ProbeSpec
from exporter.results import ProbeRun
from exporter.state import ExporterState

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Room for writing the answer and its trip back: blackbox_exporter's --timeout-offset default.
TIMEOUT_OFFSET = 0.5
DEFAULT_MODULE = "tls"
ADHOC_CLUSTER = "adhoc"  # the cluster label of a target that is not a configured node
PARAMETERS = ("target", "module", "debug")
_LONGEST_ECHO = 80  # request text quoted back in a 400 is cut to this length


class BadProbeRequest(ValueError):
    """The request cannot be probed; the message is the whole of the answer (`status`)."""

    status = 400


class TargetNotAllowed(BadProbeRequest):
    """A host that is not a configured node, while ad hoc targets are off."""

    status = 403


@dataclass(frozen=True)
class ProbeRequest:
    """A checked /probe request, bound to the configuration that was current when it came."""

    config: ExporterConfig
    cluster: ClusterConfig
    node: NodeConfig
    label: str  # the `node` label: the configured name, or the ad hoc host
    adhoc: bool
    port: int | None  # the target's port: the TLS sweep is narrowed to it
    modules: tuple[str, ...]
    scrape_timeout: float | None  # from the header; None when Prometheus did not send it
    debug: bool


@dataclass(frozen=True)
class OnDemandResult:
    """What one request found: the runs, the deadline each had, and its own registry."""

    request: ProbeRequest
    runs: tuple[ProbeRun, ...]
    deadlines: Mapping[str, float]  # module -> seconds
    registry: CollectorRegistry


def deadline_for(module_timeout: float, scrape_timeout: float | None) -> float:
    """The module's own timeout, cut so that the answer still reaches Prometheus in time.

    A scrape timeout too short to spare the whole offset keeps half of itself for the probe,
    rather than none (or, as blackbox_exporter does then, the module's full timeout).
    """
    if scrape_timeout is None:
        return module_timeout
    room = max(scrape_timeout - TIMEOUT_OFFSET, scrape_timeout / 2)
    return min(module_timeout, room)


def parse_request(
    config: ExporterConfig,
    specs: Mapping[str, ProbeSpec],
    params: Sequence[tuple[str, str]],
    scrape_timeout_header: str | None,
) -> ProbeRequest:
    """Check every parameter up front; raise BadProbeRequest naming the first problem."""
    known_modules = [name for name, spec in specs.items() if spec.on_demand.allowed]
    unknown = [name for name, _ in params if name not in PARAMETERS]
    if unknown:
        raise BadProbeRequest(
            f"unknown parameter {_quote(unknown[0])}: /probe takes target, module and debug"
        )
    target = _single(params, "target")
    if not target:
        raise BadProbeRequest(
            "missing target: give target=NODE, target=CLUSTER/NODE or target=HOST[:PORT]"
        )
    modules = _modules([value for name, value in params if name == "module"], known_modules)
    debug = _debug(_single(params, "debug"))
    scrape_timeout = parse_scrape_timeout(scrape_timeout_header)
    host, port = _split_port(target)
    found = _find_node(config, host)
    if found is None and not config.probe_endpoint.allow_adhoc_targets:
        raise TargetNotAllowed(
            f"unknown target {_quote(host)}: only configured nodes may be probed "
            "(probe_endpoint.allow_adhoc_targets is false)"
        )
    if found is None:
        cluster, node = _adhoc(host, modules, specs)
    else:
        cluster, node = found
        _check_applies(cluster, node, modules, specs)
    if port is not None:
        _check_port(target, modules, specs)
    return ProbeRequest(
        config=config,
        cluster=cluster,
        node=node,
        label=host if found is None else node.name,
        adhoc=found is None,
        port=port,
        modules=modules,
        scrape_timeout=scrape_timeout,
        debug=debug,
    )


def parse_scrape_timeout(value: str | None) -> float | None:
    """The header's seconds; None when absent. Anything but a positive number is an error."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadProbeRequest(
            f"invalid {TIMEOUT_HEADER} header {_quote(value)}: "
            "expected a positive number of seconds"
        )
    return seconds


def _quote(text: str) -> str:
    """Echo request text back safely: repr (no control characters), and never very long."""
    return repr(text if len(text) <= _LONGEST_ECHO else text[:_LONGEST_ECHO] + "...")


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in params if key == name]
    if len(values) > 1:
        raise BadProbeRequest(f"{name} is given {len(values)} times: give it once")
    return values[0].strip() if values else None


def _modules(values: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """`module=a,b` and `module=a&module=b` alike; the default when none is named."""
    named = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(named) > len(known):
        raise BadProbeRequest(
            f"{len(named)} modules named: at most {len(known)}, each of {', '.join(known)} once"
        )
    for module in named:
        if module not in known:
            raise BadProbeRequest(
                f"unknown module {_quote(module)}: known modules are {', '.join(known)}"
            )
    return tuple(dict.fromkeys(named)) or (DEFAULT_MODULE,)


def _debug(value: str | None) -> bool:
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise BadProbeRequest(f"debug must be true or false, not {_quote(value)}")


def _split_port(target: str) -> tuple[str, int | None]:
    """Split `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port."""
    if target.startswith("["):
        host, closed, rest = target[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise BadProbeRequest(f"target {_quote(target)}: expected [IPv6 address]:port")
        port_text: str | None = rest[1:] if rest else None
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, None
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise BadProbeRequest(f"target {_quote(target)}: the port must be a number, 1 to 65535")
    return host, int(port_text)


def _find_node(config: ExporterConfig, host: str) -> tuple[ClusterConfig, NodeConfig] | None:
    """A configured node by `name` or `cluster/name`; None when `host` names none."""
    cluster_name, slash, node_name = host.rpartition("/")
    matches = [
        (cluster, node)
        for cluster in config.clusters
        if not slash or cluster.name == cluster_name
        for node in cluster.nodes
        if node.name == node_name
    ]
    if slash and not matches:
        raise BadProbeRequest(
            f"unknown target {_quote(host)}: no node {_quote(node_name)} "
            f"in a cluster {_quote(cluster_name)}"
        )
    if len(matches) > 1:
        choices = ", ".join(f"{cluster.name}/{node.name}" for cluster, node in matches)
        raise BadProbeRequest(
            f"target {_quote(host)} names a node in several clusters: use one of {choices}"
        )
    return matches[0] if matches else None


def _adhoc(
    host: str, modules: Sequence[str], specs: Mapping[str, ProbeSpec]
) -> tuple[ClusterConfig, NodeConfig]:
    """A host that is not a configured node: probed with the configured probe settings."""
    try:
        node = NodeConfig(name=ADHOC_CLUSTER, host=host)
    except ValidationError:
        raise BadProbeRequest(
            f"target {_quote(host)} is neither a configured node nor a host name or IP address"
        ) from None
    adhoc = [name for name, spec in specs.items() if spec.on_demand.adhoc]
    for module in modules:
        if module not in adhoc:
            raise BadProbeRequest(
                f"module {module} needs a configured node, and {_quote(host)} is not one "
                f"(a host that is not configured takes {' and '.join(adhoc)})"
            )
    return ClusterConfig(name=ADHOC_CLUSTER, nodes=(node,)), node


def _check_applies(
    cluster: ClusterConfig,
    node: NodeConfig,
    modules: Sequence[str],
    specs: Mapping[str, ProbeSpec],
) -> None:
    for module in modules:
        spec = specs[module]
        if not spec.applies_to(cluster, node):
            raise BadProbeRequest(
                f"module {module} needs {spec.needs or 'a node it applies to'}, and node "
                f"{cluster.name}/{node.name} has none configured"
            )


def _check_port(target: str, modules: Sequence[str], specs: Mapping[str, ProbeSpec]) -> None:
    narrowable = [name for name, spec in specs.items() if spec.on_demand.narrow_to_port]
    for module in modules:
        if module not in narrowable:
            takes = "takes" if len(narrowable) == 1 else "take"
            raise BadProbeRequest(
                f"target {_quote(target)} names a port, which only module "
                f"{' and '.join(narrowable)} {takes}: leave the port out for module {module}"
            )


class OnDemandProber:
    """Checks /probe requests against the running configuration and runs them."""

    def __init__(
        self, state: ExporterState, runner: ProbeRunner | None = None, gate: ProbeGate | None = None
    ) -> None:
        self._state = state
        self._runner = runner or ProbeRunner()
        # Without a gate of its own it still reuses and caps, without the scheduled results.
        self.gate = gate or ProbeGate()

    def parse(
        self, params: Sequence[tuple[str, str]], scrape_timeout_header: str | None
    ) -> ProbeRequest:
        return parse_request(self._state.config, self._runner.specs, params, scrape_timeout_header)

    async def probe(self, request: ProbeRequest) -> OnDemandResult:
        """Run every module at once (they share the scrape's time), each with its deadline."""
        config = request.config
        settings = {module: self._settings(request, module) for module in request.modules}
        deadlines = {
            module: deadline_for(settings[module].timeout, request.scrape_timeout)
            for module in request.modules
        }
        runs = await asyncio.gather(
            *(
                self.gate.run(
                    GateKey(request.cluster.name, request.label, module, request.port),
                    config.probe_endpoint,
                    scheduled=not request.adhoc and request.port is None,
                    probe=functools.partial(
                        self._runner.run,
                        config,
                        request.cluster,
                        request.node,
                        module,
                        settings=settings[module],
                        timeout_seconds=deadlines[module],
                    ),
                )
                for module in request.modules
            )
        )
        # An ad hoc node is labelled with its host, which need not be a valid node name.
        labelled = tuple(dataclasses.replace(run, node=request.label) for run in runs)
        registry = CollectorRegistry()
        registry.register(_OnDemandCollector(labelled, deadlines, config, self._runner.specs))
        return OnDemandResult(request, labelled, deadlines, registry)

    def _settings(self, request: ProbeRequest, module: str) -> Any:
        spec = self._runner.specs[module]
        settings = spec.settings(request.config)
        narrow = spec.on_demand.narrow_to_port
        if request.port is not None and narrow is not None:
            return narrow(settings, request.port)
        return settings

    def describe_run(self, run: ProbeRun) -> list[str]:
        return self._runner.specs[run.probe].describe_run(run)

    def summarize_run(self, run: ProbeRun) -> str:
        return self._runner.specs[run.probe].summarize_run(run)

    async def aclose(self) -> None:
        """Release what probes hold for this event loop (the SNMP engines' sockets)."""
        await self._runner.aclose()


# --- metrics -------------------------------------------------------------------------------


class _OnDemandCollector(Collector):
    """The families of this request's runs alone, without the empty ones: a probe result
    shows what was probed, as blackbox_exporter's does."""

    def __init__(
        self,
        runs: Sequence[ProbeRun],
        deadlines: Mapping[str, float],
        config: ExporterConfig,
        specs: Mapping[str, ProbeSpec],
    ) -> None:
        by_key = {(run.cluster, run.node, run.probe): run for run in runs}
        phones = cluster_phones(by_key, specs, load_catalogue(config.catalogue))
        cluster = runs[0].cluster if runs else ADHOC_CLUSTER
        self._families = [
            *target_families(runs, [(cluster, phones)], Freshness.probed_now()),
            timeout_family(runs, deadlines),
        ]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from (family for family in self._families if family.samples)
