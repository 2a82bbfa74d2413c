"""TLS listeners with a CUCM-like version policy, and the faults a broken port can show."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import ssl
import struct
import warnings
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class PortFault(enum.Enum):
    """How a port misbehaves instead of doing TLS."""

    NONE = "none"
    STALL = "stall"  # accept TCP, never answer: a hung service or a black-holing middlebox
    RESET = "reset"  # accept TCP, then reset the connection before any TLS
    GARBAGE = "garbage"  # answer the ClientHello with bytes that are not TLS


class ClientAuth(enum.Enum):
    """Whether a listener asks the client for a certificate (mutual TLS)."""

    NONE = "none"
    OPTIONAL = "optional"  # asks; goes on without one
    REQUIRED = "required"  # asks; breaks the handshake off without one


# CUCM's optional TLS listeners, all governed by `set tls min-version` (Cisco, "Security Guide
# for Cisco Unified Communications Manager, Release 15", chapter "TLS Setup", port table):
# standard port -> (service label, client authentication). Which ones want a client
# certificate follows the same guide: secure SIP (5061) and secure CTI/QBE (2749) authenticate
# the device or application by its LSC/MIC certificate ("Device Authentication", "Secure CTI
# Application"); CAPF (3804) serves phones that may not have a certificate yet, so it asks and
# goes on; the CTL provider (2444) authenticates the CTL client by user name and password.
# Cisco does not document the exact TLS behaviour; this is the lab's model of it.
OPTIONAL_PORTS: dict[int, tuple[str, ClientAuth]] = {
    2749: ("cti", ClientAuth.REQUIRED),
    5061: ("sip", ClientAuth.REQUIRED),
    3804: ("capf", ClientAuth.OPTIONAL),
    2444: ("ctl", ClientAuth.NONE),
}
_VERIFY_MODES = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.OPTIONAL: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRED: ssl.CERT_REQUIRED,
}


def server_context(
    cert_file: Path,
    key_file: Path,
    min_version: str,
    max_version: str,
    *,
    client_auth: ClientAuth = ClientAuth.NONE,
    client_ca: Path | None = None,
) -> ssl.SSLContext:
    """A server context accepting exactly min..max, asking for a client certificate if told.

    OpenSSL 3 refuses to sign a TLS 1.0/1.1 ServerKeyExchange at security level 1 or more
    (MD5-SHA1 / SHA-1), so a legacy-capable listener must run at level 0, like CUCM's old
    OpenSSL/JSSE did (reference/tls-probing.md §4.4). Without the certificate it requires,
    OpenSSL's server alerts handshake_failure (TLS 1.2 and below) or certificate_required
    (TLS 1.3), after its ServerHello.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    if client_auth is not ClientAuth.NONE:
        if client_ca is not None:
            context.load_verify_locations(client_ca)
        context.verify_mode = _VERIFY_MODES[client_auth]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = VERSIONS[min_version]
        context.maximum_version = VERSIONS[max_version]
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


