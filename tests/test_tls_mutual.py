"""The ServerHello decides: mutual-TLS ports, openssl s_server -Verify, broken negotiations."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import resource
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from exporter.config import NodeConfig, PortConfig, TlsProbeConfig
from exporter.lab import Lab
from exporter.lab.certs import Issued, LabCA
from exporter.lab.tls import OPTIONAL_PORTS, ClientAuth, unused_port
from exporter.probes.describe import describe_tls
from exporter.probes.tls import probe_tls
from exporter.results import HandshakeOutcome, PortResult, TlsVersion
from exporter.timing import Deadline
from tests.conftest import config_for, node_config

V10, V11, V12, V13 = TlsVersion.TLS1_0, TlsVersion.TLS1_1, TlsVersion.TLS1_2, TlsVersion.TLS1_3
ACCEPTED = HandshakeOutcome.ACCEPTED
THEN_HANDSHAKE_FAILURE = HandshakeOutcome.ACCEPTED_THEN_HANDSHAKE_FAILURE
OPTIONAL = [{"port": port, "service": service} for port, (service, _) in OPTIONAL_PORTS.items()]


@pytest.fixture(scope="module")
def mtls_lab() -> Iterator[Lab]:
    with Lab({"mtls": ("legacy", "modern")}, restart_downtime=0.0, optional_ports=True) as lab:
        lab.set_tls_policy("legacy", "1.0", "1.2")  # CUCM's default before 15SU2
        lab.set_tls_policy("modern", "1.2", "1.3")
        yield lab


async def sweep_optional(lab: Lab, node: str) -> dict[int, PortResult]:
    config = config_for(lab, ports=OPTIONAL)
    result = await probe_tls(node_config(config, node), config.probes.tls, Deadline.after(8))
    assert result.success, result.reason
    return {port.port: port for port in result.ports}


def outcomes(port: PortResult) -> dict[TlsVersion | None, HandshakeOutcome]:
    return {h.pinned: h.outcome for h in port.pinned}


async def test_mutual_tls_ports_accept_what_their_server_hello_selects(mtls_lab: Lab) -> None:
    ports = await sweep_optional(mtls_lab, "legacy")
    fingerprint = mtls_lab.node("legacy").fingerprint_sha256
    for number, (service, auth) in OPTIONAL_PORTS.items():
        port = ports[number]
        assert port.service == service
        assert port.accepted_versions == (V10, V11, V12), service
        assert (port.min_version, port.max_version) == (V10, V12)
        # What came after the ServerHello is said apart, and only where a certificate is due.
        after = THEN_HANDSHAKE_FAILURE if auth is ClientAuth.REQUIRED else ACCEPTED
        assert outcomes(port) == {
            V10: after,
            V11: after,
            V12: after,
            V13: HandshakeOutcome.REJECTED_PROTOCOL_VERSION,  # OpenSSL reads supported_versions
        }, service
        # TLS 1.2 shows its certificate before it asks for ours: it is still captured.
        assert port.certificate is not None
        assert port.certificate.fingerprint_sha256 == fingerprint
        assert port.modern.negotiated is V12
        assert port.verified is True  # our client verified the chain before the server broke off


async def test_with_tls_1_3_the_required_certificate_comes_after_our_side_is_done(
    mtls_lab: Lab,
) -> None:
    ports = await sweep_optional(mtls_lab, "modern")
    for number, (service, auth) in OPTIONAL_PORTS.items():
        port = ports[number]
        assert port.accepted_versions == (V12, V13), service
        assert outcomes(port)[V10] is HandshakeOutcome.REJECTED_PROTOCOL_VERSION
        assert outcomes(port)[V13] is ACCEPTED  # TLS 1.3: the client's handshake completes
        expected = THEN_HANDSHAKE_FAILURE if auth is ClientAuth.REQUIRED else ACCEPTED
        assert outcomes(port)[V12] is expected
        assert port.modern.negotiated is V13


async def test_the_debug_text_names_the_selected_version_and_what_came_after(
    mtls_lab: Lab,
) -> None:
    config = config_for(mtls_lab, ports=[{"port": 5061, "service": "sip"}])
    result = await probe_tls(node_config(config, "legacy"), config.probes.tls, Deadline.after(8))
    lines = list(describe_tls(result))
    tls10 = next(line for line in lines if "TLS 1.0:" in line)
    assert tls10.startswith("tls 5061/sip TLS 1.0: accepted_then_handshake_failure")
    assert "ServerHello selected 1.0, then SSLV3_ALERT_HANDSHAKE_FAILURE" in tls10


# --- an independent peer: openssl s_server -Verify 1 ----------------------------------------


@pytest.fixture(scope="module")
def leaf(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return LabCA(tmp_path_factory.mktemp("s_server")).issue("peer", ["peer.test"])


@contextlib.contextmanager
def s_server(leaf: Issued, *protocol: str) -> Iterator[int]:
    """`openssl s_server -Verify 1` (a client certificate is required) on a loopback port."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing (Debian package openssl)"
    port = unused_port()
    # -cipher @SECLEVEL=0: OpenSSL 3 refuses to sign a TLS 1.0/1.1 handshake otherwise.
    command = [
        openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(leaf.cert_file),
        "-key", str(leaf.key_file), "-Verify", "1", "-cipher", "DEFAULT:@SECLEVEL=0", *protocol,
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as server:
        try:
            assert server.stdout is not None
            for line in server.stdout:  # "ACCEPT" once it listens
                if line.strip() == b"ACCEPT":
                    break
            else:
                raise AssertionError("openssl s_server did not start")
            yield port
        finally:
            server.kill()


async def sweep_peer(port: int) -> PortResult:
    settings = TlsProbeConfig(ports=(PortConfig(port=port, service="peer"),), concurrency=1)
    node = NodeConfig(name="peer", host="127.0.0.1")
    (result,) = (await probe_tls(node, settings, Deadline.after(10))).ports
    return result


@pytest.mark.parametrize(
    ("protocol", "accepted"),
    [
        (("-tls1_2",), (V12,)),
        (("-tls1",), (V10,)),
        (("-no_tls1_3",), (V10, V11, V12)),
    ],
    ids=["tls1_2", "tls1", "up-to-1.2"],
)
async def test_openssl_s_server_requiring_a_certificate(
    leaf: Issued, protocol: tuple[str, ...], accepted: tuple[TlsVersion, ...]
) -> None:
    with s_server(leaf, *protocol) as port:
        result = await sweep_peer(port)
    assert result.accepted_versions == accepted
    for handshake in result.pinned:
        if handshake.pinned in accepted:
            # s_server: "peer did not return a certificate", alert handshake_failure.
            assert handshake.outcome is THEN_HANDSHAKE_FAILURE, handshake
            assert handshake.negotiated is handshake.pinned
        else:
            assert handshake.outcome.is_server_rejection, handshake
    served = leaf.certificate.public_bytes(serialization.Encoding.DER)
    assert result.certificate is not None  # from the TLS 1.2 and 1.0 Certificate messages
    assert result.certificate.fingerprint_sha256 == hashlib.sha256(served).hexdigest()


# --- a broken negotiation: a pinned 1.0 ClientHello answered with a 1.2 ServerHello ---------

SERVER_HELLO_1_2 = (
    b"\x16\x03\x03\x00\x2a"  # handshake record, 42 bytes
    + b"\x02\x00\x00\x26"  # ServerHello, 38 bytes
    + b"\x03\x03"  # legacy_version TLS 1.2
    + bytes(range(32))  # random
    + b"\x00"  # no session id
    + b"\xc0\x2f"  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    + b"\x00"  # no compression
)


@contextlib.asynccontextmanager
async def always_tls_1_2() -> AsyncIterator[int]:
    """A server that answers any ClientHello with a TLS 1.2 ServerHello, as broken
    version negotiation does (testssl.sh: "server responded with higher version number")."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(5)
        writer.write(SERVER_HELLO_1_2)
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()  # and nothing more: a pinned 1.2 is accepted, then reset

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_a_higher_server_hello_is_a_rejection_of_the_pinned_version() -> None:
    async with always_tls_1_2() as port:
        result = await sweep_peer(port)
    outcome = outcomes(result)
    assert outcome[V10] is HandshakeOutcome.REJECTED_HIGHER_VERSION
    assert outcome[V11] is HandshakeOutcome.REJECTED_HIGHER_VERSION
    assert outcome[V13] is HandshakeOutcome.REJECTED_UNSUPPORTED_PROTOCOL
    assert result.accepted(result.pinned[0]) is False
    assert "ServerHello selected 1.2" in result.pinned[0].detail


# --- our own limits: EMFILE is ours, not the server's ---------------------------------------


async def test_running_out_of_file_descriptors_is_a_probe_error_not_a_tls_answer(
    leaf: Issued, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    port = unused_port()  # nothing is reached: socket() fails first
    bundle = tmp_path / "ca.pem"  # a bundle not read yet: opening it fails too
    bundle.write_bytes(leaf.cert_file.read_bytes())
    settings = TlsProbeConfig(
        ports=(PortConfig(port=port, service="x"),), concurrency=1, ca_file=bundle
    )
    node = NodeConfig(name="n", host="127.0.0.1")
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        with contextlib.suppress(OSError):
            while len(held) < 10_000:
                held.append(os.open(os.devnull, os.O_RDONLY))
        result = await probe_tls(node, settings, Deadline.after(5))
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    handshakes = [h for p in result.ports for h in (*p.pinned, p.modern)]
    assert {h.outcome for h in handshakes} == {HandshakeOutcome.PROBE_ERROR}
    assert all("EMFILE" in h.detail for h in handshakes)
    assert result.reason == "probe_error"


# --- probes.tls.ca_file is read again when it changes ---------------------------------------


async def test_a_ca_file_updated_in_place_takes_effect(mtls_lab: Lab, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(LabCA(tmp_path, name="Some other CA").bundle_file.read_bytes())
    config = config_for(mtls_lab, ca_file=str(bundle), versions=["1.2"])
    node = node_config(config, "legacy")

    async def verified() -> list[bool | None]:
        result = await probe_tls(node, config.probes.tls, Deadline.after(8))
        return [port.verified for port in result.ports]

    assert await verified() == [False, False]
    bundle.write_bytes(mtls_lab.ca_file.read_bytes())  # same path, new contents
    assert await verified() == [True, True]
