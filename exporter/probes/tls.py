"""The TLS probe: which versions each port accepts, and what certificate it shows.

For every port, one handshake pinned to each version (min = max, like sslscan). The pinned
clients run at OpenSSL security level 0 so that our own library never refuses a legacy
handshake; when it still does, the outcome is `probe_error`, never "rejected by the server"
(reference/tls-probing.md §4.4-4.5).

A version is accepted when the server's ServerHello selects it, whatever happens after: a
mutual-TLS port that then asks for a client certificate still accepted the version, and the
rest is reported as an `accepted_then_*` reason (tlswire.py reads the ServerHello).

What a modern default client (TLS 1.2-1.3) would negotiate is the best of the pinned 1.2 and
1.3 handshakes, so no extra handshake is made for it; only a configured CA bundle costs one
more handshake, a verifying one, because the pinned clients verify nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import ssl
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from cryptography import x509

from exporter.config import NodeConfig, PortConfig, TlsProbeConfig
from exporter.probes.tlsclassify import (
    WIRE_VERSION_OF,
    classify,
    classify_pinned,
    describe,
    verify_detail,
)
from exporter.probes.tlsexchange import HandshakeFacts, open_tls
from exporter.probes.tlswire import AfterServerHello
from exporter.results import (
    CertificateInfo,
    Handshake,
    HandshakeOutcome,
    PortResult,
    TlsProbeResult,
    TlsVersion,
)
from exporter.timing import Deadline

__all__ = [
    "Connector",
    "HandshakeFacts",
    "classify",
    "classify_pinned",
    "describe",
    "legacy_capable_context",
    "open_tls",
    "probe_tls",
]

_OPENSSL_VERSIONS = {
    TlsVersion.TLS1_0: ssl.TLSVersion.TLSv1,
    TlsVersion.TLS1_1: ssl.TLSVersion.TLSv1_1,
    TlsVersion.TLS1_2: ssl.TLSVersion.TLSv1_2,
    TlsVersion.TLS1_3: ssl.TLSVersion.TLSv1_3,
}


# The network seam: connect, handshake, report, close. Tests may pass another.
Connector = Callable[[str, int, ssl.SSLContext, str, float], Awaitable[HandshakeFacts]]


# --- contexts ----------------------------------------------------------------------------


def legacy_capable_context(lowest: TlsVersion, highest: TlsVersion) -> ssl.SSLContext:
    """A client offering lowest..highest that verifies nothing and refuses nothing.

    Security level 0: OpenSSL 3 otherwise refuses TLS 1.0/1.1 itself (no SHA-1 suites, no
    MD5-SHA1 signatures), which would look like a server rejection (tls-probing.md §4.3-4.4).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Setting TLS 1.0/1.1 warns; asking for them is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _OPENSSL_VERSIONS[lowest]
        context.maximum_version = _OPENSSL_VERSIONS[highest]
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@functools.cache
def pinned_context(version: TlsVersion) -> ssl.SSLContext:
    """A client that offers exactly `version` (min = max, like sslscan)."""
    return legacy_capable_context(version, version)


def modern_context(ca_file: Path | None) -> ssl.SSLContext:
    """What an up-to-date client negotiates; verifies against `ca_file` when one is given.

    The verifying context follows the file: it is rebuilt when the file's inode, size or
    modification time changes, so a CA bundle updated in place takes effect on the next run.
    """
    if ca_file is not None:
        stat = ca_file.stat()
        return _verifying_context(ca_file, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    # Python's defaults for a client (TLS 1.2+, its modern cipher list), but without loading the
    # system CA store: OpenSSL would check the chain against it and throw the answer away,
    # about a third of this handshake's CPU (bench/README.md).
    return _unverified_modern_context()


@functools.cache
def _unverified_modern_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=8)
def _verifying_context(ca_file: Path, inode: int, size: int, mtime_ns: int) -> ssl.SSLContext:
    # The stat fields are the cache key: a changed file is a new entry, the old one ages out.
    return ssl.create_default_context(cafile=str(ca_file))


