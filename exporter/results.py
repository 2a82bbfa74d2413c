"""Frozen result objects and reason enums: the only currency between layers.

Probes build these, the store keeps them, the collector and the landing page read them.
Nothing here knows about the network, the scheduler or Prometheus.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

# Re-exported: the phone table is a result too, kept in a module of its own for its size.
from exporter.phonetable import PHONE_STATUSES as PHONE_STATUSES
from exporter.phonetable import PhoneRow as PhoneRow
from exporter.phonetable import PhoneTable as PhoneTable


class TlsVersion(enum.Enum):
    """A TLS protocol version, valued by CUCM's CLI number (`set tls min-version 1.2`)."""

    TLS1_0 = "1.0"
    TLS1_1 = "1.1"
    TLS1_2 = "1.2"
    TLS1_3 = "1.3"

    @property
    def label(self) -> str:
        """The blackbox_exporter-style label value, e.g. "TLS 1.2"."""
        return f"TLS {self.value}"

    @property
    def number(self) -> float:
        return float(self.value)

    @classmethod
    def from_openssl(cls, name: str | None) -> TlsVersion | None:
        """Map `SSLObject.version()` ('TLSv1', 'TLSv1.1', ...) to a version, None if unknown."""
        return _OPENSSL_NAMES.get(name or "")


_OPENSSL_NAMES = {
    "TLSv1": TlsVersion.TLS1_0,
    "TLSv1.1": TlsVersion.TLS1_1,
    "TLSv1.2": TlsVersion.TLS1_2,
    "TLSv1.3": TlsVersion.TLS1_3,
}


class HandshakeOutcome(enum.Enum):
    """Classified outcome of one handshake (reference/tls-probing.md §4.5).

    Only the `REJECTED_*` outcomes are a server's answer "no"; `RESET` counts as one only when
    the same port proved it speaks TLS. Everything else means the probe could not tell.
    """

    ACCEPTED = "accepted"
    # The server's ServerHello selected the pinned version, then the handshake did not finish:
    # the version is accepted, and what stopped the rest is said apart (tls-probing.md §4.6).
    # Mutual-TLS ports (CTI 2749, SIP 5061) end this way for a client without a certificate.
    ACCEPTED_THEN_CERTIFICATE_REQUIRED = "accepted_then_certificate_required"
    ACCEPTED_THEN_HANDSHAKE_FAILURE = "accepted_then_handshake_failure"
    ACCEPTED_THEN_BAD_CERTIFICATE = "accepted_then_bad_certificate"
    ACCEPTED_THEN_DECRYPT_ERROR = "accepted_then_decrypt_error"
    ACCEPTED_THEN_RESET = "accepted_then_reset"
    ACCEPTED_THEN_TIMEOUT = "accepted_then_timeout"
    ACCEPTED_THEN_TLS_ERROR = "accepted_then_tls_error"
    REJECTED_PROTOCOL_VERSION = "rejected_protocol_version"  # server alert: its min is above ours
    REJECTED_UNSUPPORTED_PROTOCOL = "rejected_unsupported_protocol"  # server's max is below ours
    REJECTED_HANDSHAKE_FAILURE = "rejected_handshake_failure"  # ambiguous alert: ciphers, mTLS, ...
    # The server answered the pinned ClientHello with a ServerHello above it (a pinned 1.0
    # answered with 1.2): a broken version negotiation, and no to the pinned version.
    REJECTED_HIGHER_VERSION = "rejected_higher_version"
    RESET = "reset"  # connection closed or reset during the handshake
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"  # no route, host down
    DNS_ERROR = "dns_error"
    NOT_TLS = "not_tls"  # the port answered with something that is not TLS
    TLS_ERROR = "tls_error"  # some other TLS failure reported by the peer
    PROBE_ERROR = "probe_error"  # our own OpenSSL refused locally: says nothing about the server

    @property
    def is_server_rejection(self) -> bool:
        return self in _REJECTIONS

    @property
    def is_acceptance(self) -> bool:
        """The server selected the version: a completed handshake or an `accepted_then_*`."""
        return self in _ACCEPTANCES

    @property
    def is_tls_answer(self) -> bool:
        """True when a TLS server was there and decided (accepted or rejected)."""
        return self.is_acceptance or self in _REJECTIONS


