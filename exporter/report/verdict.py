"""The report's verdict as sentences: what is wrong, what could not be judged, what to do.

Never an all-clear without the facts for it: "nothing at risk" is only said of a cluster whose
every node had its inventory, its TLS policy and a catalogue entry for every registered model.
"""

from __future__ import annotations

from collections import Counter

from exporter.impact import Missing
from exporter.report.model import ClusterReport, NodeReport, WhatIf
from exporter.results import DirectoryRoute

__all__ = ["verdict_lines"]


def verdict_lines(cluster: ClusterReport, what_if: WhatIf) -> list[str]:
    """What is wrong, what could not be judged, then what the operator can do."""
    lines = []
    if not cluster.nodes_agree:
        levels = ", ".join(
            f"{n.name} requires TLS {n.required_tls}" for n in cluster.nodes if n.required_tls
        )
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
        lines.extend(_not_judged(node))
    risky = _risky_models(cluster, assumed=bool(what_if))
    if risky:
        lines.extend(_options(cluster, risky, what_if))
    if not risky and not what_if and cluster.complete:
        if not lines:  # complete, nothing at risk, and nothing else wrong
            lines.append("Nothing at risk: every registered phone can reach the HTTPS directory.")
        return lines
    lines.extend(_conclusion(cluster, what_if, bool(risky)))
    return lines


def _not_judged(node: NodeReport) -> list[str]:
    lines = []
    for missing in node.missing:
        if missing.fact == Missing.CAPABILITY_UNKNOWN.value:
            models = Counter(
                {f"{p.model} (max TLS {p.max_tls})": p.not_judged for p in node.phones}
            )
            listed = ", ".join(f"{m} x{n}" for m, n in models.most_common() if n)
            lines.append(
                f"{node.name}: not judged: {listed}: the catalogue does not know the model or "
                "its firmware. Declare it under `catalogue:` in the configuration."
            )
        else:
            lines.append(f"{node.name}: not judged ({missing.fact}): {missing.reason}.")
    return lines


def _conclusion(cluster: ClusterReport, what_if: WhatIf, risky: bool) -> list[str]:
    if what_if:
        unknown = cluster.not_judged_if_assumed or 0
        if risky:
            return []
        if unknown:
            return [
                f"If {what_if.describe()}, no phone that could be judged would be cut off; "
                f"{unknown} registered phones could not be judged (see above)."
            ]
        if not cluster.complete:
            return [
                f"If {what_if.describe()}, no registered phone would be cut off; today's "
                "state could not be fully judged (see above)."
            ]
        if what_if.nodes:
            return [f"If {what_if.describe()}, no registered phone would be cut off."]
        assert what_if.everywhere is not None
        return [
            f"Requiring TLS {what_if.everywhere.value} everywhere would cut no registered phone "
            "off the directory."
        ]
    if risky or cluster.complete:
        return []
    return [
        f"Not judged: {cluster.not_judged} registered phones could not be judged and facts "
        "are missing (see above), so this report cannot say that nothing is at risk."
    ]


def _risky_models(cluster: ClusterReport, *, assumed: bool) -> Counter[str]:
    risky: Counter[str] = Counter()
    for node in cluster.nodes:
        for line in node.phones:
            count = line.at_risk_if_assumed if assumed else line.at_risk
            if count:
                risky[line.model] += count
    return risky


_HTTP_STATE = {
    True: "works end to end and stays on HTTP",
    False: "is BROKEN on this node (see the http route above)",
    None: "was not probed",
}


def _options(cluster: ClusterReport, risky: Counter[str], what_if: WhatIf) -> list[str]:
    models = ", ".join(f"{model} x{count}" for model, count in risky.most_common())
    if what_if.nodes:
        when = f"would lose the directory if {what_if.describe()}"
    elif what_if.everywhere is not None:
        when = f"would lose the directory if every node required TLS {what_if.everywhere.value}"
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
        if any((p.at_risk_if_assumed if what_if else p.at_risk) for p in node.phones)
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