def serial_hex(serial_number: int) -> str:
    """The serial as blackbox_exporter prints it: two hex digits per big-endian byte.

    Go formats ``cert.SerialNumber.Bytes()`` with ``%x``, so a serial whose first byte is below
    0x10 keeps its leading zero (``0a1b``, not ``a1b``), and the sign is dropped.
    """
    magnitude = abs(serial_number)
    return magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big").hex()


@functools.lru_cache(maxsize=1024)
def certificate_info(der: bytes) -> CertificateInfo:
    """Parsed once per distinct certificate: every handshake of a sweep shows the same one."""
    certificate = x509.load_der_x509_certificate(der)
    return CertificateInfo(
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        serial=serial_hex(certificate.serial_number),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_before=certificate.not_valid_before_utc.timestamp(),
        not_after=certificate.not_valid_after_utc.timestamp(),
    )


# --- the probe ---------------------------------------------------------------------------


async def probe_tls(
    node: NodeConfig,
    settings: TlsProbeConfig,
    deadline: Deadline,
    connect: Connector = open_tls,
) -> TlsProbeResult:
    """Sweep every configured port of `node`; never raises for anything the network does."""
    limit = asyncio.Semaphore(settings.concurrency)
    sweeper = _PortSweeper(node, settings, deadline, connect, limit)
    ports = await asyncio.gather(*(sweeper.sweep(port) for port in settings.ports))
    return TlsProbeResult(ports=tuple(ports))


@dataclasses.dataclass(frozen=True)
class _PortSweeper:
    """What every port of one sweep shares: the node, the settings, one deadline, the
    connector and the bound on handshakes in flight."""

    node: NodeConfig
    settings: TlsProbeConfig
    deadline: Deadline
    connect: Connector
    limit: asyncio.Semaphore

    async def sweep(self, port: PortConfig) -> PortResult:
        target = self.node.connect_port(port.port)
        versions = self.settings.versions
        derive_modern = TlsVersion.TLS1_2 in versions and TlsVersion.TLS1_3 in versions
        verifying = self.settings.ca_file is not None
        pinned = [self._pinned(target, version) for version in versions]
        if derive_modern and not verifying:
            handshakes = await asyncio.gather(*pinned)
            modern = _modern_from(handshakes)
        else:
            modern, *handshakes = await asyncio.gather(self._modern(target), *pinned)
        verified, verify_error = None, ""
        if verifying:
            modern, verified, verify_error = await self._unverified_fallback(
                target, modern, _modern_from(handshakes) if derive_modern else None
            )
        return PortResult(
            port=port.port,
            service=port.service,
            pinned=tuple(handshakes),
            modern=modern,
            verified=verified,
            verify_error=verify_error,
        )

    async def _pinned(self, port: int, version: TlsVersion) -> Handshake:
        handshake = await self._handshake(port, pinned_context(version), version)
        if handshake.outcome is HandshakeOutcome.RESET:
            # A reset may be a middlebox hiccup rather than an answer: ask once more.
            handshake = await self._handshake(port, pinned_context(version), version)
        return handshake

    async def _modern(self, port: int) -> Handshake:
        try:
            context = modern_context(self.settings.ca_file)
        except (OSError, ssl.SSLError) as error:  # the CA bundle went away or went bad
            return Handshake(None, HandshakeOutcome.PROBE_ERROR, 0.0, detail=describe(error))
        return await self._handshake(port, context, None)

    async def _unverified_fallback(
        self, port: int, modern: Handshake, derived: Handshake | None
    ) -> tuple[Handshake, bool | None, str]:
        """A failed verification still tells us the certificate: from the pinned handshakes
        when they establish it, else from one more look, unverified."""
        if modern.outcome is HandshakeOutcome.ACCEPTED or modern.outcome in _ALERTED_AFTER_VERIFY:
            return modern, True, ""
        if not modern.detail.startswith("CERTIFICATE_VERIFY_FAILED"):
            return modern, None, ""
        retry = derived or await self._handshake(port, modern_context(None), None)
        return retry, False, modern.detail.split(": ", 1)[-1]

    async def _handshake(
        self, port: int, context: ssl.SSLContext, pinned: TlsVersion | None
    ) -> Handshake:
        async with self.limit:
            budget = self.deadline.budget(self.settings.handshake_timeout)
            started = time.perf_counter()
            try:
                if budget <= 0:
                    raise TimeoutError
                facts = await self.connect(
                    self.node.connect_address, port, context, self.node.server_name, budget
                )
            except (Exception, asyncio.CancelledError) as error:
                if isinstance(error, asyncio.CancelledError):
                    raise
                return _failed(pinned, error, time.perf_counter() - started)
        duration = time.perf_counter() - started
        return _accepted(pinned, facts, duration)