_ACCEPTANCES = frozenset(o for o in HandshakeOutcome if o.value.startswith("accepted"))
_REJECTIONS = frozenset(
    {
        HandshakeOutcome.REJECTED_PROTOCOL_VERSION,
        HandshakeOutcome.REJECTED_UNSUPPORTED_PROTOCOL,
        HandshakeOutcome.REJECTED_HANDSHAKE_FAILURE,
        HandshakeOutcome.REJECTED_HIGHER_VERSION,
    }
)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """Facts about a leaf certificate, captured whether or not it was verified."""

    fingerprint_sha256: str
    serial: str  # lowercase hex, as blackbox_exporter prints it
    subject: str
    issuer: str
    not_before: float  # unix seconds
    not_after: float


@dataclass(frozen=True, slots=True)
class Handshake:
    """One handshake: pinned to `pinned` (min = max), or the modern default client if None."""

    pinned: TlsVersion | None
    outcome: HandshakeOutcome
    duration_seconds: float
    negotiated: TlsVersion | None = None
    cipher: str | None = None
    certificate: CertificateInfo | None = None
    detail: str = ""  # the library's words, for logs and the landing page; never a label


@dataclass(frozen=True, slots=True)
class PortResult:
    """Every handshake against one TLS port, plus what they add up to."""

    port: int
    service: str
    pinned: tuple[Handshake, ...]
    modern: Handshake
    verified: bool | None = None  # None: no CA bundle configured
    verify_error: str = ""

    @property
    def speaks_tls(self) -> bool:
        return any(h.outcome.is_tls_answer for h in (*self.pinned, self.modern))

    def accepted(self, handshake: Handshake) -> bool | None:
        """Did the server accept the version? None when this handshake cannot tell.

        A reset counts as a rejection only on a port that answered TLS otherwise: some TLS
        stacks close the connection instead of sending a protocol_version alert.
        """
        if handshake.outcome.is_acceptance:
            return True
        if handshake.outcome.is_server_rejection:
            return False
        if handshake.outcome is HandshakeOutcome.RESET and self.speaks_tls:
            return False
        return None

    @property
    def accepted_versions(self) -> tuple[TlsVersion, ...]:
        return tuple(h.pinned for h in self.pinned if h.pinned and self.accepted(h))

    @property
    def min_version(self) -> TlsVersion | None:
        versions = self.accepted_versions
        return min(versions, key=lambda v: v.number) if versions else None

    @property
    def max_version(self) -> TlsVersion | None:
        versions = self.accepted_versions
        return max(versions, key=lambda v: v.number) if versions else None

    @property
    def certificate(self) -> CertificateInfo | None:
        """The leaf certificate from the modern handshake, else from any pinned one."""
        for handshake in (self.modern, *self.pinned):
            if handshake.certificate is not None:
                return handshake.certificate
        return None


@dataclass(frozen=True, slots=True)
class TlsProbeResult:
    """The TLS probe's findings for one node."""

    ports: tuple[PortResult, ...]

    @property
    def success(self) -> bool:
        """Every port answered TLS and no handshake was spoiled by our own client."""
        return all(
            p.speaks_tls
            and all(h.outcome is not HandshakeOutcome.PROBE_ERROR for h in (*p.pinned, p.modern))
            for p in self.ports
        )

    @property
    def reason(self) -> str:
        """ "ok", or the first outcome that kept the probe from a clean verdict."""
        if self.success:
            return "ok"
        outcomes = [h.outcome for p in self.ports for h in (p.modern, *p.pinned)]
        if HandshakeOutcome.PROBE_ERROR in outcomes:
            return HandshakeOutcome.PROBE_ERROR.value
        return next((o.value for o in outcomes if not o.is_tls_answer), "no_tls_answer")


class DirectoryRoute(enum.Enum):
    """How a client reaches the directory."""

    HTTP = "http"  # port 8080: the workaround legacy phones can use
    HTTPS = "https"  # port 8443 with a modern client
    HTTPS_LEGACY = "https_legacy"  # TVS on 2445, then 8443, as a TLS 1.0 phone would


class DirectoryStep(enum.Enum):
    """The steps of the directory chain, in the order a phone takes them."""

    TVS = "tvs"
    MENU = "menu"  # xmldirectory.jsp
    INPUT = "input"  # xmldirectoryinput.jsp
    SEARCH = "search"  # xmldirectorylist.jsp with the canary query
    NEXT_PAGE = "next_page"  # the `Next` softkey