class TlsStream:
    """A server-side TLS connection driven through memory BIOs.

    asyncio's own TLS transport drops the alert OpenSSL writes when a handshake fails (the
    client then sees a bare EOF), whereas CUCM's TLS stacks send it (`protocol_version`,
    `handshake_failure`). Driving the SSLObject by hand lets every alert reach the wire, so
    the exporter is tested against what a real node says.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._receive()
            except ssl.SSLError:
                await self._flush()  # the alert
                raise
            else:
                await self._flush()
                return

    async def read(self, size: int = 65536) -> bytes:
        """Up to `size` bytes of application data; b"" once the client is gone."""
        while True:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._receive():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    def abort(self) -> None:
        """Reset the connection underneath (a crashed server, not a TLS close)."""
        abort(self._writer)

    async def _receive(self) -> bool:
        data = await self._reader.read(65536)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()


# After the handshake a connection is handed to the port's service (HTTPS, TVS, ...).
Service = Callable[[TlsStream], Awaitable[None]]


async def hold_until_closed(stream: TlsStream) -> None:
    """A stand-in service: read and discard until the client goes away."""
    while await stream.read():
        pass


class TlsListener:
    """A TCP listener that speaks TLS under a settable policy, or shows a fault instead."""

    def __init__(
        self,
        host: str,
        port: int,
        service: Service = hold_until_closed,
        client_auth: ClientAuth = ClientAuth.NONE,
    ) -> None:
        self.host = host
        self.port = port
        self.client_auth = client_auth
        self.fault = PortFault.NONE
        self.context: ssl.SSLContext | None = None
        self._service = service
        self._server: asyncio.Server | None = None
        # Every accepted connection and the task serving it, until that task has closed it.
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        # Port 0 asks the kernel for a free port; keep it so a restart comes back on it.
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection, as a restarting node would.

        Returns once every connection it accepted is closed: a connection left to the garbage
        collector would surface later as someone else's "unclosed transport" warning.
        """
        if self._server is None:
            return
        # Stop accepting first, then let the connections accepted a moment ago reach `_handle`
        # (accept task, then connection_made, then the handler: a few loop turns). asyncio
        # (3.11) drops a connection whose accept task first runs after `Server.close()`
        # without closing its socket, which the garbage collector then reports elsewhere.
        loop = asyncio.get_running_loop()
        for listening in self._server.sockets:
            loop.remove_reader(listening.fileno())
        for _ in range(4):
            await asyncio.sleep(0)
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._connections.values()):
            abort(writer)
        serving = list(self._connections)
        if serving:
            # A reset makes every service return at once; one that does not is cancelled.
            _, stuck = await asyncio.wait(serving, timeout=2)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted just as the listener stopped
            abort(writer)
            await close_connection(writer)
            return
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except (OSError, ssl.SSLError, TimeoutError):
            pass  # the client gave up or the handshake failed: that is the client's business
        finally:
            await close_connection(writer)
            del self._connections[task]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self.fault
        if fault is PortFault.STALL:
            await reader.read()  # until the client hangs up
            return
        if fault is PortFault.RESET:
            abort(writer)  # RST instead of FIN
            return
        if fault is PortFault.GARBAGE:
            await reader.read(5)
            writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\nthis port does not speak TLS\r\n")
            await writer.drain()
            return
        assert self.context is not None
        stream = TlsStream(reader, writer, self.context)
        async with asyncio.timeout(10):  # a client that stalls mid-handshake is dropped
            await stream.handshake()
        await self._service(stream)


def optional_listeners(host: str) -> dict[int, TlsListener]:
    """One listener per optional CUCM port, each with its client authentication."""
    return {
        port: TlsListener(host, 0, hold_until_closed, auth)
        for port, (_, auth) in OPTIONAL_PORTS.items()
    }


def listener_contexts(
    listeners: Iterable[TlsListener],
    cert_file: Path,
    key_file: Path,
    min_version: str,
    max_version: str,
    client_ca: Path,
) -> dict[ClientAuth, ssl.SSLContext]:
    """The server contexts a node's listeners need: one per kind of client authentication."""
    return {
        auth: server_context(
            cert_file, key_file, min_version, max_version, client_auth=auth, client_ca=client_ca
        )
        for auth in {listener.client_auth for listener in listeners}
    }


def abort(writer: asyncio.StreamWriter) -> None:
    """Reset the connection (RST instead of FIN), like a process that died."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0 turns close() into a reset, like a process that died.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close_connection(writer: asyncio.StreamWriter) -> None:
    """Close a connection and return once its socket is closed.

    `close()` alone only starts closing: with unsent data to a peer that does not read, the
    transport (and its file descriptor) stays open until the garbage collector finds it. A
    connection that does not finish closing within a second is reset instead.
    """
    writer.close()
    try:
        async with asyncio.timeout(1):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        pass  # a reset or a peer that will not read: the reset below settles it
    finally:
        if not _closed(writer):
            abort(writer)
            await asyncio.sleep(0)  # the transport closes its socket on the next loop turn


def _closed(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    return sock is None or sock.fileno() == -1


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
