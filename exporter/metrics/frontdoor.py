"""The HTTP front door's own figures: cucm_exporter_http_*.

cucm_exporter_http_connections_open 3.0
cucm_exporter_http_connections_closed_total{reason="head_timeout"} 1200.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.frontdoor import FrontDoorCounts

__all__ = ["FrontDoorCollector"]


class FrontDoorCollector(Collector):
    """Reads the counts afresh on every scrape (registered beside the process metrics)."""

    def __init__(self, counts: Callable[[], FrontDoorCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield GaugeMetricFamily(
            "cucm_exporter_http_connections_open",
            "HTTP connections the exporter holds open now.",
            value=float(counts.open_connections),
        )
        yield GaugeMetricFamily(
            "cucm_exporter_http_connections_limit",
            "Most HTTP connections held at once (--web.max-connections, lowered to keep file "
            "descriptors for the probes).",
            value=float(counts.connection_limit),
        )
        closed = CounterMetricFamily(
            "cucm_exporter_http_connections_closed",
            "HTTP connections the exporter closed itself: refused (at the limit, every "
            "connection busy), evicted (idle before a first request, to make room), "
            "head_timeout (no complete request head in time), write_timeout (the client left "
            "the answer unread).",
            labels=["reason"],
        )
        for reason, value in (
            ("refused", counts.refused),
            ("evicted", counts.evicted),
            ("head_timeout", counts.head_timeouts),
            ("write_timeout", counts.write_timeouts),
        ):
            closed.add_metric([reason], float(value))
        yield closed
        yield CounterMetricFamily(
            "cucm_exporter_http_malformed_requests",
            "Requests the HTTP server could not parse (answered 400, logged at debug).",
            value=float(counts.malformed_requests),
        )
