"""The corporate directory chain per route: cucm_directory_*.

cucm_directory_up{cluster="lab",node="cucm-pub",route="https_legacy"} 0.0
cucm_directory_result{cluster="lab",node="p",route="https_legacy",result="tls_version_rejected"} 1
cucm_directory_entries{cluster="lab",node="cucm-pub",route="http"} 50.0
"""

from __future__ import annotations

from exporter.metrics.freshness import Freshness
from exporter.metrics.gauges import GaugeFamilies
from exporter.results import DirectoryProbeResult, ProbeRun, RouteResult

__all__ = ["DirectoryFamilies"]

LABELS = ["cluster", "node", "route"]


class DirectoryFamilies(GaugeFamilies):
    """The cucm_directory_* families of one scrape, filled route by route."""

    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness, "directory", LABELS)

        self.up = self.gauge(
            "cucm_directory_up",
            "1 if the whole directory chain (menu, search form, canary search and its pages) "
            "worked on the route.",
        )
        self.result = self.gauge(
            "cucm_directory_result", "1 for the classified outcome of the route.", ("result",)
        )
        self.failed_step = self.gauge(
            "cucm_directory_failed_step_info",
            "1 for the step of the chain where the route failed (tvs, menu, input, search, "
            "next_page); absent when it worked.",
            ("step",),
        )
        self.status = self.gauge(
            "cucm_directory_status_code", "The last HTTP status code the route received."
        )
        self.duration = self.gauge(
            "cucm_directory_duration_seconds", "How long the walk of the chain took."
        )
        self.entries = self.gauge(
            "cucm_directory_entries",
            "Entries the canary search found, over the pages walked (max_pages).",
        )
        self.tls_version = self.gauge(
            "cucm_directory_tls_version_info",
            "1 for the TLS version negotiated on the route (HTTPS routes).",
            ("version",),
        )

    def add_run(self, run: ProbeRun) -> None:
        if isinstance(run.result, DirectoryProbeResult):
            for route in run.result.routes:
                self.add(run.cluster, run.node, route)

    def add(self, cluster: str, node: str, route: RouteResult) -> None:
        labels = [cluster, node, route.route.value]
        self.up.add_metric(labels, 1.0 if route.up else 0.0)
        self.result.add_metric([*labels, route.outcome.value], 1.0)
        if route.failed_step is not None:
            self.failed_step.add_metric([*labels, route.failed_step.value], 1.0)
        if route.status_code is not None:
            self.status.add_metric(labels, float(route.status_code))
        self.duration.add_metric(labels, route.duration_seconds)
        if route.entries is not None:
            self.entries.add_metric(labels, float(route.entries))
        if route.tls_version is not None:
            self.tls_version.add_metric([*labels, route.tls_version.label], 1.0)
