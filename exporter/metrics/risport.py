"""RisPort70's cost and the inventory's source: cucm_risport_*, cucm_inventory_*.

cucm_risport_requests{cluster="lab",node="cucm-pub"} 3.0
cucm_risport_pages{cluster="lab",node="cucm-pub"} 3.0
cucm_risport_rate_limit_faults{cluster="lab",node="cucm-pub"} 0.0
cucm_risport_devices{cluster="lab",node="cucm-pub"} 2574.0
cucm_risport_unmapped_model_devices{cluster="lab",node="cucm-pub"} 0.0
cucm_risport_inventory_timestamp_seconds{cluster="lab",node="cucm-pub"} 1.76e+09
cucm_inventory_source_info{cluster="lab",source="risport",role="primary"} 1.0
cucm_inventory_registered_phones{cluster="lab",node="cucm-pub",source="snmp"} 34.0
cucm_inventory_sources_agree{cluster="lab",node="cucm-pub"} 0.0
"""

from __future__ import annotations

from exporter.impact import ClusterPhones
from exporter.metrics.freshness import Freshness
from exporter.metrics.gauges import GaugeFamilies
from exporter.probes.risport_result import RisportProbeResult
from exporter.results import ProbeRun

__all__ = ["InventorySourceFamilies", "RisportFamilies"]

NODE = ["cluster", "node"]


class RisportFamilies(GaugeFamilies):
    """What each RisPort70 run spent and found (the node label: the node it asked)."""

    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness, "risport", NODE)

        self.requests = self.gauge(
            "cucm_risport_requests",
            "RisPort70 requests the last run sent (CUCM allows about 15 a minute per cluster, "
            "for every client together).",
        )
        self.pages = self.gauge("cucm_risport_pages", "selectCmDeviceExt pages the last run read.")
        self.faults = self.gauge(
            "cucm_risport_rate_limit_faults",
            'Rate-limit faults ("Exceeded allowed rate") the last run got; it then backs off.',
        )
        self.devices = self.gauge(
            "cucm_risport_devices", "Devices in the last complete RisPort70 inventory."
        )
        self.unmapped = self.gauge(
            "cucm_risport_unmapped_model_devices",
            "Devices whose numeric model code no map knows: counted under model unknown.",
        )
        self.walked = self.gauge(
            "cucm_risport_inventory_timestamp_seconds",
            "When the last complete RisPort70 inventory was read (a walk may span runs).",
        )

    def add_run(self, run: ProbeRun) -> None:
        result = run.result
        if not isinstance(result, RisportProbeResult):
            return
        labels = [run.cluster, run.node]
        self.requests.add_metric(labels, float(result.requests))
        self.pages.add_metric(labels, float(result.pages))
        self.faults.add_metric(labels, float(result.faults))
        if result.devices is not None:
            self.devices.add_metric(labels, float(result.devices))
            self.unmapped.add_metric(labels, float(result.unmapped_models))
        if result.walked_at is not None:
            self.walked.add_metric(labels, result.walked_at)


class InventorySourceFamilies(GaugeFamilies):
    """Which source a cluster's phone counts come from, and how the second one compares."""

    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness, None, ["cluster"])
        self.source = self.gauge(
            "cucm_inventory_source_info",
            "1 per inventory source with rows for the cluster: role primary (its rows are "
            "counted) or cross_check.",
            ("source", "role"),
        )
        self.registered = self.gauge(
            "cucm_inventory_registered_phones",
            "Registered phones each inventory source lists on the node.",
            ("node", "source"),
        )
        self.agree = self.gauge(
            "cucm_inventory_sources_agree",
            "1 if both inventory sources list the same registered phones on the node, 0 if "
            "not (e.g. SNMP's phone table without soft clients).",
            ("node",),
        )

    def add(self, cluster: str, summary: ClusterPhones) -> None:
        for index, source in enumerate(summary.sources[:2]):
            role = "primary" if index == 0 else "cross_check"
            self.source.add_metric([cluster, source, role], 1.0)
        for c in summary.cross_check:
            self.registered.add_metric([cluster, c.node, c.primary], float(c.primary_registered))
            self.registered.add_metric([cluster, c.node, c.other], float(c.other_registered))
            self.agree.add_metric([cluster, c.node], 1.0 if c.agree else 0.0)
