"""How a failed TLS handshake reads: the outcome enum, and the words for logs.

The classification follows reference/tls-probing.md §4.5; a handshake that failed after the
server's ServerHello (`tlswire.AfterServerHello`) is judged by the version it selected.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from exporter.probes.tlswire import AfterServerHello
from exporter.results import HandshakeOutcome, TlsVersion

__all__ = ["WIRE_VERSION_OF", "classify", "classify_pinned", "describe", "verify_detail"]

# Our own OpenSSL said no before or instead of the server: the version's fate is unknown.
_LOCAL_REFUSALS = frozenset(
    {
        "NO_CIPHERS_AVAILABLE",
        "LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_SUITABLE_SIGNATURE_ALGORITHM",
        "DH_KEY_TOO_SMALL",
        "EE_KEY_TOO_SMALL",
        "CA_MD_TOO_WEAK",
        "UNSAFE_LEGACY_RENEGOTIATION_DISABLED",
    }
)
_SSL_REASONS = {
    "TLSV1_ALERT_PROTOCOL_VERSION": HandshakeOutcome.REJECTED_PROTOCOL_VERSION,
    "UNSUPPORTED_PROTOCOL": HandshakeOutcome.REJECTED_UNSUPPORTED_PROTOCOL,
    "SSLV3_ALERT_HANDSHAKE_FAILURE": HandshakeOutcome.REJECTED_HANDSHAKE_FAILURE,
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": HandshakeOutcome.REJECTED_HANDSHAKE_FAILURE,
    "NO_SHARED_CIPHER": HandshakeOutcome.REJECTED_HANDSHAKE_FAILURE,
    "UNEXPECTED_EOF_WHILE_READING": HandshakeOutcome.RESET,
    # A record that does not parse as TLS: plain HTTP, a banner, garbage.
    "WRONG_VERSION_NUMBER": HandshakeOutcome.NOT_TLS,
    "PACKET_LENGTH_TOO_LONG": HandshakeOutcome.NOT_TLS,
    "RECORD_LAYER_FAILURE": HandshakeOutcome.NOT_TLS,
    "HTTP_REQUEST": HandshakeOutcome.NOT_TLS,
}
_UNREACHABLE_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
# Our own process ran out of something: says nothing about the server, whatever raised it.
_LOCAL_EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# What ended a handshake after the server had selected the version.
_AFTER_HELLO_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": HandshakeOutcome.ACCEPTED_THEN_CERTIFICATE_REQUIRED,
    # OpenSSL's answer to a TLS 1.2 client without the certificate it asked for.
    "SSLV3_ALERT_HANDSHAKE_FAILURE": HandshakeOutcome.ACCEPTED_THEN_HANDSHAKE_FAILURE,
    # Java's (JSSE, CUCM's Tomcat) answer to the same, and a rejected certificate.
    "SSLV3_ALERT_BAD_CERTIFICATE": HandshakeOutcome.ACCEPTED_THEN_BAD_CERTIFICATE,
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": HandshakeOutcome.ACCEPTED_THEN_BAD_CERTIFICATE,
    "TLSV1_ALERT_UNKNOWN_CA": HandshakeOutcome.ACCEPTED_THEN_BAD_CERTIFICATE,
    "TLSV1_ALERT_DECRYPT_ERROR": HandshakeOutcome.ACCEPTED_THEN_DECRYPT_ERROR,
}


def classify(error: BaseException) -> HandshakeOutcome:
    """Map what a failed handshake raised to an outcome (reference/tls-probing.md §4.5)."""
    if isinstance(error, AfterServerHello):
        return classify(error.cause)
    if _exhausted(error):
        return HandshakeOutcome.PROBE_ERROR  # EMFILE at socket(): not a TLS outcome
    if isinstance(error, TimeoutError):
        return HandshakeOutcome.TIMEOUT
    if isinstance(error, socket.gaierror):
        return HandshakeOutcome.DNS_ERROR
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if reason in _LOCAL_REFUSALS:
            return HandshakeOutcome.PROBE_ERROR
        if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return HandshakeOutcome.RESET
        return _SSL_REASONS.get(reason, HandshakeOutcome.TLS_ERROR)
    if isinstance(error, ConnectionRefusedError):
        return HandshakeOutcome.REFUSED
    if isinstance(error, ConnectionError | EOFError | asyncio.IncompleteReadError):
        return HandshakeOutcome.RESET
    if isinstance(error, OSError) and error.errno in _UNREACHABLE_ERRNOS:
        return HandshakeOutcome.UNREACHABLE
    return HandshakeOutcome.PROBE_ERROR


def _exhausted(error: BaseException) -> bool:
    # An SSLError's errno is OpenSSL's error kind, not the C errno: leave those out.
    return (
        isinstance(error, OSError)
        and not isinstance(error, ssl.SSLError)
        and error.errno in _LOCAL_EXHAUSTION_ERRNOS
    )


def classify_pinned(error: BaseException, pinned: TlsVersion | None) -> HandshakeOutcome:
    """The outcome of a failed handshake pinned to `pinned`: the ServerHello decides.

    The same version selected is an acceptance, whatever ended the handshake after it; a
    lower one means the server's maximum is below the pin, a higher one a broken negotiation.
    A refusal by our own OpenSSL stays `probe_error` (never counted either way). Unpinned
    (the verifying client), any version the server selected counts.
    """
    if not isinstance(error, AfterServerHello):
        return classify(error)
    cause, selected = error.cause, error.hello.selected
    outcome = classify(cause)
    if outcome is HandshakeOutcome.PROBE_ERROR or selected is None:
        return outcome
    if verify_detail(cause):
        return outcome  # our client refused the certificate: reported as verification
    wanted = selected if pinned is None else _WIRE_CODES[pinned]
    if selected < wanted:
        return HandshakeOutcome.REJECTED_UNSUPPORTED_PROTOCOL
    if selected > wanted:
        return HandshakeOutcome.REJECTED_HIGHER_VERSION
    if isinstance(cause, ssl.SSLError) and (reason := cause.reason) in _AFTER_HELLO_REASONS:
        return _AFTER_HELLO_REASONS[reason]
    if outcome is HandshakeOutcome.RESET:
        return HandshakeOutcome.ACCEPTED_THEN_RESET
    if outcome is HandshakeOutcome.TIMEOUT:
        return HandshakeOutcome.ACCEPTED_THEN_TIMEOUT
    return HandshakeOutcome.ACCEPTED_THEN_TLS_ERROR


_WIRE_CODES = {
    TlsVersion.TLS1_0: 0x0301,
    TlsVersion.TLS1_1: 0x0302,
    TlsVersion.TLS1_2: 0x0303,
    TlsVersion.TLS1_3: 0x0304,
}
WIRE_VERSION_OF = {code: version for version, code in _WIRE_CODES.items()}


def describe(error: BaseException) -> str:
    """The library's own words, for logs and the landing page (never a metric label)."""
    if isinstance(error, AfterServerHello):
        hello = error.hello
        retry = " after a HelloRetryRequest" if hello.hello_retry else ""
        return f"ServerHello selected {hello.selected_name}{retry}, then {describe(error.cause)}"
    if _exhausted(error):
        assert isinstance(error, OSError)
        assert error.errno is not None
        return f"local resources exhausted ({errno.errorcode[error.errno]}): {error.strerror}"
    if isinstance(error, TimeoutError):
        return "no answer within the handshake timeout"
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{error.reason}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def verify_detail(error: BaseException) -> str:
    if isinstance(error, AfterServerHello):
        error = error.cause
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"CERTIFICATE_VERIFY_FAILED: {error.verify_message}"
    return ""
