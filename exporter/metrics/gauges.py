"""One subject's gauge families for one scrape, built the one way every subject builds them.

Each family's labels start with the subject's own (cluster, node, ...), its HELP says how fresh
the value is (`Freshness`), and `all()` lists the families in the order they were declared:
their exposition order. The names stay written out in each subject's module, beside their
exposition sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily

from exporter.metrics.freshness import Freshness

__all__ = ["GaugeFamilies"]


class GaugeFamilies:
    """Base of a subject's families: `gauge` declares one, `all` lists them."""

    def __init__(self, freshness: Freshness, probe: str | None, labels: Sequence[str]) -> None:
        self._help = freshness.for_probe(probe)  # None: derived from several probes' results
        self._labels = tuple(labels)
        self._declared: list[GaugeMetricFamily] = []

    def gauge(self, name: str, what: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        """A family labelled with the subject's labels and then `extra`."""
        family = GaugeMetricFamily(name, self._help(what), labels=[*self._labels, *extra])
        self._declared.append(family)
        return family

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return tuple(self._declared)
