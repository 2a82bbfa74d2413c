"""Scraping /metrics as Prometheus does: one scrape, judged as Prometheus would judge it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

# What Prometheus 2.x sends (this exact string is in Debian's prometheus 2.42 binary): it
# prefers OpenMetrics.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPTS = {
    "openmetrics": ACCEPT,
    # OpenMetrics without prometheus_client's per-character name escaping: what a scraper that
    # allows UTF-8 names asks for. A diagnostic: it shows what that escaping costs.
    "openmetrics-utf8": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "text": "text/plain;version=0.0.4",  # the classic Prometheus text format
}
EOF_MARKER = b"# EOF\n"  # OpenMetrics' last line: a body cut short lacks it


@dataclass(frozen=True)
class Scrape:
    """One GET /metrics: when it started (seconds into the run), how long it took, how it went."""

    started: float
    seconds: float
    ok: bool
    status: int  # 0: no HTTP answer
    size: int
    error: str = ""


async def scrape_once(
    session: aiohttp.ClientSession,
    url: str,
    time_limit: float,
    origin: float,
    accept: str = ACCEPT,
) -> tuple[Scrape, bytes]:
    """GET `url` and read the whole body; a failure is a Scrape with ok=False, never an error.

    Counts as failed: no answer or a broken connection, anything but 200, a body cut short
    (OpenMetrics: no "# EOF" at the end; text format: no final newline), or no complete answer
    within `time_limit` seconds (Prometheus' scrape_timeout; its default is 10 s).
    """
    started = time.perf_counter()
    status, body, error = 0, b"", ""
    try:
        async with asyncio.timeout(time_limit):
            async with session.get(url, headers={"Accept": accept}) as response:
                status = response.status
                body = await response.read()
    except TimeoutError:
        error = f"timeout after {time_limit:g}s"
    except aiohttp.ClientError as error_:
        error = repr(error_)
    seconds = time.perf_counter() - started
    if not error and status != 200:
        error = f"HTTP {status}"
    elif not error and not _complete(body, accept):
        error = "incomplete body"
    result = Scrape(started - origin, seconds, not error, status, len(body), error)
    return result, body


def _complete(body: bytes, accept: str) -> bool:
    if accept.startswith("application/openmetrics-text"):
        return body.endswith(EOF_MARKER)
    return body.endswith(b"\n")
