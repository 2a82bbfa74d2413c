"""Bookkeeping of every probe run: cucm_probe_*.

cucm_probe_success{cluster="lab",node="cucm-pub",probe="tls"} 1.0
cucm_probe_duration_seconds{cluster="lab",node="cucm-pub",probe="tls"} 0.031
cucm_probe_last_run_timestamp_seconds{cluster="lab",node="cucm-pub",probe="tls"} 1.7e+09
cucm_probe_timeout_seconds{cluster="lab",node="cucm-pub",probe="tls"} 4.5   (/probe only)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.results import ProbeRun

__all__ = ["ProbeFamilies", "timeout_family"]

LABELS = ["cluster", "node", "probe"]


class ProbeFamilies:
    def __init__(self) -> None:
        self.success = GaugeMetricFamily(
            "cucm_probe_success",
            "1 if the last run's measurement worked: the node answered, so the probe's verdicts "
            "are readings. A rejected TLS version or a failing directory route is a successful "
            "measurement of a bad state (see cucm_tls_version_accepted, cucm_directory_up); "
            "unlike blackbox_exporter's probe_success, this is not the target's health.",
            labels=LABELS,
        )
        self.duration = GaugeMetricFamily(
            "cucm_probe_duration_seconds", "How long the last run of the probe took.", labels=LABELS
        )
        self.last_run = GaugeMetricFamily(
            "cucm_probe_last_run_timestamp_seconds",
            "When the last run of the probe started (unix time); all cucm_ target "
            "metrics are as of this run.",
            labels=LABELS,
        )

    def add(self, run: ProbeRun) -> None:
        labels = [run.cluster, run.node, run.probe]
        self.success.add_metric(labels, 1.0 if run.success else 0.0)
        self.duration.add_metric(labels, run.duration_seconds)
        self.last_run.add_metric(labels, run.started)

    def all(self) -> tuple[Metric, ...]:
        return (self.success, self.duration, self.last_run)


def timeout_family(runs: Iterable[ProbeRun], deadlines: Mapping[str, float]) -> Metric:
    """The deadline each on-demand run had (/probe only)."""
    family = GaugeMetricFamily(
        "cucm_probe_timeout_seconds",
        "The deadline of this on-demand run: the module's timeout, cut to the scrape "
        "timeout Prometheus announced minus a margin.",
        labels=LABELS,
    )
    for run in sorted(runs, key=lambda r: (r.cluster, r.node, r.probe)):
        family.add_metric([run.cluster, run.node, run.probe], deadlines[run.probe])
    return family
