"""The TLS probe against real loopback listeners with real OpenSSL version limits."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.config import ExporterConfig, NodeConfig, TlsProbeConfig
from exporter.lab import Lab
from exporter.lab.certs import LabCA
from exporter.lab.tls import PortFault, unused_port
from exporter.probes.tls import HandshakeFacts, certificate_info, classify, open_tls, probe_tls
from exporter.results import HandshakeOutcome, PortResult, TlsVersion
from exporter.timing import Deadline
from tests.conftest import config_for, node_config, openssl_serial

V10, V11, V12, V13 = TlsVersion.TLS1_0, TlsVersion.TLS1_1, TlsVersion.TLS1_2, TlsVersion.TLS1_3

# node name -> (server min, server max), the policies the issue asks to cover.
POLICIES = {
    "only10": ("1.0", "1.0"),
    "only11": ("1.1", "1.1"),
    "from12": ("1.2", "1.3"),
    "only13": ("1.3", "1.3"),
    "legacy": ("1.0", "1.2"),
}


@pytest.fixture(scope="module")
def policy_lab() -> Iterator[Lab]:
    with Lab({"policies": tuple(POLICIES)}, restart_downtime=0.0) as lab:
        for name, (low, high) in POLICIES.items():
            lab.set_tls_policy(name, low, high)
        yield lab


async def sweep(config: ExporterConfig, node: str, seconds: float = 8.0) -> tuple[PortResult, ...]:
    result = await probe_tls(node_config(config, node), config.probes.tls, Deadline.after(seconds))
    return result.ports


@pytest.mark.parametrize(
    ("node", "accepted", "lowest", "highest"),
    [
        ("only10", {V10}, V10, V10),
        ("only11", {V11}, V11, V11),
        ("from12", {V12, V13}, V12, V13),
        ("only13", {V13}, V13, V13),
        ("legacy", {V10, V11, V12}, V10, V12),
    ],
)
async def test_accepted_versions_follow_the_server_policy(
    policy_lab: Lab, node: str, accepted: set[TlsVersion], lowest: TlsVersion, highest: TlsVersion
) -> None:
    for port in await sweep(config_for(policy_lab), node):
        assert set(port.accepted_versions) == accepted, port.service
        assert (port.min_version, port.max_version) == (lowest, highest)
        rejected = [h for h in port.pinned if h.pinned not in accepted]
        assert all(h.outcome.is_server_rejection for h in rejected), rejected
        assert all(port.accepted(h) is False for h in rejected)
        # A modern client takes the best on offer, and refuses anything below TLS 1.2.
        modern_ok = highest.number >= 1.2
        assert port.modern.negotiated == (highest if modern_ok else None)
        assert port.modern.outcome.is_server_rejection is not modern_ok
        assert port.certificate is not None  # from a pinned handshake if need be


async def test_rejections_are_classified_by_direction(policy_lab: Lab) -> None:
    """Below the server's minimum: its protocol_version alert. Above its maximum: our client
    sees a lower ServerHello and refuses ("unsupported protocol")."""
    (port, *_) = await sweep(config_for(policy_lab), "only11")
    outcome = {h.pinned: h.outcome for h in port.pinned}
    assert outcome[V10] is HandshakeOutcome.REJECTED_PROTOCOL_VERSION
    assert outcome[V12] is HandshakeOutcome.REJECTED_UNSUPPORTED_PROTOCOL


async def test_policy_change_is_seen_on_the_next_sweep(lab: Lab) -> None:
    config = config_for(lab)
    before = await sweep(config, "cucm-sub1")
    lab.set_tls_policy("cucm-sub1", "1.2")
    try:
        after = await sweep(config, "cucm-sub1")
    finally:
        lab.set_tls_policy("cucm-sub1", "1.0")
    assert [p.min_version for p in before] == [V10, V10]
    assert [p.min_version for p in after] == [V12, V12]


async def test_stalled_listener_times_out_within_the_deadline(lab: Lab) -> None:
    config = config_for(lab, handshake_timeout="1s", timeout="3s", concurrency=2)
    lab.set_port_fault("cucm-pub", 2445, PortFault.STALL)
    try:
        started = time.monotonic()
        result = await probe_tls(
            node_config(config, "cucm-pub"), config.probes.tls, Deadline.after(3.0)
        )
        elapsed = time.monotonic() - started
    finally:
        lab.set_port_fault("cucm-pub", 2445, PortFault.NONE)
    tvs = next(p for p in result.ports if p.service == "tvs")
    assert {h.outcome for h in (*tvs.pinned, tvs.modern)} == {HandshakeOutcome.TIMEOUT}
    assert all(tvs.accepted(h) is None for h in tvs.pinned)  # a timeout is no verdict
    assert not result.success
    assert result.reason == "timeout"
    # The deadline is the contract: 3 s for the run, a little slack for the event loop.
    assert elapsed < 3.0 + 0.5


async def test_closed_port_is_refused(lab: Lab) -> None:
    config = config_for(lab)
    node = node_config(config, "cucm-pub")
    closed = node.model_copy(update={"port_map": {8443: unused_port(), 2445: unused_port()}})
    result = await probe_tls(closed, config.probes.tls, Deadline.after(5))
    for port in result.ports:
        assert {h.outcome for h in (*port.pinned, port.modern)} == {HandshakeOutcome.REFUSED}
        assert port.accepted_versions == ()
        assert not port.speaks_tls
    assert result.reason == "refused"


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [(PortFault.GARBAGE, HandshakeOutcome.NOT_TLS), (PortFault.RESET, HandshakeOutcome.RESET)],
)
async def test_a_port_that_does_not_speak_tls_gives_no_verdict(
    lab: Lab, fault: PortFault, outcome: HandshakeOutcome
) -> None:
    lab.set_port_fault("cucm-pub", 8443, fault)
    try:
        ports = await sweep(config_for(lab), "cucm-pub")
    finally:
        lab.set_port_fault("cucm-pub", 8443, PortFault.NONE)
    tomcat = next(p for p in ports if p.service == "tomcat")
    assert {h.outcome for h in tomcat.pinned} == {outcome}
    # A reset on a port that never spoke TLS is not a "no" from a TLS server.
    assert all(tomcat.accepted(h) is None for h in tomcat.pinned)
    assert tomcat.min_version is None


def strict_openssl_connector(
    address: str, port: int, context: ssl.SSLContext, server_name: str, budget: float
) -> object:
    """Our real connector, but with the client a distro's strict crypto policy would give:
    default security level, so OpenSSL itself refuses TLS 1.0/1.1 before asking the server."""
    strict = ssl.create_default_context()
    strict.check_hostname = False
    strict.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        strict.minimum_version = context.minimum_version
        strict.maximum_version = context.maximum_version
    return open_tls(address, port, strict, server_name, budget)


async def test_a_local_openssl_refusal_is_never_a_server_rejection(policy_lab: Lab) -> None:
    config = config_for(policy_lab)
    result = await probe_tls(
        node_config(config, "legacy"),
        config.probes.tls,
        Deadline.after(8),
        connect=strict_openssl_connector,  # type: ignore[arg-type]
    )
    for port in result.ports:
        outcome = {h.pinned: h for h in port.pinned}
        for version in (V10, V11):
            assert outcome[version].outcome is HandshakeOutcome.PROBE_ERROR
            assert "NO_CIPHERS_AVAILABLE" in outcome[version].detail
            assert port.accepted(outcome[version]) is None  # unknown, not "rejected"
        assert port.accepted(outcome[V12]) is True
        assert port.min_version is V12  # the lowest version we could actually test
    assert not result.success
    assert result.reason == "probe_error"


async def test_classify_reads_the_real_error_of_a_refused_legacy_client(lab: Lab) -> None:
    strict = ssl.create_default_context()
    strict.check_hostname = False
    strict.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        strict.minimum_version = strict.maximum_version = ssl.TLSVersion.TLSv1
    state = lab.node("cucm-pub")
    with pytest.raises(ssl.SSLError) as raised:
        await open_tls("127.0.0.1", state.ports[2445], strict, state.host, 5)
    assert classify(raised.value) is HandshakeOutcome.PROBE_ERROR


@pytest.mark.parametrize(
    "serial_number",
    [0x0A1B2C3D, 0x01, 0x80FF, 0x7F, 0x0F_FFFF_FFFF_FFFF_FFFF, 2**159 - 1],
    ids=["leading-zero-nibble", "one", "high-bit", "7f", "long-leading-zero", "max-20-bytes"],
)
def test_serials_keep_every_byte_as_blackbox_exporter_prints_them(
    tmp_path: Path, serial_number: int
) -> None:
    # blackbox_exporter prints fmt.Sprintf("%x", cert.SerialNumber.Bytes()): two hex digits a
    # byte, no sign byte; openssl's -serial prints the same bytes in upper case.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serial.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial_number)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    expected = openssl_serial(certificate.public_bytes(serialization.Encoding.PEM))
    assert certificate_info(der).serial == expected
    assert len(expected) % 2 == 0


async def test_certificate_fields_match_the_served_certificate(lab: Lab) -> None:
    state = lab.node("cucm-pub")
    pem = (lab.directory / "lab-cucm-pub.pem").read_bytes()
    served = x509.load_pem_x509_certificate(pem)
    der = served.public_bytes(serialization.Encoding.DER)
    for port in await sweep(config_for(lab), "cucm-pub"):
        certificate = port.certificate
        assert certificate is not None
        assert certificate.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
        assert certificate.fingerprint_sha256 == state.fingerprint_sha256
        assert certificate.serial == openssl_serial(pem)
        assert certificate.subject == "CN=cucm-pub.lab.test,O=CUCM lab"
        assert certificate.issuer == "CN=CUCM lab CA"
        assert certificate.not_after == served.not_valid_after_utc.timestamp()
        assert certificate.not_before == served.not_valid_before_utc.timestamp()


async def test_regenerated_certificate_changes_the_fingerprint(lab: Lab) -> None:
    before = (await sweep(config_for(lab), "cucm-sub1"))[0].certificate
    lab.set_tls_policy("cucm-sub1", "1.0", regenerate_certificate=True)
    after = (await sweep(config_for(lab), "cucm-sub1"))[0].certificate
    assert before is not None
    assert after is not None
    assert before.fingerprint_sha256 != after.fingerprint_sha256
    assert after.fingerprint_sha256 == lab.node("cucm-sub1").fingerprint_sha256


async def test_verification_against_the_configured_ca(lab: Lab) -> None:
    for port in await sweep(config_for(lab), "cucm-pub"):
        assert port.verified is True
        assert port.verify_error == ""


async def test_no_ca_file_means_no_verification_verdict(lab: Lab) -> None:
    for port in await sweep(config_for(lab, ca_file=None), "cucm-pub"):
        assert port.verified is None
        assert port.certificate is not None


async def test_failed_verification_still_captures_the_certificate(lab: Lab, tmp_path: Path) -> None:
    stranger = LabCA(tmp_path, name="Some other CA")  # did not issue the lab's certificates
    for port in await sweep(config_for(lab, ca_file=str(stranger.bundle_file)), "cucm-pub"):
        assert port.verified is False
        assert "unable to get local issuer certificate" in port.verify_error
        assert port.certificate is not None
        assert port.certificate.fingerprint_sha256 == lab.node("cucm-pub").fingerprint_sha256
        assert port.modern.outcome is HandshakeOutcome.ACCEPTED


async def test_connects_to_the_address_but_verifies_the_configured_name(lab: Lab) -> None:
    config = config_for(lab)
    node = node_config(config, "cucm-pub")
    # host is a name that resolves nowhere; address is where the node listens.
    assert node.host == "cucm-pub.lab.test"
    assert node.address == "127.0.0.1"
    wrong_name = node.model_copy(update={"tls_server_name": "cucm-sub1.lab.test"})
    right = await probe_tls(node, config.probes.tls, Deadline.after(8))
    wrong = await probe_tls(wrong_name, config.probes.tls, Deadline.after(8))
    assert all(p.verified for p in right.ports)
    assert not any(p.verified for p in wrong.ports)
    assert all("Hostname mismatch" in p.verify_error for p in wrong.ports)


async def test_unresolvable_host_is_a_dns_error(lab: Lab) -> None:
    config = config_for(lab, versions=["1.2"])
    node = NodeConfig(name="ghost", host="ghost.invalid")
    result = await probe_tls(node, config.probes.tls, Deadline.after(8))
    assert {h.outcome for p in result.ports for h in (*p.pinned, p.modern)} == {
        HandshakeOutcome.DNS_ERROR
    }


async def test_an_exhausted_deadline_times_out_without_connecting() -> None:
    calls: list[int] = []

    async def connector(
        address: str, port: int, context: ssl.SSLContext, name: str, budget: float
    ) -> HandshakeFacts:
        calls.append(port)
        raise AssertionError("must not connect once the deadline has passed")

    settings = TlsProbeConfig(versions=(V12,))
    node = NodeConfig(name="n", host="127.0.0.1")
    result = await probe_tls(node, settings, Deadline(expires_at=0.0), connect=connector)
    assert calls == []
    assert {h.outcome for p in result.ports for h in p.pinned} == {HandshakeOutcome.TIMEOUT}
