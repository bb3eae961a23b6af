"""Trust between mirror peers, from the shared secret alone.

The secret is stretched with scrypt into the seed of an Ed25519 "mirror CA". Every node
derives the same CA from the same secret, signs its own TLS certificate with it, and talks
mutual TLS 1.3 trusting that CA only; a peer with another secret fails the handshake before
a byte of mail moves.

Everything that shapes the CA certificate (salt, scrypt cost, name, serial, validity,
extensions) is a wire contract: peers verify each other's certificates against their own
copy of the CA, so two firmware versions must derive identical CAs, or they cannot even get
far enough to tell each other their versions. Change it only together with the salt's "v1".

In TLS 1.3 the client finishes its handshake before the server has checked the client's
certificate, so a server's refusal reaches the client on its first read: a connection is
proven only once the peer's first message (the hello) has arrived.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import ssl
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.errors import ArchiverError

from services.common.atomic_file import atomic_output

MINIMUM_SECRET_LENGTH = 16

# The scrypt parameters are fixed forever (see the module docstring): ~0.1-0.2 s per
# derivation, 32 MiB of memory. The salt is public; it only keeps this derivation apart
# from any other use of the same secret.
SCRYPT_SALT = b"archiver-mirror-ca-v1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1

CA_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
CA_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
NODE_VALIDITY = datetime.timedelta(days=20 * 365)
# Tolerates a peer whose clock is somewhat behind ours when it checks our new certificate.
NODE_BACKDATE = datetime.timedelta(days=1)

KEY_FILE = "mirror-node.key"
CERTIFICATE_FILE = "mirror-node.crt"


class SecretTooShort(ArchiverError):
    def __init__(self, length: int):
        super().__init__(f"the mirror secret must be at least {MINIMUM_SECRET_LENGTH} "
                         f"characters long; the one given has {length}")


@dataclass(frozen=True)
class MirrorCA:
    key: Ed25519PrivateKey
    certificate: x509.Certificate
    fingerprint: str          # short hex id of the CA's public key, for status and logs

    @property
    def certificate_pem(self) -> str:
        return _certificate_pem(self.certificate)


@dataclass(frozen=True)
class NodeIdentity:
    node_id: str
    key: Ed25519PrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> str:
        return _key_pem(self.key)

    @property
    def certificate_pem(self) -> str:
        return _certificate_pem(self.certificate)


# -- the CA -----------------------------------------------------------------------------

def derive_ca(secret: str) -> MirrorCA:
    """The mirror CA of `secret`: the same key and certificate bytes on every node."""
    if len(secret) < MINIMUM_SECRET_LENGTH:
        raise SecretTooShort(len(secret))
    key = Ed25519PrivateKey.from_private_bytes(_stretch(secret))
    public = _raw_public_bytes(key)
    fingerprint = hashlib.sha256(public).hexdigest()[:16]
    # The fingerprint in the name keeps two secrets' CAs apart in chains and logs.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"archiver mirror CA {fingerprint}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial_from(public))
        .not_valid_before(CA_NOT_BEFORE).not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, None))     # Ed25519 signatures are deterministic: same bytes everywhere
    return MirrorCA(key, certificate, fingerprint)


def _stretch(secret: str) -> bytes:
    # NFC: the same secret typed on two systems may arrive composed or decomposed.
    material = unicodedata.normalize("NFC", secret).encode()
    return Scrypt(salt=SCRYPT_SALT, length=32, n=SCRYPT_N, r=SCRYPT_R,
                  p=SCRYPT_P).derive(material)


def _serial_from(public: bytes) -> int:
    # Fixed per CA (determinism), positive and nonzero as RFC 5280 asks.
    return int.from_bytes(hashlib.sha256(b"serial" + public).digest()[:16], "big") | 1


# -- node certificates ------------------------------------------------------------------

def issue_node_certificate(ca: MirrorCA, node_id: str,
                           node_key: Ed25519PrivateKey | None = None) -> NodeIdentity:
    """A certificate for `node_id`, signed by the mirror CA, good as TLS server and client."""
    key = node_key or Ed25519PrivateKey.generate()
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NODE_BACKDATE).not_valid_after(now + NODE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        # Not checked by peers (they trust the CA, not names); it helps tools that expect one.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
        .sign(ca.key, None))
    return NodeIdentity(node_id, key, certificate)


def load_or_create_identity(directory: Path, secret: str, node_id: str) -> NodeIdentity:
    """This node's identity kept in `directory`: the key is made once and kept; the
    certificate is re-issued when it no longer fits (another secret, another node id,
    another key, or less than a year left)."""
    ca = derive_ca(secret)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _load_or_create_key(directory / KEY_FILE)
    certificate = _read_certificate(directory / CERTIFICATE_FILE)
    if certificate is not None and _still_fits(certificate, ca, key, node_id):
        return NodeIdentity(node_id, key, certificate)
    identity = issue_node_certificate(ca, node_id, key)
    _write_atomically(directory / CERTIFICATE_FILE, identity.certificate_pem.encode())
    return identity


def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
    with contextlib.suppress(FileNotFoundError, ValueError):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, Ed25519PrivateKey):
            return key
    # Missing or unusable: nothing pins a node's key (peers trust the CA), so a new one is
    # as good as the old.
    key = Ed25519PrivateKey.generate()
    _write_atomically(path, _key_pem(key).encode())
    return key


def _read_certificate(path: Path) -> x509.Certificate | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return x509.load_pem_x509_certificate(path.read_bytes())
    return None


def _still_fits(certificate: x509.Certificate, ca: MirrorCA, key: Ed25519PrivateKey,
                node_id: str) -> bool:
    # The issuer name carries the CA's fingerprint, and the signature proves it: a changed
    # secret shows here, without a separate record of which secret issued the certificate.
    if certificate.issuer != ca.certificate.subject:
        return False
    try:
        ca.key.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes)
    except InvalidSignature:
        return False
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    # cryptography 38 gives naive UTC datetimes.
    year_ahead = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) \
        + datetime.timedelta(days=365)
    return (_raw_public_bytes(certificate.public_key()) == _raw_public_bytes(key)
            and [attribute.value for attribute in cn] == [node_id]
            and certificate.not_valid_after > year_ahead)


def _write_atomically(path: Path, data: bytes) -> None:
    """`path` holds `data` whole or keeps its old content; mode 0600."""
    with atomic_output(path) as output:
        output.write(data)


# -- TLS --------------------------------------------------------------------------------

def server_context(ca: MirrorCA, identity: NodeIdentity) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _mutual_tls13(context, ca, identity)
    return context


def client_context(ca: MirrorCA, identity: NodeIdentity) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Peers are identified by the CA their secret derives, not by host names: the address a
    # peer is configured with may be an IP or a load balancer. The node id is in the CN.
    context.check_hostname = False
    _mutual_tls13(context, ca, identity)
    return context


def _mutual_tls13(context: ssl.SSLContext, ca: MirrorCA, identity: NodeIdentity) -> None:
    # A bare SSLContext loads no system CAs: this CA is the only one trusted.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca.certificate_pem)
    with _pem_file(identity.certificate_pem + identity.key_pem) as path:
        context.load_cert_chain(path)


@contextlib.contextmanager
def _pem_file(pem: str) -> Iterator[str]:
    """A path to `pem` for ssl's load_cert_chain, which reads only files: an anonymous
    in-memory file where Linux offers one, else a private temporary file."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        descriptor = os.memfd_create("mirror-identity", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, pem.encode())
            yield f"/proc/self/fd/{descriptor}"
        finally:
            os.close(descriptor)
        return
    with tempfile.TemporaryDirectory() as directory:   # mode 0700, removed afterwards
        path = os.path.join(directory, "identity.pem")
        Path(path).write_text(pem)
        yield path


