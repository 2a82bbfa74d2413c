"""The ServerHello reader, on the bytes a real OpenSSL server writes (and on broken ones)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from exporter.lab.certs import Issued, LabCA
from exporter.lab.tls import server_context
from exporter.probes.tls import legacy_capable_context
from exporter.probes.tlswire import HELLO_RETRY_RANDOM, FirstFlight, HelloKind
from exporter.results import TlsVersion

V10, V11, V12, V13 = TlsVersion.TLS1_0, TlsVersion.TLS1_1, TlsVersion.TLS1_2, TlsVersion.TLS1_3


@pytest.fixture(scope="module")
def leaf(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return LabCA(tmp_path_factory.mktemp("wire")).issue("wire", ["wire.test"])


def server_flights(
    leaf: Issued, pin: TlsVersion, server: tuple[str, str], *, curve: str | None = None
) -> Iterator[bytes]:
    """What a real OpenSSL server sends a pinned client, flight by flight (in memory)."""
    context = server_context(leaf.cert_file, leaf.key_file, *server)
    if curve is not None:
        context.set_ecdh_curve(curve)  # a key share the client did not send: HelloRetryRequest
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = legacy_capable_context(pin, pin).wrap_bio(
        client_in, client_out, server_hostname="wire.test"
    )
    peer = context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(6):
        with_errors = []
        for side in (client, peer):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as error:
                with_errors.append(error)
            if side is client:
                server_in.write(client_out.read())
        data = server_out.read()
        if data:
            yield data
            client_in.write(data)
        if with_errors or not data:
            return


def first_flight(chunks: Iterator[bytes] | list[bytes]) -> FirstFlight:
    flight = FirstFlight()
    for chunk in chunks:
        flight.feed(chunk)
    return flight


@pytest.mark.parametrize(
    ("pin", "server", "selected"),
    [
        (V10, ("1.0", "1.2"), 0x0301),
        (V11, ("1.0", "1.2"), 0x0302),
        (V12, ("1.0", "1.3"), 0x0303),
        (V13, ("1.0", "1.3"), 0x0304),
        (V12, ("1.0", "1.0"), 0x0301),  # the server's maximum is below the pin
    ],
)
def test_reads_the_version_the_server_selected(
    leaf: Issued, pin: TlsVersion, server: tuple[str, str], selected: int
) -> None:
    hello = first_flight(server_flights(leaf, pin, server)).verdict()
    assert hello is not None
    assert hello.kind is HelloKind.SERVER_HELLO
    assert hello.selected == selected
    assert hello.legacy_version == min(selected, 0x0303)  # TLS 1.3 keeps saying 1.2 there
    assert not hello.hello_retry


def test_a_hello_retry_request_is_followed_to_the_real_server_hello(leaf: Issued) -> None:
    chunks = list(server_flights(leaf, V13, ("1.2", "1.3"), curve="prime256v1"))
    assert HELLO_RETRY_RANDOM in chunks[0]  # the server really asked again
    retry_only = first_flight(chunks[:1])
    assert retry_only.result is None  # not decided by the retry request alone ...
    assert retry_only.verdict() is not None  # ... but it already names TLS 1.3
    assert retry_only.verdict().selected == 0x0304  # type: ignore[union-attr]
    hello = first_flight(chunks).verdict()
    assert hello is not None
    assert (hello.selected, hello.hello_retry) == (0x0304, True)


def test_bytes_arriving_one_at_a_time_give_the_same_answer(leaf: Issued) -> None:
    data = b"".join(server_flights(leaf, V12, ("1.0", "1.3")))
    whole = first_flight([data]).verdict()
    trickled = first_flight([data[i : i + 1] for i in range(len(data))]).verdict()
    assert whole == trickled
    assert whole is not None
    assert whole.selected == 0x0303


def test_a_server_hello_split_over_two_records_is_joined() -> None:
    body = (
        b"\x03\x03" + bytes(32) + b"\x00" + b"\xc0\x2f" + b"\x00"  # no session id, no extensions
    )
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    records = b"".join(
        b"\x16\x03\x03" + len(part).to_bytes(2, "big") + part
        for part in (message[:10], message[10:])
    )
    hello = first_flight([records]).verdict()
    assert hello is not None
    assert (hello.selected, hello.cipher_suite) == (0x0303, 0xC02F)


def test_an_alert_before_any_server_hello(leaf: Issued) -> None:
    flight = first_flight(server_flights(leaf, V10, ("1.2", "1.3")))
    assert flight.verdict() is None
    assert flight.result is not None
    assert (flight.result.kind, flight.result.alert) == (HelloKind.ALERT, 70)  # protocol_version


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.0 400 Bad Request\r\n\r\n",
        b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00",  # a Certificate first: not a ServerHello
        b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03",  # a ServerHello cut short
        b"\x16\x03\x03\x00\x27\x02\x00\x00\x23\x03\x03" + bytes(32) + b"\xff",  # bad session id
    ],
    ids=["http", "certificate-first", "short-hello", "session-id-past-the-end"],
)
def test_what_is_not_a_server_hello_is_never_one(data: bytes) -> None:
    flight = first_flight([data])
    assert flight.verdict() is None
    assert flight.result is not None
    assert flight.result.kind is HelloKind.NOT_TLS


def test_endless_plaintext_without_a_hello_stops_being_read() -> None:
    flight = FirstFlight()
    change_cipher_spec = b"\x14\x03\x03\x00\x01\x01"
    for _ in range(10_000):
        flight.feed(change_cipher_spec)
        if flight.result is not None:
            break
    assert flight.result is not None
    assert flight.result.kind is HelloKind.NOT_TLS
