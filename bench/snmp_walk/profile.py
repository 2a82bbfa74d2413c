"""Where a profiled poll's CPU goes, grouped by the stage of a request it belongs to.

The groups are cumulative times of entry points that do not call one another, so they add up;
"other" is the rest (event loop, hlapi glue around each request). cProfile inflates every
figure (it runs on the CPU clock, and pyasn1 makes millions of small calls), so only the
shares mean anything.
"""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

# (label, file the function is in, function name): cumulative time.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("decode responses (v2c message, pyasn1 BER)", "mpmod/rfc2576.py", "prepare_data_elements"),
    ("resolve request OIDs in the MIB view", "hlapi/varbinds.py", "make_varbinds"),
    ("build, encode and send requests", "rfc3413/cmdgen.py", "send_varbinds"),
    ("match responses to requests", "rfc3413/cmdgen.py", "process_response_pdu"),
    ("per-request target config (LCD.configure)", "asyncio/lcd.py", "configure"),
    ("SnmpEngine() creation", "entity/engine.py", "__init__"),
)
OWN_CODE = "exporter/probes/snmp.py"  # self time of the probe's own functions


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
    stages["probe's own code (walk_columns, row building; self time)"] = sum(
        entry[2] for (file, _, _), entry in stats.items() if file.endswith(OWN_CODE)
    )
    stages["other (event loop, hlapi glue, ObjectType construction)"] = total - sum(stages.values())
    return {"profiled_cpu_seconds": total, "stages": stages}


def table(report: dict[str, Any]) -> str:
    total = report["profiled_cpu_seconds"]
    lines = [f"  {'stage':<60} {'CPU s':>7} {'share':>6}"]
    for label, seconds in report["stages"].items():
        lines.append(f"  {label:<60} {seconds:>7.2f} {seconds / total:>6.0%}")
    lines.append(f"  {'total (profiled, inflated)':<60} {total:>7.2f}")
    lines.append(f"  raw profile: {report['file']} (python -m pstats)")
    return "\n".join(lines)
