"""One client handshake driven by hand: OpenSSL through memory BIOs over a plain socket.

asyncio's SSL transport hides the server's bytes from us and adds its own buffering to every
handshake. Here the socket is read with `loop.sock_recv`, each chunk is shown to the
ServerHello reader (`tlswire.FirstFlight`) and only then handed to OpenSSL, so a failure
later in the handshake (a required client certificate, a reset) still tells which version
the server selected.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from exporter.probes.tlswire import AfterServerHello, FirstFlight, ServerHello, leaf_certificate

__all__ = ["AfterServerHello", "HandshakeFacts", "open_tls"]  # AfterServerHello: tlswire

_RECEIVE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class HandshakeFacts:
    """What a completed handshake tells: negotiated version, cipher and the leaf in DER."""

    version: str | None
    cipher: str | None
    certificate_der: bytes | None
    hello: ServerHello | None = None


async def open_tls(
    address: str, port: int, context: ssl.SSLContext, server_name: str, budget: float
) -> HandshakeFacts:
    """Handshake over a real TCP connection, within `budget` seconds in all.

    Raises what the connection or OpenSSL raised, wrapped in `AfterServerHello` when the
    server had already answered with a ServerHello.
    """
    loop = asyncio.get_running_loop()
    exchange: _Exchange | None = None
    try:
        async with asyncio.timeout(budget):
            candidates = await _candidates(loop, address, port)
            for number, (family, where) in enumerate(candidates, 1):
                exchange = _Exchange(loop, family, context, server_name)
                try:
                    return await exchange.run(where)
                except OSError as error:
                    # Not answered at this address (refused, unreachable): try the next one.
                    if exchange.flight.verdict() is not None or number == len(candidates):
                        raise
                    if isinstance(error, ssl.SSLError):
                        raise
                finally:
                    exchange.close()
            raise AssertionError("getaddrinfo never returns an empty list")
    except (Exception, asyncio.CancelledError) as error:
        hello = exchange.flight.verdict() if exchange is not None else None
        if hello is None or isinstance(error, asyncio.CancelledError):
            raise
        leaf = leaf_certificate(b"".join(exchange.received)) if exchange else None
        raise AfterServerHello(hello, error, leaf) from error


async def _candidates(
    loop: asyncio.AbstractEventLoop, address: str, port: int
) -> list[tuple[int, tuple[Any, ...]]]:
    family = _literal_family(address)
    if family is not None:
        return [(family, (address, port))]
    # A name: resolve it off the loop, as asyncio.open_connection does.
    infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    return [(info[0], info[4]) for info in infos]


@functools.lru_cache(maxsize=4096)
def _literal_family(address: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal, None for a name (parsed once per address)."""
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


class _Exchange:
    """One connection's handshake, driven by the loop's readiness callbacks.

    No coroutine is resumed per flight and the socket stays registered for reading from the
    first flight to the last: this is what keeps the probe's own cost near OpenSSL's
    (bench/README.md). Only `run` is awaited; everything else runs in callbacks.
    """

    __slots__ = (
        "_done",
        "_fd",
        "_incoming",
        "_loop",
        "_outgoing",
        "_pending",
        "_reading",
        "_sock",
        "_tls",
        "_writing",
        "flight",
        "received",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        family: int,
        context: ssl.SSLContext,
        server_name: str,
    ) -> None:
        self._loop = loop
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_name or None
        )
        # Last, so that nothing can fail with the socket open and no one to close it.
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        self._done: asyncio.Future[HandshakeFacts] = loop.create_future()
        self._pending = b""  # bytes the kernel did not take yet
        self._reading = self._writing = False
        self.flight = FirstFlight()
        self.received: list[bytes] = []  # references only; read again if the handshake fails

    async def run(self, where: tuple[Any, ...]) -> HandshakeFacts:
        try:
            self._sock.connect(where)
        except BlockingIOError:
            self._loop.add_writer(self._fd, self._connected)
            self._writing = True
        else:
            self._step()
        return await self._done

    def close(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._reading = self._writing = False
        # Nothing to say after the handshake: no close_notify, no waiting.
        self._sock.close()

    def _connected(self) -> None:
        self._loop.remove_writer(self._fd)
        self._writing = False
        error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self._fail(OSError(error, os.strerror(error)))
            return
        self._step()

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._fail(error)
            return
        if data:
            if self.flight.result is None:
                self.flight.feed(data)
            self.received.append(data)
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        self._step()

    def _step(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            if self._send() and not self._reading:
                self._loop.add_reader(self._fd, self._readable)
                self._reading = True
            return
        except Exception as error:
            self._fail(error)
            return
        self._finish()
        # Our last flight (Finished): a server waits for it before it says anything more.
        self._send()

    def _send(self) -> bool:
        """Hand OpenSSL's output to the kernel; False once the exchange has failed."""
        data = self._pending + self._outgoing.read() if self._outgoing.pending else self._pending
        if not data:
            return True
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            self._fail(error)
            return False
        self._pending = data[sent:]
        if self._pending and not self._writing:  # a full send buffer: rare with handshakes
            self._loop.add_writer(self._fd, self._flush)
            self._writing = True
        return True

    def _flush(self) -> None:
        self._loop.remove_writer(self._fd)
        self._writing = False
        self._send()

    def _finish(self) -> None:
        if self._done.done():
            return
        tls = self._tls
        cipher = tls.cipher()
        self._done.set_result(
            HandshakeFacts(
                version=tls.version(),
                cipher=cipher[0] if cipher else None,
                certificate_der=tls.getpeercert(binary_form=True),
                hello=self.flight.verdict(),
            )
        )

    def _fail(self, error: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(error)