# A server alert answering our client's flight: OpenSSL sends that flight only after the
# server's chain verified, so a mutual-TLS port that then wants a certificate was verified.
_ALERTED_AFTER_VERIFY = frozenset(
    {
        HandshakeOutcome.ACCEPTED_THEN_CERTIFICATE_REQUIRED,
        HandshakeOutcome.ACCEPTED_THEN_HANDSHAKE_FAILURE,
        HandshakeOutcome.ACCEPTED_THEN_BAD_CERTIFICATE,
    }
)


def _modern_from(pinned: Sequence[Handshake]) -> Handshake:
    """What a modern client (offering 1.2 and 1.3) would see, from the pinned handshakes.

    It gets the highest version the server selects: the pinned 1.3 handshake if the server
    took it, else the pinned 1.2 one; if neither was accepted, the server's answer to a 1.2
    hello is what the modern client hears first. TLS 1.3 suites are the same in both
    clients; a TLS 1.2 cipher can differ from what Python's default list would get.
    """
    by_version = {h.pinned: h for h in pinned}
    candidates = [by_version[TlsVersion.TLS1_3], by_version[TlsVersion.TLS1_2]]
    chosen = next(
        (h for h in candidates if h.outcome is HandshakeOutcome.ACCEPTED),
        next((h for h in candidates if h.outcome.is_acceptance), candidates[1]),
    )
    detail = chosen.detail or (_READ_FROM[chosen.pinned] if chosen.pinned else "")
    return dataclasses.replace(chosen, pinned=None, detail=detail)


# The debug text says where the modern client's answer comes from.
_READ_FROM = {version: f"as the pinned {version.label} handshake" for version in TlsVersion}


def _failed(pinned: TlsVersion | None, error: BaseException, duration: float) -> Handshake:
    outcome = classify_pinned(error, pinned)
    negotiated, certificate = None, None
    if isinstance(error, AfterServerHello) and outcome.is_acceptance:
        # The ServerHello negotiated the version; a TLS 1.2 server showed its certificate.
        negotiated = WIRE_VERSION_OF.get(error.hello.selected or 0)
        certificate = _certificate(error.certificate_der)
    return Handshake(
        pinned=pinned,
        outcome=outcome,
        duration_seconds=duration,
        negotiated=negotiated,
        certificate=certificate,
        # Thousands of handshakes fail the same way: keep one copy of each text.
        detail=sys.intern(verify_detail(error) or describe(error)),
    )


def _certificate(der: bytes | None) -> CertificateInfo | None:
    if not der:
        return None
    with contextlib.suppress(ValueError):  # a certificate we cannot parse is still a "yes"
        return certificate_info(der)
    return None


def _accepted(pinned: TlsVersion | None, facts: HandshakeFacts, duration: float) -> Handshake:
    negotiated = TlsVersion.from_openssl(facts.version)
    certificate = _certificate(facts.certificate_der)
    outcome = HandshakeOutcome.ACCEPTED
    detail = ""
    if pinned is not None and negotiated is not pinned:
        # Cannot happen with min = max unless the TLS library misbehaves; never count it.
        outcome, detail = HandshakeOutcome.PROBE_ERROR, f"negotiated {facts.version}"
    return Handshake(
        pinned=pinned,
        outcome=outcome,
        duration_seconds=duration,
        negotiated=negotiated,
        cipher=facts.cipher,
        certificate=certificate,
        detail=detail,
    )
