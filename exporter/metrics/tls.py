"""The TLS policy of each node's ports: cucm_tls_*.

cucm_tls_version_accepted{cluster="lab",node="p",port="2445",service="tvs",version="TLS 1.0"} 0.0
cucm_tls_version_result{...,version="TLS 1.0",result="rejected_protocol_version"} 1.0
cucm_tls_min_version{cluster="lab",node="p",port="2445",service="tvs"} 1.2
cucm_tls_version_info{cluster="lab",node="p",port="2445",service="tvs",version="TLS 1.3"} 1.0
cucm_tls_cert_info{...,fingerprint_sha256="9f..",serial="1a..",subject="CN=p",issuer="CN=ca"} 1.0
"""

from __future__ import annotations

from exporter.metrics.freshness import Freshness
from exporter.metrics.gauges import GaugeFamilies
from exporter.results import PortResult, ProbeRun, TlsProbeResult

__all__ = ["TlsFamilies"]

LABELS = ["cluster", "node", "port", "service"]


class TlsFamilies(GaugeFamilies):
    """The cucm_tls_* families of one scrape, filled port by port."""

    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness, "tls", LABELS)

        self.up = self.gauge(
            "cucm_tls_up", "1 if the port answered TLS at all (accepted or refused a version)."
        )
        self.accepted = self.gauge(
            "cucm_tls_version_accepted",
            "1 if the server's ServerHello selected the version a handshake was pinned to "
            "(min = max), 0 if the server rejected it; absent when the probe could not tell.",
            ("version",),
        )
        self.result = self.gauge(
            "cucm_tls_version_result",
            "1 for the classified outcome of the handshake pinned to the version "
            "(accepted_then_* : selected, then broken off, e.g. a client certificate required).",
            ("version", "result"),
        )
        self.min_version = self.gauge(
            "cucm_tls_min_version", "Lowest TLS version the port accepts (1.0, 1.1, 1.2, 1.3)."
        )
        self.max_version = self.gauge(
            "cucm_tls_max_version", "Highest TLS version the port accepts (1.0, 1.1, 1.2, 1.3)."
        )
        self.negotiated = self.gauge(
            "cucm_tls_version_info",
            "1 for the TLS version a modern default client negotiates.",
            ("version",),
        )
        self.cipher = self.gauge(
            "cucm_tls_cipher_info",
            "1 for the cipher suite (OpenSSL name) a modern default client negotiates.",
            ("cipher",),
        )
        self.handshake = self.gauge(
            "cucm_tls_handshake_duration_seconds",
            "Time of the handshake that shows what a modern default client negotiates.",
        )
        self.not_after = self.gauge(
            "cucm_tls_cert_not_after_timestamp_seconds",
            "When the port's leaf certificate expires (unix time).",
        )
        self.not_before = self.gauge(
            "cucm_tls_cert_not_before_timestamp_seconds",
            "When the port's leaf certificate became valid (unix time); it moves when the "
            "certificate is regenerated.",
        )
        self.cert_info = self.gauge(
            "cucm_tls_cert_info",
            "1, labeled with the port's leaf certificate; a new fingerprint means the "
            "certificate was regenerated.",
            ("fingerprint_sha256", "serial", "subject", "issuer"),
        )
        self.verified = self.gauge(
            "cucm_tls_cert_verified",
            "1 if the certificate verified against the configured CA bundle and node name; "
            "absent when no ca_file is configured.",
        )

    def add_run(self, run: ProbeRun) -> None:
        if isinstance(run.result, TlsProbeResult):
            for port in run.result.ports:
                self.add(run.cluster, run.node, port)

    def add(self, cluster: str, node: str, port: PortResult) -> None:
        labels = [cluster, node, str(port.port), port.service]
        self.up.add_metric(labels, 1.0 if port.speaks_tls else 0.0)
        for handshake in port.pinned:
            assert handshake.pinned is not None
            version = handshake.pinned.label
            accepted = port.accepted(handshake)
            if accepted is not None:
                self.accepted.add_metric([*labels, version], 1.0 if accepted else 0.0)
            self.result.add_metric([*labels, version, handshake.outcome.value], 1.0)
        if (lowest := port.min_version) is not None:
            self.min_version.add_metric(labels, lowest.number)
        if (highest := port.max_version) is not None:
            self.max_version.add_metric(labels, highest.number)
        modern = port.modern
        if modern.negotiated is not None:
            self.negotiated.add_metric([*labels, modern.negotiated.label], 1.0)
            self.handshake.add_metric(labels, modern.duration_seconds)
        if modern.cipher is not None:
            self.cipher.add_metric([*labels, modern.cipher], 1.0)
        if (certificate := port.certificate) is not None:
            self.not_after.add_metric(labels, certificate.not_after)
            self.not_before.add_metric(labels, certificate.not_before)
            self.cert_info.add_metric(
                [
                    *labels,
                    certificate.fingerprint_sha256,
                    certificate.serial,
                    certificate.subject,
                    certificate.issuer,
                ],
                1.0,
            )
        if port.verified is not None:
            self.verified.add_metric(labels, 1.0 if port.verified else 0.0)
