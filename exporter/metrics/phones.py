"""Phones and what the TLS policy means for their directory, per cluster: cucm_phones*.

Counts never grow with the number of phones, only with nodes, models and statuses.

    cucm_phones{cluster="lab",node="p",model="Cisco 7962",status="registered",max_tls="1.0"} 40
    cucm_phones_directory_at_risk{cluster="lab",node="cucm-pub",model="Cisco 7962"} 40.0
    cucm_node_required_tls_version{cluster="lab",node="cucm-pub"} 1.2
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.impact import ClusterPhones
from exporter.metrics.freshness import Freshness

__all__ = ["PhoneFamilies"]

NODE = ["cluster", "node"]


class PhoneFamilies:
    def __init__(self, freshness: Freshness) -> None:
        help_text = freshness.for_probe(None)  # derived from the inventory and the TLS sweep

        def family(name: str, what: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_text(what), labels=labels)

        self.phones = family(
            "cucm_phones",
            "Phones in the node's inventory by model, status and the highest TLS version the "
            'model can speak ("unknown" when no catalogue entry matches); a phone seen by several '
            "nodes is counted once, where it is registered.",
            [*NODE, "model", "status", "max_tls"],
        )
        self.at_risk = family(
            "cucm_phones_directory_at_risk",
            "Registered phones whose highest TLS version is below what the node's HTTPS "
            'directory path (TVS and Tomcat) now requires: they show "Host not found".',
            [*NODE, "model"],
        )
        self.required = family(
            "cucm_node_required_tls_version",
            "The TLS version a phone needs for the node's HTTPS directory: the stricter of its "
            "TVS (2445) and Tomcat (8443) minimum.",
            NODE,
        )

    def add(self, cluster: str, summary: ClusterPhones) -> None:
        for (node, model, status, max_tls), count in sorted(summary.phones.items()):
            self.phones.add_metric([cluster, node, model, status, max_tls], float(count))
        for (node, model), count in sorted(summary.at_risk.items()):
            self.at_risk.add_metric([cluster, node, model], float(count))
        for node, version in sorted(summary.required.items()):
            self.required.add_metric([cluster, node], version.number)

    def all(self) -> tuple[Metric, ...]:
        return (self.phones, self.at_risk, self.required)
