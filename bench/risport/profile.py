"""Where a profiled RisPort70 walk's CPU goes, by stage of a request (see bench/stages.py).

zeep makes a dozen Python calls per XML element, which cProfile inflates: read the shares only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import stages

# (label, file the function is in, function name): cumulative time.
STAGES: tuple[stages.Stage, ...] = (
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
    return stages.breakdown(path, STAGES, "other (event loop, zeep's glue, the probe's loop)")


table = stages.table