def peer_node_id(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    """The node id (CN) of the peer's verified certificate, for logs and the hello check."""
    certificate = ssl_object.getpeercert() or {}
    for relative_name in certificate.get("subject", ()):
        for attribute, value in relative_name:
            if attribute == "commonName":
                return value
    return None


# -- failures in words ------------------------------------------------------------------

# OpenSSL verify codes: the issuer is unknown here (2, 20, 21), the chain ends in a root we
# do not trust (19), the certificate signed itself (18), or the clocks disagree (9, 10).
_FOREIGN_CA_CODES = {2, 19, 20, 21}
_SELF_SIGNED_CODE = 18
_CLOCK_CODES = {9, 10}
# Alerts OpenSSL sends when it refuses a certificate for those same reasons.
_FOREIGN_CA_ALERTS = {"TLSV1_ALERT_UNKNOWN_CA"}
_CLOCK_ALERTS = {"SSLV3_ALERT_CERTIFICATE_EXPIRED"}
_OLD_TLS = {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"}
_NOT_TLS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
            "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}


def describe_tls_failure(exc: BaseException) -> str:
    """What went wrong connecting to a peer, in words status can show."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _describe_refused_peer(exc)
    if isinstance(exc, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
        return "the peer closed the connection during the TLS handshake"
    if isinstance(exc, ssl.SSLError):
        return _describe_tls_error(exc.reason or "", exc)
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return f"the peer dropped the connection: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        return "unreachable: no answer in time"
    if isinstance(exc, OSError):      # refused, no route, unknown host name, ...
        return f"unreachable: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _describe_refused_peer(exc: ssl.SSLCertVerificationError) -> str:
    """This side refused the certificate the peer presented."""
    not_ours = "the peer's certificate is not from this secret's mirror CA"
    if exc.verify_code in _FOREIGN_CA_CODES:
        return f"{not_ours}: the secrets differ ({exc.verify_message})"
    if exc.verify_code == _SELF_SIGNED_CODE:
        return f"{not_ours}: it is no mirror peer ({exc.verify_message})"
    if exc.verify_code in _CLOCK_CODES:
        return (f"the peer's certificate is not valid at this system's time: check both "
                f"clocks ({exc.verify_message})")
    return f"the peer's certificate was refused: {exc.verify_message}"


def _describe_tls_error(reason: str, exc: ssl.SSLError) -> str:
    alert = "alert " + reason.partition("ALERT_")[2].lower().replace("_", " ")
    if reason in _FOREIGN_CA_ALERTS:
        return f"the peer refused this system's certificate: the secrets differ ({alert})"
    if reason in _CLOCK_ALERTS:
        return f"the peer refused this system's certificate: check both clocks ({alert})"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "the peer presented no certificate: it is no mirror peer"
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return "the peer wants a certificate this system did not present"
    if reason in _OLD_TLS:
        return "the peer does not speak TLS 1.3: it is no mirror peer"
    if reason in _NOT_TLS:
        return "the peer does not speak TLS: is another service listening on the mirror port?"
    if "ALERT_" in reason:
        return f"the peer refused the TLS handshake ({alert})"
    return f"TLS failed: {reason.lower().replace('_', ' ') or exc}"


# -- small helpers ----------------------------------------------------------------------

def _certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _raw_public_bytes(key) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, key_cert_sign=key_cert_sign,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)
