"""The daemon with one change to /metrics, to measure a suggested fix (`load --variant cached`).

Not the exporter: an experiment. It wraps `ExporterApp.metrics` before running the real
`exporter.cli.main`, so everything else (scheduler, probes, collector, the exposition it
renders) is the shipped code.

The change: the body /metrics rendered for an Accept header is served again, as it is, for
`MAX_AGE` seconds; rendering stays on the event loop, so at most one rendering per format per
second holds it. Results change only when a probe finishes (every 10 s or more per target), so
a body at most one second old loses nothing; the process_* figures are a second old at worst.

    python -m bench.load_soak.cached_daemon --config.file F --web.listen-address 127.0.0.1:P
"""

from __future__ import annotations

import sys
import time

from aiohttp import web

from exporter.cli import main
from exporter.server import ExporterApp

MAX_AGE = 1.0  # seconds a rendered body is served again

_shipped = ExporterApp.metrics
_rendered: dict[str, tuple[float, bytes, str]] = {}  # Accept -> (when, body, content type)


async def cached_metrics(self: ExporterApp, request: web.Request) -> web.StreamResponse:
    accept = request.headers.get("Accept", "")
    cached = _rendered.get(accept)
    if cached is not None and time.monotonic() - cached[0] < MAX_AGE:
        return web.Response(body=cached[1], headers={"Content-Type": cached[2]})
    response = await _shipped(self, request)
    if response.status == 200 and isinstance(response.body, bytes):
        _rendered[accept] = (time.monotonic(), response.body, response.headers["Content-Type"])
    return response


if __name__ == "__main__":
    ExporterApp.metrics = cached_metrics  # type: ignore[method-assign,assignment]
    sys.exit(main())
