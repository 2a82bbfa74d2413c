"""The exporter's own state: cucm_exporter_*. Cheap, and built afresh on every scrape.

cucm_exporter_build_info{version="0.1.0",python_version="3.11.7"} 1.0
cucm_exporter_probe_runs_skipped_total{probe="snmp"} 0.0
cucm_exporter_config_last_reload_successful 1.0
cucm_exporter_probe_interval_seconds{probe="tls"} 60.0
cucm_exporter_configured_nodes{cluster="lab"} 3.0
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter import __version__
from exporter.state import ExporterState

__all__ = ["self_families"]


def self_families(
    state: ExporterState, skipped: Mapping[str, int], intervals: Mapping[str, float]
) -> Iterator[Metric]:
    """`skipped`: runs skipped per probe since start; `intervals`: the probes the running
    configuration schedules and their intervals (their skip counters are exported at zero from
    the start so that rate() works)."""
    build = GaugeMetricFamily(
        "cucm_exporter_build_info",
        "A metric with a constant '1' value labeled by the exporter's version and the "
        "Python it runs on.",
        labels=["version", "python_version"],
    )
    build.add_metric([__version__, platform.python_version()], 1.0)
    yield build
    yield GaugeMetricFamily(
        "cucm_exporter_asyncio_tasks",
        "Tasks alive on the exporter's event loop; growth over time would be a leak.",
        value=float(_running_tasks()),
    )
    counter = CounterMetricFamily(
        "cucm_exporter_probe_runs_skipped",
        "Scheduled probe runs skipped because the node's previous run of that probe was "
        "still going or waiting for a slot (scheduler.max_concurrent_probes): the exporter "
        "is not keeping up.",
        labels=["probe"],
    )
    for probe in sorted(set(intervals) | set(skipped)):
        counter.add_metric([probe], float(skipped.get(probe, 0)))
    yield counter
    # Staleness alerts compare a run's age with this, so they follow the configuration.
    interval = GaugeMetricFamily(
        "cucm_exporter_probe_interval_seconds",
        "Seconds between two scheduled runs of the probe against the same node "
        "(probes.<probe>.interval); absent for a probe that is not enabled.",
        labels=["probe"],
    )
    for probe, seconds in sorted(intervals.items()):
        interval.add_metric([probe], seconds)
    yield interval
    yield GaugeMetricFamily(
        "cucm_exporter_config_last_reload_successful",
        "1 if the last configuration (re)load succeeded; 0 means the previous config runs on.",
        value=1.0 if state.last_reload_successful else 0.0,
    )
    yield GaugeMetricFamily(
        "cucm_exporter_config_last_reload_success_timestamp_seconds",
        "When the configuration was last loaded successfully (unix time).",
        value=state.last_reload_success_timestamp,
    )
    # A truncated file that still validates reloads "successfully": this shows what it kept.
    nodes = GaugeMetricFamily(
        "cucm_exporter_configured_nodes",
        "Nodes in the running configuration, per cluster.",
        labels=["cluster"],
    )
    for cluster in state.config.clusters:
        nodes.add_metric([cluster.name], float(len(cluster.nodes)))
    yield nodes


def _running_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0  # collected outside the event loop (e.g. in a test): nothing to count
