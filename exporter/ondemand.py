"""On-demand probing behind /probe: one target, the named modules, now, within the scrape's time.

This is the blackbox_exporter multi-target pattern (reference/ecosystem-conventions.md §1.2) for
those who prefer probing at scrape time over the scheduled, cached path of /metrics. Prometheus
passes `target` and `module`; the probe gets the module's configured timeout, cut to what the
scrape can wait (`X-Prometheus-Scrape-Timeout-Seconds` minus an offset for the answer's way
back); the answer comes from a registry built for this request alone, so nothing leaks between
targets. The same ProbeRunner and CucmCollector as the scheduled path do the work, so metric
names and labels are those of /metrics.

Credentials are never request parameters (they would show in Prometheus' UI): SNMP works only
for configured nodes, with the credentials their configuration names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from exporter.collector import CucmCollector
from exporter.config import ClusterConfig, ExporterConfig, NodeConfig, PortConfig
from exporter.results import (
    DirectoryProbeResult,
    Handshake,
    PortResult,
    ProbeRun,
    RouteResult,
    SnmpProbeResult,
    TlsProbeResult,
)
from exporter.scheduler import ProbeRunner
from exporter.store import ExporterState, ResultStore

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Room for writing the answer and its trip back: blackbox_exporter's --timeout-offset default.
TIMEOUT_OFFSET = 0.5
DEFAULT_MODULE = "tls"
ADHOC_CLUSTER = "adhoc"  # the cluster label of a target that is not a configured node
# Modules that need nothing but a host name. SNMP needs credentials, which only the
# configuration may hold.
ADHOC_MODULES = ("tls", "directory")
PORT_MODULES = ("tls",)  # only the TLS sweep can be narrowed to the port a target names
UNKNOWN_SERVICE = "unknown"  # service label of a port the tls probe settings do not list
PARAMETERS = ("target", "module", "debug")
_LONGEST_ECHO = 80  # request text quoted back in a 400 is cut to this length


class BadProbeRequest(ValueError):
    """The request cannot be probed; the message is the whole of the 400 answer."""


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
    known_modules: Sequence[str],
    params: Sequence[tuple[str, str]],
    scrape_timeout_header: str | None,
) -> ProbeRequest:
    """Check every parameter up front; raise BadProbeRequest naming the first problem."""
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
    if found is None:
        cluster, node = _adhoc(host, modules)
    else:
        cluster, node = found
        _check_applies(cluster, node, modules)
    if port is not None:
        _check_port(target, modules)
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


def _adhoc(host: str, modules: Sequence[str]) -> tuple[ClusterConfig, NodeConfig]:
    """A host that is not a configured node: probed with the configured probe settings."""
    try:
        node = NodeConfig(name=ADHOC_CLUSTER, host=host)
    except ValidationError:
        raise BadProbeRequest(
            f"target {_quote(host)} is neither a configured node nor a host name or IP address"
        ) from None
    for module in modules:
        if module not in ADHOC_MODULES:
            raise BadProbeRequest(
                f"module {module} needs a configured node, and {_quote(host)} is not one "
                f"(a host that is not configured takes {' and '.join(ADHOC_MODULES)})"
            )
    return ClusterConfig(name=ADHOC_CLUSTER, nodes=(node,)), node


def _check_applies(cluster: ClusterConfig, node: NodeConfig, modules: Sequence[str]) -> None:
    if "snmp" in modules and node.snmp is None:
        raise BadProbeRequest(
            f"module snmp needs SNMP credentials, and node {cluster.name}/{node.name} "
            "has none configured"
        )


def _check_port(target: str, modules: Sequence[str]) -> None:
    for module in modules:
        if module not in PORT_MODULES:
            raise BadProbeRequest(
                f"target {_quote(target)} names a port, which only module tls takes: "
                f"leave the port out for module {module}"
            )


class OnDemandProber:
    """Checks /probe requests against the running configuration and runs them."""

    def __init__(self, state: ExporterState, runner: ProbeRunner | None = None) -> None:
        self._state = state
        self._runner = runner or ProbeRunner()

    def parse(
        self, params: Sequence[tuple[str, str]], scrape_timeout_header: str | None
    ) -> ProbeRequest:
        known = list(self._runner.probes)
        return parse_request(self._state.config, known, params, scrape_timeout_header)

    async def probe(self, request: ProbeRequest) -> OnDemandResult:
        """Run every module at once (they share the scrape's time), each with its deadline."""
        config = request.config if request.port is None else _sweep_only(request)
        deadlines = {
            module: deadline_for(
                self._runner.probes[module].settings(config).timeout, request.scrape_timeout
            )
            for module in request.modules
        }
        runs = await asyncio.gather(
            *(
                self._runner.run(
                    config, request.cluster, request.node, module, timeout_seconds=deadlines[module]
                )
                for module in request.modules
            )
        )
        # An ad hoc node is labelled with its host, which need not be a valid node name.
        labelled = tuple(dataclasses.replace(run, node=request.label) for run in runs)
        registry = CollectorRegistry()
        registry.register(_OnDemandCollector(labelled, deadlines, config))
        return OnDemandResult(request, labelled, deadlines, registry)

    async def aclose(self) -> None:
        """Release what probes hold for this event loop (the SNMP engines' sockets)."""
        await self._runner.aclose()


def _sweep_only(request: ProbeRequest) -> ExporterConfig:
    """The configuration with the TLS sweep narrowed to the one port the target names."""
    config, port = request.config, request.port
    assert port is not None
    tls = config.probes.tls
    service = next((p.service for p in tls.ports if p.port == port), UNKNOWN_SERVICE)
    narrowed = tls.model_copy(update={"ports": (PortConfig(port=port, service=service),)})
    probes = config.probes.model_copy(update={"tls": narrowed})
    return config.model_copy(update={"probes": probes})


# --- metrics -------------------------------------------------------------------------------


class _OnDemandCollector(Collector):
    """The collector's families for this request's runs alone, without the empty ones: a
    probe result shows what was probed, as blackbox_exporter's does."""

    def __init__(
        self, runs: Sequence[ProbeRun], deadlines: Mapping[str, float], config: ExporterConfig
    ) -> None:
        store = ResultStore()
        for run in runs:
            store.put(run)
        self._families = CucmCollector(
            store, ExporterState(config, 0.0), on_demand_timeouts=deadlines
        )

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from (family for family in self._families.collect() if family.samples)


# --- debug output --------------------------------------------------------------------------


def render_debug(result: OnDemandResult, exposition: str) -> str:
    """`debug=true`: what was probed, a log line per handshake/route/poll, then the metrics."""
    lines = [*_describe(result), "", "Logs for the probe:"]
    for run in result.runs:
        lines.extend(_log(run))
    lines += ["", "Result summary:"]
    lines += [_summary(run, result.deadlines[run.probe]) for run in result.runs]
    lines += ["", "Metrics that would have been returned:", exposition.rstrip("\n"), ""]
    return "\n".join(lines)


def _describe(result: OnDemandResult) -> Iterator[str]:
    request = result.request
    node = request.node
    if request.adhoc:
        yield f"Target {request.label} (not a configured node: cluster label {ADHOC_CLUSTER})"
    else:
        yield f"Target {request.cluster.name}/{node.name}: host {node.host}"
        yield f"Connects to {node.connect_address}, TLS name {node.server_name}" + (
            f", ports {_port_map(node)}" if node.port_map else ""
        )
    if request.port is not None:
        yield f"TLS sweep narrowed to port {request.port}"
    if request.scrape_timeout is None:
        yield f"No {TIMEOUT_HEADER} header: each module has its configured timeout"
    else:
        yield (
            f"{TIMEOUT_HEADER}: {request.scrape_timeout:g}s; the probe may use "
            f"{TIMEOUT_OFFSET:g}s less, at most each module's configured timeout"
        )
    deadlines = ", ".join(f"{m} {result.deadlines[m]:g}s" for m in request.modules)
    yield f"Modules and deadlines: {deadlines}"


def _port_map(node: NodeConfig) -> str:
    return ", ".join(f"{std}->{real}" for std, real in sorted(node.port_map.items()))


def _log(run: ProbeRun) -> Iterator[str]:
    result = run.result
    if isinstance(result, TlsProbeResult):
        for port in result.ports:
            yield from _port_log(port)
    elif isinstance(result, DirectoryProbeResult):
        yield from (_route_log(route) for route in result.routes)
    elif isinstance(result, SnmpProbeResult):
        yield _snmp_log(result)
    else:
        yield f"{run.probe}: no result ({run.reason})"


def _port_log(port: PortResult) -> Iterator[str]:
    where = f"tls {port.port}/{port.service}"
    for handshake in (*port.pinned, port.modern):
        name = handshake.pinned.label if handshake.pinned else "modern client"
        yield f"{where} {name}: {_handshake(handshake)}"
    certificate = port.certificate
    if certificate is not None:
        yield (
            f"{where} certificate: sha256 {certificate.fingerprint_sha256}, serial "
            f"{certificate.serial}, subject {certificate.subject}, issuer {certificate.issuer}, "
            f"not after {_iso(certificate.not_after)}"
        )
    if port.verified is not None:
        verdict = "verified" if port.verified else f"not verified: {port.verify_error}"
        yield f"{where} certificate {verdict}"


def _handshake(handshake: Handshake) -> str:
    text = f"{handshake.outcome.value} in {handshake.duration_seconds * 1000:.1f}ms"
    if handshake.negotiated is not None:
        text += f", negotiated {handshake.negotiated.label}"
    if handshake.cipher is not None:
        text += f", cipher {handshake.cipher}"
    return text + (f": {handshake.detail}" if handshake.detail else "")


def _route_log(route: RouteResult) -> str:
    text = f"directory {route.route.value}: {route.outcome.value}"
    if route.failed_step is not None:
        text += f" at step {route.failed_step.value}"
    text += (
        f", status {_or_dash(route.status_code)}, entries {_or_dash(route.entries)} "
        f"over {route.pages} pages"
    )
    if route.tls_version is not None:
        text += f", {route.tls_version.label}"
    text += f", {route.duration_seconds:.3f}s"
    return text + (f": {route.detail}" if route.detail else "")


def _snmp_log(result: SnmpProbeResult) -> str:
    text = f"snmp: {result.outcome.value}, {result.requests} requests"
    if result.walked:
        text += ", phone table walked"
    elif result.phones is not None:
        text += ", phone table unchanged since its last walk"
    if (scalars := result.scalars) is not None:
        text += (
            f", {scalars.registered} registered, {scalars.unregistered} unregistered, "
            f"{scalars.rejected} rejected phones"
        )
    if result.phones is not None:
        text += f", {len(result.phones)} rows"
    return text + (f": {result.detail}" if result.detail else "")


def _summary(run: ProbeRun, deadline: float) -> str:
    verdict = "success" if run.success else "failure"
    return (
        f"{run.probe}: {verdict}, reason {run.reason}, took {run.duration_seconds:.3f}s "
        f"of a {deadline:g}s deadline"
    )


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
