"""Certificates for lab nodes: one lab CA, one RSA leaf per node (CUCM's Tomcat default)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class Issued:
    """A leaf certificate written to disk, with the facts tests compare against."""

    cert_file: Path
    key_file: Path
    certificate: x509.Certificate


class LabCA:
    """A throwaway certificate authority whose bundle the exporter can be told to trust."""

    def __init__(self, directory: Path, key_size: int = 2048, name: str = "CUCM lab CA") -> None:
        self.directory = directory
        self._key_size = key_size
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        # One key for every leaf: RSA key generation costs ~50 ms, signing a certificate ~1 ms,
        # and a lab of a thousand nodes must start in seconds. Each node still gets a
        # certificate (and so a fingerprint) of its own.
        self._leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.bundle_file = directory / "lab-ca.pem"
        self.bundle_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, name: str, dns_names: list[str], ip: str = "127.0.0.1", *, client: bool = False
    ) -> Issued:
        """Issue (or re-issue, as `set tls min-version` may) the leaf certificate for `name`;
        `client` makes it a TLS client certificate instead."""
        key = self._leaf_key
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CUCM lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else name),
            ]
        )
        san = [x509.DNSName(d) for d in dns_names] + [x509.IPAddress(ipaddress.ip_address(ip))]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
                        if client
                        else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
                    ]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file = self.directory / f"{name}.pem"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return Issued(cert_file, key_file, certificate)
