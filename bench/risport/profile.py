"""Where a profiled RisPort70 walk's CPU goes, by stage of a request.

The stages are cumulative times of entry points that do not call one another, so they add up;
"other" is the rest (the event loop, zeep's glue around each call). cProfile inflates every
figure (zeep makes a dozen Python calls per XML element), so only the shares mean anything.
"""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

# (label, file the function is in, function name): cumulative time.
STAGES: tuple[tuple[str, str, str], ...] = (
    (
        "zeep: XSD deserialisation (elements to value objects)",
        "wsdl/messages/soap.py",
        "_deserialize_body",
    ),
    ("lxml: parse the response body (via zeep.loader)", "zeep/loader.py", "parse_xml"),
    ("httpx/httpcore: send and receive (TLS, HTTP/1.1)", "zeep/transports.py", "post"),
    ("zeep: build and serialise the request", "wsdl/bindings/soap.py", "_create"),
    ("ours: value objects to page devices (risport_soap._page)", "probes/risport_soap.py", "_page"),
    ("ours: the inventory (risport._complete)", "probes/risport.py", "_complete"),
)


def breakdown(path: Path) -> dict[str, Any]:
    # pstats has no public accessor: (file, line, function) -> (cc, nc, tottime, cumtime, ...)
    stats: dict[tuple[str, int, str], tuple[Any, ...]]
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    stages: dict[str, float] = {}
    for label, filename, function in STAGES:
        stages[label] = sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if file.endswith(filename) and name == function
        )
    stages["other (event loop, zeep's glue, the probe's loop)"] = total - sum(stages.values())
    return {"profiled_cpu_seconds": total, "stages": stages}


def table(report: dict[str, Any]) -> str:
    total = report["profiled_cpu_seconds"]
    lines = [f"  {'stage':<62} {'CPU s':>7} {'share':>6}"]
    for label, seconds in report["stages"].items():
        lines.append(f"  {label:<62} {seconds:>7.2f} {seconds / total:>6.0%}")
    lines.append(f"  {'total (profiled, inflated)':<62} {total:>7.2f}")
    lines.append(f"  raw profile: {report['file']} (python -m pstats)")
    return "\n".join(lines)
