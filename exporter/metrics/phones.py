"""Phones and what the TLS policy means for their directory, per cluster: cucm_phones*.

Counts never grow with the number of phones, only with nodes, models and statuses.

    cucm_phones{cluster="lab",node="p",model="Cisco 7962",status="registered",max_tls="1.0"} 40
    cucm_phones_directory_at_risk{cluster="lab",node="cucm-pub",model="Cisco 7962"} 40.0
    cucm_node_required_tls_version{cluster="lab",node="cucm-pub"} 1.2
    cucm_phones_directory_state{cluster="lab",node="p",model="Cisco 7962",state="at_risk"} 40
    cucm_phones_directory_unknown{cluster="lab",node="p",missing="capability_unknown"} 1
    cucm_node_verdict_complete{cluster="lab",node="cucm-pub"} 0
    cucm_node_verdict_missing_info{cluster="lab",node="cucm-pub",missing="inventory_failed"} 1
    cucm_phones_verdict_basis{cluster="lab",node="p",basis="config",reason="ok"} 38
"""

from __future__ import annotations

from exporter.impact import ClusterPhones
from exporter.metrics.freshness import Freshness
from exporter.metrics.gauges import GaugeFamilies

__all__ = ["PhoneFamilies"]

NODE = ["cluster", "node"]


class PhoneFamilies(GaugeFamilies):
    def __init__(self, freshness: Freshness) -> None:
        # None: derived from the inventory and the TLS sweep.
        super().__init__(freshness, None, NODE)

        self.phones = self.gauge(
            "cucm_phones",
            "Phones in the node's inventory by model, status and the highest TLS version the "
            'model can speak ("unknown" when no catalogue entry matches); a phone seen by several '
            "nodes is counted once, where it is registered.",
            ("model", "status", "max_tls"),
        )
        self.at_risk = self.gauge(
            "cucm_phones_directory_at_risk",
            "Registered phones whose highest TLS version is below what the node's HTTPS "
            'directory path (TVS and Tomcat) now requires: they show "Host not found".',
            ("model",),
        )
        self.required = self.gauge(
            "cucm_node_required_tls_version",
            "The TLS version a phone needs for the node's HTTPS directory: the stricter of its "
            "TVS (2445) and Tomcat (8443) minimum.",
        )

        self.state = self.gauge(
            "cucm_phones_directory_state",
            "Registered phones by what the TLS policy means for their corporate directory: "
            'fine, at_risk (they show "Host not found"), covered (legacy or cut off, but their '
            "own configuration sends them to an HTTP directory whose route works), "
            "no_directory (no TVS/ccmcip directory to lose) or unknown (a fact is missing: see "
            "cucm_phones_directory_unknown). Judged from each phone's configuration file where "
            "it was read, else inferred: see cucm_phones_verdict_basis.",
            ("model", "state"),
        )
        self.unknown = self.gauge(
            "cucm_phones_directory_unknown",
            "Registered phones whose verdict could not be reached, by the missing fact "
            "(capability_unknown: the catalogue does not know the model or firmware; "
            "tls_policy_unknown: the node's TVS/Tomcat minimum could not be judged).",
            ("missing",),
        )
        self.complete = self.gauge(
            "cucm_node_verdict_complete",
            "1 if the node's phone verdict rests on every fact it needs (inventory read, TLS "
            "policy judged, every registered model known); 0 means a count of 0 at risk is "
            "not an all-clear.",
        )
        self.missing = self.gauge(
            "cucm_node_verdict_missing_info",
            "1 for each fact the node's phone verdict lacks (inventory_not_configured, "
            "inventory_failed, tls_policy_unknown, capability_unknown, http_route_unknown, "
            "config_node_unknown).",
            ("missing",),
        )

        self.basis = self.gauge(
            "cucm_phones_verdict_basis",
            "Registered phones by what their verdict rests on: basis config (their own "
            "SEP<MAC>.cnf.xml, reason ok) or inference (model and registered node), with the "
            "reason no file was read (not_read: the phoneconfig probe is off or the device has "
            "no SEP file; missing, encrypted, malformed, unsafe, oversized, timeout, "
            "unreachable, http_error, pending).",
            ("basis", "reason"),
        )

    def add(self, cluster: str, summary: ClusterPhones) -> None:
        for (node, model, status, max_tls), count in sorted(summary.phones.items()):
            self.phones.add_metric([cluster, node, model, status, max_tls], float(count))
        for (node, model), count in sorted(summary.at_risk.items()):
            self.at_risk.add_metric([cluster, node, model], float(count))
        for node, version in sorted(summary.required.items()):
            self.required.add_metric([cluster, node], version.number)
        states: dict[tuple[str, str, str], int] = {}
        for (node, model, _, verdict, _), count in summary.verdicts.items():
            states[(node, model, verdict.value)] = (
                states.get((node, model, verdict.value), 0) + count
            )
        for (node, model, state), count in sorted(states.items()):
            self.state.add_metric([cluster, node, model, state], float(count))
        for (node, missing), count in sorted(summary.unknown_by_reason().items()):
            self.unknown.add_metric([cluster, node, missing], float(count))
        for (node, on, reason), count in sorted(
            summary.basis.items(), key=lambda item: (item[0][0], item[0][1].value, item[0][2])
        ):
            self.basis.add_metric([cluster, node, on.value, reason], float(count))
        for node, facts in sorted(summary.facts.items()):
            self.complete.add_metric([cluster, node], 1.0 if facts.complete else 0.0)
            for missing in sorted(m.value for m in facts.missing):
                self.missing.add_metric([cluster, node, missing], 1.0)
