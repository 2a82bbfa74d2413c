"""/probe?debug=true: what was probed, a line per handshake, route and poll, then the metrics.

Every line that carries text from the request or the configuration (host names, IPv6 scope
ids, which may hold a newline) is escaped: one line of output per line we mean to write.
"""

from __future__ import annotations

from collections.abc import Iterator

from exporter.config import NodeConfig
from exporter.ondemand import (
    ADHOC_CLUSTER,
    TIMEOUT_HEADER,
    TIMEOUT_OFFSET,
    OnDemandProber,
    OnDemandResult,
)
from exporter.results import ProbeRun

__all__ = ["render_debug"]


def _one_line(text: str) -> str:
    """Control characters (newline, carriage return, escape...) as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def render_debug(result: OnDemandResult, prober: OnDemandProber, exposition: str) -> str:
    """`debug=true`: what was probed, a log line per handshake/route/poll, then the metrics."""
    lines = [*_describe(result), "", "Logs for the probe:"]
    for run in result.runs:
        lines.extend(prober.describe_run(run))
    lines += ["", "Result summary:"]
    lines += [
        _summary(run, result.deadlines[run.probe], prober.summarize_run(run)) for run in result.runs
    ]
    lines = [_one_line(line) for line in lines]
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


def _summary(run: ProbeRun, deadline: float, outcome: str) -> str:
    verdict = "success" if run.success else "failure"
    return (
        f"{run.probe}: {verdict}, reason {run.reason}, took {run.duration_seconds:.3f}s "
        f"of a {deadline:g}s deadline; {outcome}"
    )
