"""The report drawn with rich for a terminal, and as JSON for scripts."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table

from exporter.report.model import ClusterReport, Report

__all__ = ["as_json", "render_text"]


def as_json(report: Report) -> dict[str, Any]:
    """The report in the shape docs/check-report.schema.json documents."""
    return dataclasses.asdict(report)


def render_text(report: Report, console: Console) -> None:
    for cluster in report.clusters:
        console.rule(f"[bold]Cluster {cluster.name}")
        console.print(_probe_table(cluster))
        console.print(_tls_table(cluster))
        if not cluster.nodes_agree:
            console.print("[bold red]The nodes do not require the same TLS version.")
        console.print(_route_table(cluster))
        console.print(_phone_table(cluster, _assumed(report)))
        if not cluster.complete:
            console.print("[bold yellow]Incomplete: some facts are missing (see the verdict).")
        console.print("[bold]Verdict")
        for line in (*cluster.verdict, *cluster.inventory):
            # On a terminal rich wraps; elsewhere a line stays one line, indentation kept.
            console.print(f"  - {line}", highlight=False, soft_wrap=not console.is_terminal)
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
    columns = ["node", "model", "max TLS", "registered", "cut off now", "not judged"]
    if assumed:
        columns.append(f"cut off if {assumed}")
    for column in columns:
        table.add_column(column)
    for node in cluster.nodes:
        for line in node.phones:
            row = [
                node.name,
                line.model,
                line.max_tls,
                str(line.registered),
                str(line.at_risk),
                str(line.not_judged) if line.not_judged else "",
            ]
            if assumed:
                row.append(str(line.at_risk_if_assumed))
            table.add_row(*row)
    return table


def _assumed(report: Report) -> str | None:
    parts = [f"{node} at {v}" for node, v in report.assumed_node_min_versions.items()]
    if report.assumed_min_version:
        parts.append(f"{'others' if parts else 'all'} at {report.assumed_min_version}")
    return ", ".join(parts) or None
