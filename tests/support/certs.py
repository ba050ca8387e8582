"""Throw-away PKI for the TLS tests: CAs, server and client certificates (``cryptography``).

``Pki.create(directory)`` writes every file the tests need (see the attributes) and returns
the paths; nothing is cached across test sessions. Keys are EC P-256, which is fast to make.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.backends import ConnRecord, EchoBackend

#: Password of ``Pki.encrypted_key``.
KEY_PASSWORD = "correct horse"
_ONE_DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password is not None:
        encryption = serialization.BestAvailableEncryption(password.encode())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


@dataclass
class Issued:
    """A certificate and its key, PEM-encoded."""

    cert: bytes
    key: ec.EllipticCurvePrivateKey

    def key_pem(self, password: str | None = None) -> bytes:
        return _key_pem(self.key, password)


class CA:
    """A self-signed certificate authority that issues leaf certificates."""

    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = _name(common_name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY).not_valid_after(now + _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, client: bool = False,
              hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Issued:
        """A leaf certificate: a server one for ``hosts``, or a client one."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY).not_valid_after(now + _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if not client:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key)


@dataclass
class Pki:
    """Paths of the files ``create`` writes."""

    ca: Path  # the test CA certificate (trust it in clients, --cafile, --ssl-target-cafile)
    server_cert: Path  # server certificate for 127.0.0.1/localhost, CN "proxy.test"
    server_key: Path
    combined: Path  # server certificate + key in one PEM (websockify's usual self.pem)
    encrypted_key: Path  # server key encrypted with KEY_PASSWORD
    other_server: Path  # a second server certificate + key (CN "renewed.test"), same CA
    alice: Path  # client certificate + key, CN "alice", signed by the test CA
    bob: Path  # client certificate + key, CN "bob", signed by the test CA
    mallory: Path  # client certificate + key, CN "alice", signed by a foreign CA
    foreign_ca: Path  # the foreign CA certificate
    foreign_server: Path  # server certificate + key for 127.0.0.1 from the foreign CA

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca, foreign = CA("Test CA"), CA("Foreign CA")
        server = ca.issue("proxy.test")

        def write(name: str, data: bytes) -> Path:
            path = directory / name
            path.write_bytes(data)
            return path

        def both(name: str, issued: Issued) -> Path:
            return write(name, issued.cert + issued.key_pem())

        return cls(
            ca=write("ca.pem", ca.pem),
            server_cert=write("server-cert.pem", server.cert),
            server_key=write("server-key.pem", server.key_pem()),
            combined=both("server.pem", server),
            encrypted_key=write("server-key-encrypted.pem", server.key_pem(KEY_PASSWORD)),
            other_server=both("renewed.pem", ca.issue("renewed.test")),
            alice=both("alice.pem", ca.issue("alice", client=True)),
            bob=both("bob.pem", ca.issue("bob", client=True)),
            mallory=both("mallory.pem", foreign.issue("alice", client=True)),
            foreign_ca=write("foreign-ca.pem", foreign.pem),
            foreign_server=both("foreign-server.pem", foreign.issue("foreign.test")),
        )

    def client_context(self, cert: Path | None = None) -> ssl.SSLContext:
        """A client context trusting the test CA, presenting ``cert`` (a combined PEM) if given."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert))
        return context

    def server_context(self, cert: Path | None = None) -> ssl.SSLContext:
        """A server context for a TLS backend (``cert`` defaults to the combined server PEM)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert or self.combined))
        return context


def peer_common_name(sock: ssl.SSLSocket) -> str | None:
    """The CN of the certificate the server presented (for the reload test)."""
    der = sock.getpeercert(binary_form=True)
    if der is None:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class TLSEchoBackend(EchoBackend):
    """An echo backend speaking TLS with ``context``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def handle(self, rec: ConnRecord) -> None:
        try:
            rec.sock = self.context.wrap_socket(rec.sock, server_side=True)
        except ssl.SSLError:
            return  # the proxy refused our certificate; the test checks its side
        super().handle(rec)
