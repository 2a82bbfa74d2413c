"""The server's first flight as it crosses the wire: records, alerts and the ServerHello.

OpenSSL tells a client only how a handshake ended. Whether the server *selected* the pinned
version is decided earlier, in the ServerHello (RFC 8446 §4.1.3; RFC 5246 §7.4.1.3): its
legacy_version field, or for TLS 1.3 its `supported_versions` extension (RFC 8446 §4.2.1).
sslscan and nmap's ssl-enum-ciphers judge a version the same way. This module reads only the
plaintext records that come before encryption starts, and stops as soon as it has a verdict.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

__all__ = [
    "WIRE_VERSIONS",
    "AfterServerHello",
    "FirstFlight",
    "HelloKind",
    "ServerHello",
    "leaf_certificate",
]

# Record content types (RFC 8446 §5.1).
_CHANGE_CIPHER_SPEC = 20
_ALERT = 21
_HANDSHAKE = 22
_SERVER_HELLO = 2
_CERTIFICATE = 11
_SUPPORTED_VERSIONS = 0x002B
# A ServerHello whose random is SHA-256("HelloRetryRequest") is a HelloRetryRequest
# (RFC 8446 §4.1.3): the server chose TLS 1.3 but wants another key share.
HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
# Protocol version codes as they appear on the wire.
WIRE_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}
# Enough for any ServerHello; a peer that sends more plaintext without one is not our business.
_MAX_SNIFFED = 32 * 1024


class HelloKind(enum.Enum):
    """What the first flight turned out to be."""

    SERVER_HELLO = "server_hello"
    ALERT = "alert"  # a plaintext alert before any ServerHello
    NOT_TLS = "not_tls"  # bytes that are not TLS records


class ServerHello(NamedTuple):
    """The verdict-bearing facts of the server's first flight.

    Immutable like the frozen dataclasses between layers, but a tuple: one is built on every
    handshake, and a frozen dataclass costs several times more to construct.
    """

    kind: HelloKind
    selected: int | None = None  # the version code the server chose (0x0303 for TLS 1.2)
    legacy_version: int | None = None
    cipher_suite: int | None = None
    hello_retry: bool = False  # a HelloRetryRequest came first
    alert: int | None = None  # the alert description (RFC 8446 §6), for HelloKind.ALERT

    @property
    def selected_name(self) -> str:
        if self.selected is None:
            return "none"
        return WIRE_VERSIONS.get(self.selected, f"0x{self.selected:04x}")


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


class FirstFlight:
    """Fed the bytes a client receives, in order, until `result` is set.

    Handshake messages may span records (RFC 8446 §5.1), so handshake payloads are joined
    before a message is read. A HelloRetryRequest is remembered and reading goes on to the
    real ServerHello that follows it.
    """

    __slots__ = ("_buffer", "_handshake", "_retry", "_seen", "result")

    def __init__(self) -> None:
        self._buffer = b""
        self._handshake = b""
        self._retry: ServerHello | None = None
        self._seen = 0
        self.result: ServerHello | None = None

    @property
    def hello_retry(self) -> ServerHello | None:
        """The HelloRetryRequest, if one came and no ServerHello after it (yet)."""
        return self._retry

    def feed(self, data: bytes) -> None:
        if self.result is not None:
            return
        if self._retry is None and not self._buffer and self._whole_hello(data):
            return
        self._seen += len(data)
        self._buffer += data
        while self.result is None and len(self._buffer) >= 5:
            kind, major = self._buffer[0], self._buffer[1]
            length = int.from_bytes(self._buffer[3:5], "big")
            if kind not in (_CHANGE_CIPHER_SPEC, _ALERT, _HANDSHAKE) or major != 3:
                self.result = ServerHello(HelloKind.NOT_TLS)
                return
            if len(self._buffer) < 5 + length:
                break
            payload, self._buffer = self._buffer[5 : 5 + length], self._buffer[5 + length :]
            if kind == _ALERT and len(payload) >= 2:
                self.result = ServerHello(HelloKind.ALERT, alert=payload[1])
            elif kind == _HANDSHAKE:
                self._handshake += payload
                self._read_messages()
        if self.result is None and self._seen > _MAX_SNIFFED:
            self.result = ServerHello(HelloKind.NOT_TLS)

    def _whole_hello(self, data: bytes) -> bool:
        """The common case, read without copying: the first record starts with the whole
        ServerHello. False (nothing consumed) for anything else, a HelloRetryRequest too."""
        if len(data) < 9 or data[0] != _HANDSHAKE or data[1] != 3 or data[5] != _SERVER_HELLO:
            return False
        record_end = 5 + _U16.unpack_from(data, 3)[0]
        hello_end = 9 + int.from_bytes(data[6:9], "big")
        if hello_end > record_end or record_end > len(data):
            return False
        hello = parse_server_hello(data, 9, hello_end)
        if hello.kind is not HelloKind.SERVER_HELLO or hello.hello_retry:
            return False
        self.result = hello
        return True

    def _read_messages(self) -> None:
        while self.result is None and len(self._handshake) >= 4:
            length = int.from_bytes(self._handshake[1:4], "big")
            if len(self._handshake) < 4 + length:
                return
            kind, body = self._handshake[0], self._handshake[4 : 4 + length]
            self._handshake = self._handshake[4 + length :]
            if kind != _SERVER_HELLO:
                # Anything else first is a protocol violation; OpenSSL will say so.
                self.result = ServerHello(HelloKind.NOT_TLS)
                return
            hello = parse_server_hello(body)
            if hello.hello_retry and self._retry is None:
                self._retry = hello
                continue
            if self._retry is not None:
                hello = ServerHello(
                    HelloKind.SERVER_HELLO,
                    selected=hello.selected,
                    legacy_version=hello.legacy_version,
                    cipher_suite=hello.cipher_suite,
                    hello_retry=True,
                )
            self.result = hello

    def verdict(self) -> ServerHello | None:
        """The ServerHello (or the HelloRetryRequest standing for it), or None if neither came."""
        if self.result is not None and self.result.kind is HelloKind.SERVER_HELLO:
            return self.result
        return self._retry


def parse_server_hello(data: bytes, start: int = 0, end: int | None = None) -> ServerHello:
    """Read a ServerHello body, `data[start:end]` (after the 4-byte handshake header), in
    place; NOT_TLS if it is malformed."""
    end = len(data) if end is None else min(end, len(data))
    offset = start + 35
    if offset > end:
        return ServerHello(HelloKind.NOT_TLS)
    legacy_version = _U16.unpack_from(data, start)[0]
    offset += data[start + 34]  # the session id
    if offset + 3 > end:
        return ServerHello(HelloKind.NOT_TLS)
    cipher_suite = _U16.unpack_from(data, offset)[0]
    offset += 3  # the cipher suite and the compression method
    selected = legacy_version
    if offset + 2 <= end:
        extensions_end = min(end, offset + 2 + _U16.unpack_from(data, offset)[0])
        offset += 2
        while offset + 4 <= extensions_end:
            extension, size = _EXTENSION.unpack_from(data, offset)
            if extension == _SUPPORTED_VERSIONS and size == 2 and offset + 6 <= extensions_end:
                selected = _U16.unpack_from(data, offset + 4)[0]
            offset += 4 + size
    return ServerHello(
        HelloKind.SERVER_HELLO,
        selected=selected,
        legacy_version=legacy_version,
        cipher_suite=cipher_suite,
        hello_retry=data[start + 2 : start + 34] == HELLO_RETRY_RANDOM,
    )


_U16 = struct.Struct(">H")
_EXTENSION = struct.Struct(">HH")


def leaf_certificate(received: bytes) -> bytes | None:
    """The server's leaf certificate (DER) from a TLS 1.0-1.2 first flight, if it is there.

    Before TLS 1.3 the Certificate message (RFC 5246 §7.4.2) travels in plaintext right after
    the ServerHello, so a handshake that a mutual-TLS server breaks off later still shows it.
    Read only when such a handshake failed; None for TLS 1.3 (encrypted) or a short flight.
    """
    handshake = bytearray()
    offset = 0
    while offset + 5 <= len(received):
        kind = received[offset]
        length = int.from_bytes(received[offset + 3 : offset + 5], "big")
        if kind == _HANDSHAKE:
            handshake += received[offset + 5 : offset + 5 + length]
        elif kind != _CHANGE_CIPHER_SPEC:
            break  # an alert, or encrypted records: the plaintext part is over
        offset += 5 + length
    offset = 0
    while offset + 4 <= len(handshake):
        kind = handshake[offset]
        length = int.from_bytes(handshake[offset + 1 : offset + 4], "big")
        body = bytes(handshake[offset + 4 : offset + 4 + length])
        if kind == _CERTIFICATE:
            size = int.from_bytes(body[3:6], "big")  # after the 3-byte list length
            leaf = body[6 : 6 + size]
            return leaf if size and len(leaf) == size else None
        offset += 4 + length
    return None
