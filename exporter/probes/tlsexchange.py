"""One client handshake driven by hand: OpenSSL through memory BIOs over a plain socket.

asyncio's SSL transport hides the server's bytes from us and adds its own buffering to every
handshake. Here the socket is read with `loop.sock_recv`, each chunk is shown to the
ServerHello reader (`tlswire.FirstFlight`) and only then handed to OpenSSL, so a failure
later in the handshake (a required client certificate, a reset) still tells which version
the server selected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from exporter.probes.tlswire import FirstFlight, ServerHello, leaf_certificate

__all__ = ["AfterServerHello", "HandshakeFacts", "open_tls"]

_RECEIVE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class HandshakeFacts:
    """What a completed handshake tells: negotiated version, cipher and the leaf in DER."""

    version: str | None
    cipher: str | None
    certificate_der: bytes | None
    hello: ServerHello | None = None


class AfterServerHello(Exception):
    """The server sent its ServerHello, then the handshake failed; `cause` says how.

    `certificate_der` is the leaf the server showed before it broke off (TLS 1.0-1.2 only).
    """

    def __init__(
        self, hello: ServerHello, cause: BaseException, certificate_der: bytes | None = None
    ) -> None:
        super().__init__(f"after a ServerHello selecting {hello.selected_name}: {cause}")
        self.hello = hello
        self.cause = cause
        self.certificate_der = certificate_der


async def open_tls(
    address: str, port: int, context: ssl.SSLContext, server_name: str, budget: float
) -> HandshakeFacts:
    """Handshake over a real TCP connection, within `budget` seconds in all.

    Raises what the connection or OpenSSL raised, wrapped in `AfterServerHello` when the
    server had already answered with a ServerHello.
    """
    flight = FirstFlight()
    received: list[bytes] = []
    try:
        async with asyncio.timeout(budget):
            sock = await _connect(address, port)
            try:
                return await _handshake(sock, context, server_name, flight, received)
            finally:
                # Nothing to say after the handshake; no close_notify, no waiting.
                sock.close()
    except (Exception, asyncio.CancelledError) as error:
        hello = flight.verdict()
        if hello is None or isinstance(error, asyncio.CancelledError):
            raise
        raise AfterServerHello(hello, error, leaf_certificate(b"".join(received))) from error


async def _connect(address: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        candidates: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = [(family, (address, port))]
    except ValueError:  # a name: resolve it (off the loop, as asyncio.open_connection does)
        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        candidates = [(info[0], info[4]) for info in infos]
    error: OSError | None = None
    for family, where in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, where)
        except OSError as failed:
            sock.close()
            error = failed
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert error is not None  # getaddrinfo never returns an empty list
    raise error


async def _handshake(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_name: str,
    flight: FirstFlight,
    received: list[bytes],
) -> HandshakeFacts:
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name or None)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        if outgoing.pending:
            await loop.sock_sendall(sock, outgoing.read())
        data = await loop.sock_recv(sock, _RECEIVE_SIZE)
        if data:
            if flight.result is None:
                flight.feed(data)
            received.append(data)  # references only; read again only if the handshake fails
            incoming.write(data)
        else:
            incoming.write_eof()
    if outgoing.pending:
        # Our last flight (Finished): a server waits for it before it says anything more.
        await loop.sock_sendall(sock, outgoing.read())
    cipher = tls.cipher()
    return HandshakeFacts(
        version=tls.version(),
        cipher=cipher[0] if cipher else None,
        certificate_der=tls.getpeercert(binary_form=True),
        hello=flight.verdict(),
    )
