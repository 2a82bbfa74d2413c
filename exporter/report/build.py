"""Probe runs + config + catalogue -> a `Report`. Pure: the phone counts come from the impact
layer's `cluster_phones`, the one computation /metrics uses too, so the two cannot disagree."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from exporter import __version__
from exporter.catalogue import Catalogue
from exporter.config import ClusterConfig, ExporterConfig
from exporter.impact import (
    ClusterPhones,
    PhoneVerdict,
    Verdict,
    cluster_phones,
    required_version,
)
from exporter.inventory_compare import inventory_lines
from exporter.probes import BUILTIN_PROBES, Key, ProbeSpec
from exporter.report.basis import basis_lines, basis_sentences
from exporter.report.model import (
    ClusterReport,
    ExitCode,
    InventorySourceLine,
    MissingLine,
    ModelLine,
    NodeReport,
    PortLine,
    ProbeLine,
    Report,
    RouteLine,
    WhatIf,
)
from exporter.report.phones import PhoneLine, phone_lines
from exporter.report.verdict import verdict_lines
from exporter.results import (
    DirectoryOutcome,
    DirectoryProbeResult,
    DirectoryRoute,
    ProbeRun,
    TlsProbeResult,
    TlsVersion,
)

__all__ = ["build_report"]

_HTTP_SERVICE = "http://{host}:8080/ccmcip/xmldirectoryinput.jsp"
_complete_or_not = {True: ExitCode.OK, False: ExitCode.INCOMPLETE}
_WORKING_ROUTES = (DirectoryRoute.HTTP.value, DirectoryRoute.HTTPS.value)


def build_report(
    config: ExporterConfig,
    runs: Iterable[ProbeRun],
    catalogue: Catalogue,
    what_if: WhatIf | None = None,
    specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
    *,
    generated_at: datetime | None = None,
    phones: list[PhoneLine] | None = None,
) -> Report:
    """`phones`: when given, the phones broken now or in the what-if are appended to it
    (`check --phones`), from the very verdicts the report counts."""
    what_if = what_if or WhatIf()
    by_key = {(r.cluster, r.node, r.probe): r for r in runs}
    by_name = {spec.name: spec for spec in specs}
    clusters = tuple(
        _cluster(cluster, by_key, by_name, catalogue, what_if, phones)
        for cluster in config.clusters
    )
    broken = any(
        line.route in _WORKING_ROUTES and line.result != DirectoryOutcome.OK.value
        for c in clusters
        for n in c.nodes
        for line in n.routes
    )
    risky = any(c.at_risk or c.at_risk_if_assumed for c in clusters)
    complete = all(c.complete for c in clusters)
    code = ExitCode.AT_RISK if broken or risky else _complete_or_not[complete]
    when = generated_at or datetime.now(UTC)
    return Report(
        generated_at=when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        exporter_version=__version__,
        clusters=clusters,
        assumed_min_version=what_if.everywhere.value if what_if.everywhere else None,
        assumed_node_min_versions={n: v.value for n, v in what_if.nodes.items()},
        complete=complete,
        exit_code=int(code),
    )


def _result(runs: Mapping[Key, ProbeRun], key: Key) -> Any:
    run = runs.get(key)
    return run.result if run is not None else None


def _cluster(
    cluster: ClusterConfig,
    runs: Mapping[Key, ProbeRun],
    specs: Mapping[str, ProbeSpec],
    catalogue: Catalogue,
    what_if: WhatIf,
    phones: list[PhoneLine] | None = None,
) -> ClusterReport:
    mine = {key: run for key, run in runs.items() if key[0] == cluster.name}
    names = [node.name for node in cluster.nodes]
    # `check --phones`: the verdicts as they are counted, now and in the what-if.
    listed_now: list[PhoneVerdict] | None = None if phones is None else []
    listed_then: list[PhoneVerdict] | None = None if phones is None else []
    now = cluster_phones(mine, specs, catalogue, names, listing=listed_now)
    assumed = {n: v for n in names if (v := what_if.for_node(n)) is not None}
    then = cluster_phones(mine, specs, catalogue, names, assumed, listed_then) if what_if else None
    if phones is not None and listed_now is not None:
        phones.extend(phone_lines(cluster.name, listed_now, listed_then if what_if else None))

    nodes = []
    for node in cluster.nodes:
        tls = _result(mine, (cluster.name, node.name, "tls"))
        tls = tls if isinstance(tls, TlsProbeResult) else None
        directory = _result(mine, (cluster.name, node.name, "directory"))
        routes = directory.routes if isinstance(directory, DirectoryProbeResult) else ()
        http = next((r for r in routes if r.route is DirectoryRoute.HTTP), None)
        node_runs = [(p, run) for p in specs if (run := mine.get((cluster.name, node.name, p)))]
        facts = now.facts.get(node.name)
        nodes.append(
            NodeReport(
                name=node.name,
                host=node.host,
                probes=tuple(
                    ProbeLine(probe, run.success, run.reason, tuple(specs[probe].describe_run(run)))
                    for probe, run in node_runs
                ),
                ports=tuple(_port_lines(tls)),
                required_tls=_version_text(required_version(tls) if tls else None),
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
                phones=tuple(_model_lines(node.name, now, then)),
                http_directory_url=_HTTP_SERVICE.format(host=node.host),
                http_route_works=None if http is None else http.outcome is DirectoryOutcome.OK,
                probe_failures=tuple(
                    f"{p}: {run.reason}" for p, run in node_runs if not run.success
                ),
                complete=facts is None or facts.complete,
                missing=tuple(
                    MissingLine(fact.value, reason)
                    for fact, reason in (facts.missing.items() if facts else ())
                ),
            )
        )
    requirements = {n.required_tls for n in nodes if n.required_tls}
    report = ClusterReport(
        name=cluster.name,
        nodes=tuple(nodes),
        nodes_agree=len(requirements) <= 1,
        at_risk=now.count(Verdict.AT_RISK),
        at_risk_if_assumed=then.count(Verdict.AT_RISK) if then else None,
        not_judged=now.count(Verdict.UNKNOWN),
        not_judged_if_assumed=then.count(Verdict.UNKNOWN) if then else None,
        no_directory=now.count(Verdict.NO_DIRECTORY),
        complete=now.complete,
        verdict=(),
        covered=now.count(Verdict.COVERED),
        covered_if_assumed=then.count(Verdict.COVERED) if then else None,
        basis=basis_lines(now),
    )
    return dataclasses.replace(
        report,
        verdict=(*verdict_lines(report, what_if), *basis_sentences(report)),
        inventory=tuple(inventory_lines(now.sources, now.cross_check))
        or (f"no phone inventory this run (the cluster's inventory setting: {cluster.inventory})",),
        inventory_setting=cluster.inventory,
        inventory_sources=tuple(
            InventorySourceLine(source, "primary" if index == 0 else "cross_check")
            for index, source in enumerate(now.sources[:2])
        ),
    )


def _version_text(version: TlsVersion | None) -> str | None:
    return version.value if version is not None else None


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


def _model_lines(node: str, now: ClusterPhones, then: ClusterPhones | None) -> Iterable[ModelLine]:
    """One line per (model, firmware's highest TLS version): a model on two firmware levels
    is two lines, each with its own count, never the model's total twice."""
    counts: dict[tuple[str, str], Counter[Verdict]] = {}
    for (at, model, max_tls, verdict, _), count in now.verdicts.items():
        if at == node:
            counts.setdefault((model, max_tls), Counter())[verdict] += count
    assumed: Counter[tuple[str, str]] = Counter()
    for (at, model, max_tls, verdict, _), count in then.verdicts.items() if then else ():
        if at == node and verdict is Verdict.AT_RISK:
            assumed[(model, max_tls)] += count
    for (model, max_tls), verdicts in sorted(counts.items()):
        yield ModelLine(
            model=model,
            max_tls=max_tls,
            registered=sum(verdicts.values()),
            at_risk=verdicts[Verdict.AT_RISK],
            at_risk_if_assumed=assumed[(model, max_tls)] if then else None,
            not_judged=verdicts[Verdict.UNKNOWN],
            no_directory=verdicts[Verdict.NO_DIRECTORY],
        )
