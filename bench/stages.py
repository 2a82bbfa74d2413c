"""A cProfile file's CPU grouped into the stages of a request, for the walk benchmarks.

Each stage is the cumulative time of one entry point (a function in a file); the entry points
are chosen so that none calls another, so the stages add up, and "other" is the rest. cProfile
inflates every figure (it runs on the CPU clock and costs most where calls are small and
many), so only the shares mean anything.
"""

from __future__ import annotations

import pstats
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (label, file the function is in, function name): that function's cumulative time.
Stage = tuple[str, str, str]


def breakdown(
    path: Path,
    stages: Sequence[Stage],
    other: str,
    own_code: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The profile at `path` by stage; `own_code` (label, file) adds that file's self time."""
    # pstats has no public accessor: (file, line, function) -> (cc, nc, tottime, cumtime, ...)
    stats: dict[tuple[str, int, str], tuple[Any, ...]]
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    seconds: dict[str, float] = {}
    for label, filename, function in stages:
        seconds[label] = sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if file.endswith(filename) and name == function
        )
    if own_code is not None:
        label, filename = own_code
        seconds[label] = sum(
            entry[2] for (file, _, _), entry in stats.items() if file.endswith(filename)
        )
    seconds[other] = total - sum(seconds.values())
    return {"profiled_cpu_seconds": total, "stages": seconds}


def table(report: dict[str, Any]) -> str:
    """`breakdown`'s report (with the profile's "file") as indented text lines."""
    total = report["profiled_cpu_seconds"]
    width = max(len(label) for label in [*report["stages"], "total (profiled, inflated)"])
    lines = [f"  {'stage':<{width}} {'CPU s':>7} {'share':>6}"]
    for label, seconds in report["stages"].items():
        lines.append(f"  {label:<{width}} {seconds:>7.2f} {seconds / total:>6.0%}")
    lines.append(f"  {'total (profiled, inflated)':<{width}} {total:>7.2f}")
    lines.append(f"  raw profile: {report['file']} (python -m pstats)")
    return "\n".join(lines)
