"""HELP text that says where a value came from: a scheduled, cached run or an on-demand one.

Probes run on a schedule, not at scrape time (DESIGN.md), so every target family's HELP says
how often its value refreshes; the same families served by /probe say they were probed now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Freshness"]


@dataclass(frozen=True)
class Freshness:
    """Seconds between scheduled runs per probe; `on_demand` for the families of /probe."""

    intervals: Mapping[str, float]
    on_demand: bool = False

    @classmethod
    def probed_now(cls) -> Freshness:
        return cls({}, on_demand=True)

    def help(self, what: str, probe: str | None) -> str:
        """`what`, and how fresh it is; `probe` None: derived from several probes' results."""
        if self.on_demand:
            return f"{what} Probed on demand by /probe."
        if probe is None or probe not in self.intervals:
            return f"{what} Cached: recomputed when a probe result it depends on changes."
        return f"{what} Cached: refreshed by the scheduled probe every {self.intervals[probe]:g}s."

    def for_probe(self, probe: str | None) -> Callable[[str], str]:
        return lambda what: self.help(what, probe)
