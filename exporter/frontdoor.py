"""The front door: what a client without credentials can hold of the exporter, bounded.

aiohttp waits forever for a connection's first request and buffers a whole response for a
client that never reads it; every connection is a file descriptor, and at EMFILE the probes fail
(issue 14). So, around each connection aiohttp serves:

- a head timeout: a connection that has not sent a complete request head within `head_timeout`
  is closed (aiohttp's own keep-alive timeout covers the time between later requests);
- a write timeout: a client that leaves our output unread for `write_timeout` (the transport
  stays above its high-water mark) is cut off, so its buffer is returned;
- a connection cap below the file-descriptor limit, keeping `fd_reserve` descriptors for the
  probes. At the cap the oldest connection still waiting for its first request is evicted, so
  idle connections cannot lock out a scraper that sends its request at once; when every
  connection is busy, the new one is closed.

It also raises the soft RLIMIT_NOFILE to the hard limit at start, as Go programs do since Go
1.19 (the soft limit is 1024 under systemd and login shells), and logs accept failures once per
interval instead of once per accept.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from exporter.logsetup import get_logger

__all__ = [
    "AcceptErrorLimiter",
    "FrontDoor",
    "FrontDoorCounts",
    "FrontDoorLimits",
    "FrontDoorSite",
    "MalformedRequestFilter",
    "raise_fd_limit",
]

log = get_logger("exporter.frontdoor")

_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class FrontDoorLimits:
    head_timeout: float = 10.0
    write_timeout: float = 30.0
    max_connections: int = 512
    fd_reserve: int = 256  # descriptors kept free for probes, logs and config files


@dataclass(frozen=True)
class FrontDoorCounts:
    """Totals since start, for the exporter's self-metrics."""

    open_connections: int
    connection_limit: int
    refused: int  # closed at once: the cap was reached and every connection was busy
    evicted: int  # idle before their first request, closed to make room
    head_timeouts: int
    write_timeouts: int
    malformed_requests: int


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) as they now are."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:  # a sandbox may refuse; keep what we have
            log.warning("cannot raise the open-file limit", soft=soft, hard=hard, error=str(error))
    return soft, hard


class FrontDoor:
    """Wraps each connection's aiohttp protocol (`protocol(inner)`) and keeps the counts."""

    def __init__(
        self, limits: FrontDoorLimits = FrontDoorLimits(), fd_limit: int | None = None
    ) -> None:
        self.limits = limits
        if fd_limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # At least a few connections even at a tiny limit: a scraper must get in.
        self.connection_limit = max(8, min(limits.max_connections, fd_limit - limits.fd_reserve))
        self._open: dict[_Guard, None] = {}  # insertion order: oldest first
        self._awaiting_head: dict[_Guard, None] = {}
        self._refused = self._evicted = self._head_timeouts = self._write_timeouts = 0
        self.malformed_requests = 0  # counted by MalformedRequestFilter

    def protocol(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _Guard(self, inner)

    def factory(self, inner_factory: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        return lambda: self.protocol(inner_factory())

    def counts(self) -> FrontDoorCounts:
        return FrontDoorCounts(
            open_connections=len(self._open),
            connection_limit=self.connection_limit,
            refused=self._refused,
            evicted=self._evicted,
            head_timeouts=self._head_timeouts,
            write_timeouts=self._write_timeouts,
            malformed_requests=self.malformed_requests,
        )

    # --- what the guards report -----------------------------------------------------------

    def _admit(self, guard: _Guard) -> bool:
        if len(self._open) >= self.connection_limit:
            if not self._awaiting_head:
                self._refused += 1
                return False
            oldest = next(iter(self._awaiting_head))
            self._evicted += 1
            oldest.close()
        self._open[guard] = None
        self._awaiting_head[guard] = None
        return True

    def _head_received(self, guard: _Guard) -> None:
        self._awaiting_head.pop(guard, None)

    def _closed(self, guard: _Guard) -> None:
        self._open.pop(guard, None)
        self._awaiting_head.pop(guard, None)

    def _head_timed_out(self) -> None:
        self._head_timeouts += 1

    def _write_timed_out(self) -> None:
        self._write_timeouts += 1


class _Guard(asyncio.Protocol):
    """One connection: passes everything to aiohttp's protocol, with the door's timers."""

    def __init__(self, door: FrontDoor, inner: asyncio.Protocol) -> None:
        self._door = door
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._tail = b""  # the last bytes seen while waiting for the end of the first head
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._door._admit(self):
            transport.abort()
            return
        self._admitted = True
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._door.limits.head_timeout, self._head_timeout)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            window = self._tail + data
            if _HEAD_END in window:
                self._head_timer.cancel()
                self._head_timer = None
                self._door._head_received(self)
            else:
                self._tail = window[-(len(_HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._door._closed(self)
        if self._admitted:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_timer is None:
            self._write_timer = asyncio.get_running_loop().call_later(
                self._door.limits.write_timeout, self._write_timeout
            )
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._inner.resume_writing()

    def close(self) -> None:
        """Drop the connection now (abort: nothing of ours is waiting to be sent)."""
        self._cancel_timers()
        self._door._closed(self)
        if self._transport is not None:
            self._transport.abort()

    def _head_timeout(self) -> None:
        self._head_timer = None
        self._door._head_timed_out()
        self.close()

    def _write_timeout(self) -> None:
        self._write_timer = None
        self._door._write_timed_out()
        self.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._write_timer = None


class FrontDoorSite(web.BaseSite):
    """aiohttp's TCPSite, with every connection's protocol behind `door`."""

    __slots__ = ("_door", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        door: FrontDoor,
        host: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=128)
        self._door = door
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # set up by runner.setup()
        self._server = await asyncio.get_running_loop().create_server(
            self._door.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            # A TLS client must finish its handshake within the head timeout too.
            ssl_handshake_timeout=self._door.limits.head_timeout if self._ssl_context else None,
        )


class MalformedRequestFilter(logging.Filter):
    """On aiohttp's server logger: a request aiohttp could not parse (it answered 400) is the
    client's fault, not an error of ours. Counted, logged at debug, never a traceback."""

    def __init__(self, door: FrontDoor) -> None:
        super().__init__()
        self._door = door

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        self._door.malformed_requests += 1
        log.debug("malformed request", error=str(error.message).splitlines()[0][:200])
        return False

    def install(self) -> None:
        """Counts for this door only: a filter left by an earlier daemon in this process (a
        restart, a test) would take the records first and count them for a door gone."""
        logger = logging.getLogger("aiohttp.server")
        for earlier in [f for f in logger.filters if isinstance(f, MalformedRequestFilter)]:
            logger.removeFilter(earlier)
        logger.addFilter(self)

    def uninstall(self) -> None:
        logging.getLogger("aiohttp.server").removeFilter(self)


class AcceptErrorLimiter:
    """A loop exception handler: "socket.accept() out of system resource" at most once per
    `interval` (with how many were folded in); everything else to the default handler."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._folded = 0
        self.reported = 0  # log lines written

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not str(context.get("message", "")).startswith("socket.accept() out of system"):
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._folded += 1
            return
        error = context.get("exception")
        log.error(
            "cannot accept connections: out of system resources",
            error=str(error),
            repeated=self._folded,
            interval_seconds=self._interval,
        )
        self._last, self._folded = now, 0
        self.reported += 1
