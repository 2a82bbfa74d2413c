"""The statistics every benchmark reports: medians over runs, percentiles, ratios, verdicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

VERDICT = {True: "met", False: "NOT met"}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that really occurred."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def spread(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/min/mean of latencies in seconds (every attempt, failed included)."""
    if not seconds:
        return {}
    return {
        "p50": percentile(seconds, 0.50),
        "p90": percentile(seconds, 0.90),
        "p99": percentile(seconds, 0.99),
        "max": max(seconds),
        "min": min(seconds),
        "mean": statistics.fmean(seconds),
    }


def median_of(runs: Iterable[Mapping[str, Any]], *path: str) -> float:
    """The median over runs of the figure at `path` (keys, outermost first)."""
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def ratio(ours: float, theirs: float | None) -> float | None:
    """ours / theirs; None when there is nothing to compare with."""
    return ours / theirs if theirs else None


def verdict(value: float, goal: float) -> str:
    """`1.23x (met)`: a ratio against a goal it must not exceed."""
    return f"{value:.2f}x ({VERDICT[value <= goal]})"
