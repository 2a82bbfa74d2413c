"""The change-window readiness report: one round of every probe, read as a voice engineer would.

`build_report` is pure: probe runs + config + catalogue -> a frozen `Report`. `render_text`
draws it with rich for a terminal; `as_json` gives the same content for scripts, in the shape
docs/check-report.schema.json documents.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from exporter.catalogue import Catalogue
from exporter.config import ClusterConfig, ExporterConfig
from exporter.impact import cluster_phones, required_version, summarize
from exporter.probes import BUILTIN_PROBES, Key, ProbeSpec
from exporter.results import (
    DirectoryOutcome,
    DirectoryProbeResult,
    DirectoryRoute,
    PhoneRow,
    ProbeRun,
    TlsProbeResult,
    TlsVersion,
)

__all__ = ["Report", "as_json", "build_report", "render_text"]

EXIT_OK, EXIT_AT_RISK = 0, 1
_HTTP_SERVICE = "http://{host}:8080/ccmcip/xmldirectoryinput.jsp"


@dataclass(frozen=True)
class PortLine:
    port: int
    service: str
    accepted: tuple[str, ...]  # versions the port accepts, e.g. ("1.2",)
    unknown: tuple[str, ...]  # versions the probe could not judge (timeout, local refusal, ...)
    min_version: str | None
    max_version: str | None


@dataclass(frozen=True)
class RouteLine:
    route: str
    result: str
    failed_step: str | None
    entries: int | None
    detail: str


@dataclass(frozen=True)
class ModelLine:
    model: str
    max_tls: str  # "1.0".."1.3" or "unknown"
    registered: int
    at_risk: int  # registered phones cut off from the HTTPS directory now
    at_risk_if_assumed: int | None  # the same under --assume-min-version


@dataclass(frozen=True)
class ProbeLine:
    probe: str
    success: bool
    reason: str
    lines: tuple[str, ...]  # the result as its probe's spec reads it


@dataclass(frozen=True)
class NodeReport:
    name: str
    host: str
    probes: tuple[ProbeLine, ...]
    ports: tuple[PortLine, ...]
    required_tls: str | None  # the stricter of TVS and Tomcat minimum
    routes: tuple[RouteLine, ...]
    phones: tuple[ModelLine, ...]
    http_directory_url: str  # the workaround's service URL for this node
    http_route_works: bool | None  # None: the http route was not probed
    probe_failures: tuple[str, ...]  # "snmp: timeout", ...


@dataclass(frozen=True)
class ClusterReport:
    name: str
    nodes: tuple[NodeReport, ...]
    nodes_agree: bool  # every node requires the same TLS version
    at_risk: int
    at_risk_if_assumed: int | None
    verdict: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    clusters: tuple[ClusterReport, ...]
    assumed_min_version: str | None
    exit_code: int


def build_report(
    config: ExporterConfig,
    runs: Iterable[ProbeRun],
    catalogue: Catalogue,
    assume: TlsVersion | None = None,
    specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
) -> Report:
    by_key = {(r.cluster, r.node, r.probe): r for r in runs}
    by_name = {spec.name: spec for spec in specs}
    clusters = tuple(
        _cluster(cluster, by_key, by_name, catalogue, assume) for cluster in config.clusters
    )
    broken = any(
        line.route in (DirectoryRoute.HTTP.value, DirectoryRoute.HTTPS.value)
        and line.result != "ok"
        for c in clusters
        for n in c.nodes
        for line in n.routes
    )
    risky = any(c.at_risk or c.at_risk_if_assumed for c in clusters)
    return Report(
        clusters=clusters,
        assumed_min_version=assume.value if assume else None,
        exit_code=EXIT_AT_RISK if broken or risky else EXIT_OK,
    )


def _result(runs: Mapping[tuple[str, str, str], ProbeRun], key: tuple[str, str, str]) -> Any:
    run = runs.get(key)
    return run.result if run is not None else None


def _inventories(
    runs: Mapping[Key, ProbeRun], specs: Mapping[str, ProbeSpec]
) -> dict[str, Sequence[PhoneRow]]:
    found: dict[str, Sequence[PhoneRow]] = {}
    for (_, node, probe), run in sorted(runs.items()):
        spec = specs.get(probe)
        if spec is not None and (rows := spec.phones(run)) is not None:
            found.setdefault(node, rows)
    return found


def _cluster(
    cluster: ClusterConfig,
    runs: Mapping[Key, ProbeRun],
    specs: Mapping[str, ProbeSpec],
    catalogue: Catalogue,
    assume: TlsVersion | None,
) -> ClusterReport:
    mine = {key: run for key, run in runs.items() if key[0] == cluster.name}
    tls: dict[str, TlsProbeResult] = {}
    for node in cluster.nodes:
        if isinstance(result := _result(runs, (cluster.name, node.name, "tls")), TlsProbeResult):
            tls[node.name] = result
    inventories = _inventories(mine, specs)
    required = {n: required_version(r) for n, r in tls.items()}
    now = cluster_phones(mine, specs, catalogue)
    what_if = None
    if assume is not None:
        assumed = {n: _stricter(required.get(n), assume) for n in inventories}
        what_if = summarize(inventories, assumed, catalogue)

    nodes = []
    for node in cluster.nodes:
        directory = _result(runs, (cluster.name, node.name, "directory"))
        routes = directory.routes if isinstance(directory, DirectoryProbeResult) else ()
        http = next((r for r in routes if r.route is DirectoryRoute.HTTP), None)
        nodes.append(
            NodeReport(
                name=node.name,
                host=node.host,
                probes=tuple(
                    ProbeLine(probe, run.success, run.reason, tuple(spec.describe_run(run)))
                    for probe, spec in specs.items()
                    if (run := runs.get((cluster.name, node.name, probe))) is not None
                ),
                ports=tuple(_port_lines(tls.get(node.name))),
                required_tls=_version_text(required.get(node.name)),
                routes=tuple(
                    RouteLine(
                        r.route.value,
                        r.outcome.value,
                        r.failed_step.value if r.failed_step else None,
                        r.entries,
                        r.detail,
                    )
                    for r in routes
                ),
                phones=tuple(_model_lines(node.name, now, what_if)),
                http_directory_url=_HTTP_SERVICE.format(host=node.host),
                http_route_works=None if http is None else http.outcome is DirectoryOutcome.OK,
                probe_failures=tuple(
                    f"{probe}: {run.reason}"
                    for probe in specs
                    if (run := runs.get((cluster.name, node.name, probe))) and not run.success
                ),
            )
        )
    requirements = {n.required_tls for n in nodes if n.required_tls}
    at_risk = sum(now.at_risk.values())
    at_risk_if = sum(what_if.at_risk.values()) if what_if else None
    report = ClusterReport(
        name=cluster.name,
        nodes=tuple(nodes),
        nodes_agree=len(requirements) <= 1,
        at_risk=at_risk,
        at_risk_if_assumed=at_risk_if,
        verdict=(),
    )
    return dataclasses.replace(report, verdict=tuple(_verdict(report, assume)))


def _version_text(version: TlsVersion | None) -> str | None:
    return version.value if version is not None else None


def _stricter(current: TlsVersion | None, assumed: TlsVersion) -> TlsVersion:
    if current is None or assumed.number > current.number:
        return assumed
    return current


def _port_lines(result: TlsProbeResult | None) -> Iterable[PortLine]:
    for port in result.ports if result else ():
        verdicts = {h.pinned: port.accepted(h) for h in port.pinned if h.pinned is not None}
        yield PortLine(
            port=port.port,
            service=port.service,
            accepted=tuple(v.value for v, ok in verdicts.items() if ok),
            unknown=tuple(v.value for v, ok in verdicts.items() if ok is None),
            min_version=port.min_version.value if port.min_version else None,
            max_version=port.max_version.value if port.max_version else None,
        )


def _model_lines(node: str, now: Any, what_if: Any) -> Iterable[ModelLine]:
    registered: Counter[tuple[str, str]] = Counter()
    for (phone_node, model, status, max_tls), count in now.phones.items():
        if phone_node == node and status == "registered":
            registered[(model, max_tls)] += count
    for (model, max_tls), count in sorted(registered.items()):
        yield ModelLine(
            model=model,
            max_tls=max_tls,
            registered=count,
            at_risk=now.at_risk.get((node, model), 0),
            at_risk_if_assumed=what_if.at_risk.get((node, model), 0) if what_if else None,
        )


def _verdict(cluster: ClusterReport, assume: TlsVersion | None) -> list[str]:
    """What is wrong, then what the operator can do about phones at risk."""
    lines = []
    if not cluster.nodes_agree:
        levels = ", ".join(f"{n.name} requires TLS {n.required_tls}" for n in cluster.nodes)
        lines.append(
            f"The nodes disagree ({levels}): a half-applied `set tls min-version`. Before "
            "15SU2 the setting is per node; finish or undo it on every node."
        )
    for node in cluster.nodes:
        for route in node.routes:
            if route.route != DirectoryRoute.HTTPS_LEGACY.value and route.result != "ok":
                lines.append(
                    f"{node.name}: the {route.route} directory route fails ({route.result} at "
                    f"{route.failed_step}): {route.detail}"
                )
        lines.extend(
            f"{node.name}: probe {failure}; its figures are missing from this report."
            for failure in node.probe_failures
        )
    risky = _risky_models(cluster, assume)
    if risky:
        lines.extend(_options(cluster, risky, assume))
    elif assume is not None:
        lines.append(
            f"Requiring TLS {assume.value} everywhere would cut no registered phone off the "
            "directory."
        )
    elif not lines:
        lines.append("Nothing at risk: every registered phone can reach the HTTPS directory.")
    return lines


def _risky_models(cluster: ClusterReport, assume: TlsVersion | None) -> Counter[str]:
    risky: Counter[str] = Counter()
    for node in cluster.nodes:
        for line in node.phones:
            count = line.at_risk_if_assumed if assume is not None else line.at_risk
            if count:
                risky[line.model] += count
    return risky


_HTTP_STATE = {
    True: "works end to end and stays on HTTP",
    False: "is BROKEN on this node (see the http route above)",
    None: "was not probed",
}


def _options(cluster: ClusterReport, risky: Counter[str], assume: TlsVersion | None) -> list[str]:
    models = ", ".join(f"{model} x{count}" for model, count in risky.most_common())
    if assume is not None:
        when = f"would lose the directory if every node required TLS {assume.value}"
    else:
        when = 'cannot use the HTTPS directory now ("Host not found")'
    lines = [
        f"{sum(risky.values())} registered phones {when}: {models}.",
        f"Option 1, replace them: {models}.",
    ]
    # Phones use the directory of the node they register to: offer the workaround there.
    affected = [
        node
        for node in cluster.nodes
        if any((p.at_risk_if_assumed if assume is not None else p.at_risk) for p in node.phones)
    ]
    lines.extend(
        "Option 2, the HTTP directory: an XML service (Service URL and Secure-Service URL) "
        f"{node.http_directory_url}, subscribed by the legacy phones of {node.name}; it "
        f"{_HTTP_STATE[node.http_route_works]}."
        for node in affected
    )
    lines.append(
        "Option 3, revert: `set tls min-version 1.0` on every node (each node before 15SU2); "
        "each node reboots, so use a maintenance window; certificates may be regenerated and "
        "legacy phones then lose trust; reset the admin password store from the CLI afterwards."
    )
    return lines


# --- output ------------------------------------------------------------------------------


def as_json(report: Report) -> dict[str, Any]:
    return dataclasses.asdict(report)


def render_text(report: Report, console: Console) -> None:
    for cluster in report.clusters:
        console.rule(f"[bold]Cluster {cluster.name}")
        console.print(_probe_table(cluster))
        console.print(_tls_table(cluster))
        if not cluster.nodes_agree:
            console.print("[bold red]The nodes do not require the same TLS version.")
        console.print(_route_table(cluster))
        console.print(_phone_table(cluster, report.assumed_min_version))
        console.print("[bold]Verdict")
        for line in cluster.verdict:
            console.print(f"  - {line}", highlight=False)
        console.print()


def _probe_table(cluster: ClusterReport) -> Table:
    table = Table(title="Probe runs", title_justify="left")
    for column in ("node", "probe", "result"):
        table.add_column(column)
    for node in cluster.nodes:
        for line in node.probes:
            style = "green" if line.success else "red"
            table.add_row(node.name, line.probe, f"[{style}]{line.reason}[/]")
    return table


def _tls_table(cluster: ClusterReport) -> Table:
    table = Table(title="TLS versions accepted", title_justify="left")
    for column in ("node", "port", "service", "accepted", "not judged", "requires"):
        table.add_column(column)
    for node in cluster.nodes:
        for port in node.ports:
            table.add_row(
                node.name,
                str(port.port),
                port.service,
                ", ".join(port.accepted) or "none",
                ", ".join(port.unknown),
                node.required_tls or "?",
            )
    return table


def _route_table(cluster: ClusterReport) -> Table:
    table = Table(title="Corporate directory routes", title_justify="left")
    for column in ("node", "route", "result", "failed step", "entries"):
        table.add_column(column)
    for node in cluster.nodes:
        for route in node.routes:
            style = "green" if route.result == "ok" else "red"
            table.add_row(
                node.name,
                route.route,
                f"[{style}]{route.result}[/]",
                route.failed_step or "",
                "" if route.entries is None else str(route.entries),
            )
    return table


def _phone_table(cluster: ClusterReport, assumed: str | None) -> Table:
    table = Table(title="Registered phones", title_justify="left")
    columns = ["node", "model", "max TLS", "registered", "cut off now"]
    if assumed:
        columns.append(f"cut off at TLS {assumed}")
    for column in columns:
        table.add_column(column)
    for node in cluster.nodes:
        for line in node.phones:
            row = [node.name, line.model, line.max_tls, str(line.registered), str(line.at_risk)]
            if assumed:
                row.append(str(line.at_risk_if_assumed))
            table.add_row(*row)
    return table
