"""Where a profiled poll's CPU goes, by stage of an SNMP request (see bench/stages.py).

pyasn1 makes millions of small calls, which cProfile inflates most: read the shares only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import stages

# (label, file the function is in, function name): cumulative time.
STAGES: tuple[stages.Stage, ...] = (
    ("decode responses (v2c message, pyasn1 BER)", "mpmod/rfc2576.py", "prepare_data_elements"),
    ("resolve request OIDs in the MIB view", "hlapi/varbinds.py", "make_varbinds"),
    ("build, encode and send requests", "rfc3413/cmdgen.py", "send_varbinds"),
    ("match responses to requests", "rfc3413/cmdgen.py", "process_response_pdu"),
    ("per-request target config (LCD.configure)", "asyncio/lcd.py", "configure"),
    ("SnmpEngine() creation", "entity/engine.py", "__init__"),
)
OWN_CODE = "exporter/probes/snmp.py"  # self time of the probe's own functions


def breakdown(path: Path) -> dict[str, Any]:
    return stages.breakdown(
        path,
        STAGES,
        "other (event loop, hlapi glue, ObjectType construction)",
        own_code=("probe's own code (walk_columns, row building; self time)", OWN_CODE),
    )


table = stages.table