class DirectoryOutcome(enum.Enum):
    """Classified outcome of one route (the bounded enum of DESIGN.md)."""

    OK = "ok"
    DNS_ERROR = "dns_error"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TLS_VERSION_REJECTED = "tls_version_rejected"
    TLS_ERROR = "tls_error"
    HTTP_ERROR = "http_error"  # a non-200 status, or the server dropped the exchange
    BAD_CONTENT = "bad_content"  # not the expected CiscoIPPhone XML, unsafe XML, too large
    NEXT_HOP_NOT_HTTP = "next_hop_not_http"  # an embedded URL leaves HTTP/8080
    NEXT_HOP_NOT_HTTPS = "next_hop_not_https"  # an HTTPS route's page sends us off HTTPS
    NEXT_HOP_OFF_NODE = "next_hop_off_node"  # an embedded URL names another host or port
    EMPTY_RESULT = "empty_result"  # the canary search found fewer entries than expected
    PROBE_ERROR = "probe_error"  # our side failed (out of file descriptors...): no verdict

    @property
    def node_answered(self) -> bool:
        """False for the outcomes that can mean the node was never reached."""
        return self not in _UNANSWERED


_UNANSWERED = frozenset(
    {
        DirectoryOutcome.DNS_ERROR,
        DirectoryOutcome.REFUSED,
        DirectoryOutcome.TIMEOUT,
        DirectoryOutcome.PROBE_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One walk of the directory chain over one route."""

    route: DirectoryRoute
    outcome: DirectoryOutcome
    failed_step: DirectoryStep | None  # None when the walk completed
    duration_seconds: float
    status_code: int | None = None  # the last HTTP status seen
    entries: int | None = None  # entries found by the canary search, over the pages walked
    pages: int = 0
    tls_version: TlsVersion | None = None  # negotiated on 8443 (HTTPS routes)
    detail: str = ""

    @property
    def up(self) -> bool:
        return self.outcome is DirectoryOutcome.OK

    @property
    def reached_node(self) -> bool:
        """False when the node itself could not be reached (so no verdict on the service).

        A timeout or DNS failure on a later step is about what the pages say or how the node
        behaves (an unresolvable next hop, a stalled search), so it is a verdict. Our own
        failure (probe_error) is never one.
        """
        if self.outcome is DirectoryOutcome.PROBE_ERROR:
            return False
        return self.outcome.node_answered or self.failed_step not in (
            DirectoryStep.TVS,
            DirectoryStep.MENU,
        )


@dataclass(frozen=True, slots=True)
class DirectoryProbeResult:
    """The directory probe's findings for one node."""

    routes: tuple[RouteResult, ...]

    @property
    def success(self) -> bool:
        """Every route reached the node (whether or not the directory then worked)."""
        return all(r.reached_node for r in self.routes)

    @property
    def reason(self) -> str:
        if self.success:
            return "ok"
        return next(r.outcome.value for r in self.routes if not r.reached_node)


class SnmpOutcome(enum.Enum):
    """Classified outcome of an SNMP poll."""

    OK = "ok"
    TIMEOUT = "timeout"  # no answer (also what a wrong v2c community looks like)
    AUTH_ERROR = "auth_error"  # v3: unknown user, wrong digest, undecryptable
    AGENT_ERROR = "agent_error"  # the agent answered with an error status (genErr, ...)
    NON_INCREASING = "non_increasing"  # a walk did not move forward: a broken agent
    BAD_RESPONSE = "bad_response"  # answers we could not use
    DNS_ERROR = "dns_error"


@dataclass(frozen=True, slots=True)
class NodeScalars:
    """The cheap CISCO-CCM-MIB scalars read on every poll."""

    registered: int
    unregistered: int
    rejected: int
    partially_registered: int | None
    state_id: int
    callmanager_start: float | None  # unix seconds, from ccmCallManagerStartTime
    boot_time: float  # unix seconds: poll time minus sysUpTime


@dataclass(frozen=True, slots=True)
class SnmpProbeResult:
    """One SNMP poll of one node. `phones` is the last complete table walk, re-used as long as
    ccmPhoneTableStateId and ccmCallManagerStartTime say nothing changed."""

    outcome: SnmpOutcome
    scalars: NodeScalars | None = None
    phones: PhoneTable | None = None
    walked: bool = False  # whether this poll walked ccmPhoneTable
    walked_at: float | None = None  # when `phones` was walked (unix seconds)
    requests: int = 0  # SNMP requests this poll sent
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.outcome is SnmpOutcome.OK

    @property
    def reason(self) -> str:
        return self.outcome.value


class ProbeResult(Protocol):
    """What every probe's result says of itself: whether it is clean, and the bounded reason.
    Each probe defines its own frozen result; nothing here lists them."""

    @property
    def success(self) -> bool: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One scheduled run of one probe against one node: what every probe produces."""

    cluster: str
    node: str
    probe: str
    started: float  # unix seconds
    duration_seconds: float
    success: bool
    reason: str  # bounded: "ok" or a classified failure
    result: ProbeResult | None = None  # None when the run itself failed (deadline, bug)
