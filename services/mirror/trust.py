"""Trust between mirror peers: self-signed node certificates, pinned after SPAKE2 pairing.

Every node has its own Ed25519 key and a self-signed certificate naming its node id; nothing
in either comes from the shared secret, so what a stranger sees on the mirror port (the
server's certificate) is no test of a guess at the secret. Two nodes learn each other's
certificate by pairing (services.mirror.pairing: SPAKE2 over the secret, which lets a
stranger test one guess per connection and none offline); from then on they talk mutual TLS
1.3 and accept exactly the certificates they pinned ("pins": node id -> certificate).

The server asks for a client certificate but lets a client without one through the
handshake (CERT_OPTIONAL): such a client may only pair. Everything else needs a pinned
certificate, and the node id of a request is the one its certificate was pinned under,
never what the request says about itself.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.atomic_file import atomic_output

NODE_VALIDITY = datetime.timedelta(days=20 * 365)
# Tolerates a peer whose clock is somewhat behind ours when it checks our new certificate.
NODE_BACKDATE = datetime.timedelta(days=1)

KEY_FILE = "mirror-node.key"
CERTIFICATE_FILE = "mirror-node.crt"


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
        return certificate_pem(self.certificate)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)


# -- node certificates ------------------------------------------------------------------

def self_signed_certificate(node_id: str, key: Ed25519PrivateKey) -> x509.Certificate:
    """A certificate for `node_id` signed by its own `key`, good as TLS server and client."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NODE_BACKDATE).not_valid_after(now + NODE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        # Not checked by peers (they pin certificates, not names); tools expect one.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, None))


def load_or_create_identity(directory: Path, node_id: str) -> NodeIdentity:
    """This node's identity kept in `directory`: the key is made once and kept; the
    certificate is made anew when it no longer fits (another node id, another key, or less
    than a year left). Peers that pinned the old certificate pair again by themselves."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _load_or_create_key(directory / KEY_FILE)
    certificate = _read_certificate(directory / CERTIFICATE_FILE)
    if certificate is not None and _still_fits(certificate, key, node_id):
        return NodeIdentity(node_id, key, certificate)
    identity = NodeIdentity(node_id, key, self_signed_certificate(node_id, key))
    _write_atomically(directory / CERTIFICATE_FILE, identity.certificate_pem.encode())
    return identity


def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
    with contextlib.suppress(FileNotFoundError, ValueError):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, Ed25519PrivateKey):
            return key
    # Missing or unusable: a new key means a new certificate, which peers pair with again.
    key = Ed25519PrivateKey.generate()
    _write_atomically(path, _key_pem(key).encode())
    return key


def _read_certificate(path: Path) -> x509.Certificate | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return x509.load_pem_x509_certificate(path.read_bytes())
    return None


def _still_fits(certificate: x509.Certificate, key: Ed25519PrivateKey, node_id: str) -> bool:
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    # cryptography 38 gives naive UTC datetimes.
    year_ahead = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) \
        + datetime.timedelta(days=365)
    return (_raw_public_bytes(certificate.public_key()) == _raw_public_bytes(key)
            and certificate.issuer == certificate.subject
            and [attribute.value for attribute in cn] == [node_id]
            and certificate.not_valid_after > year_ahead)


def _write_atomically(path: Path, data: bytes) -> None:
    """`path` holds `data` whole or keeps its old content; mode 0600."""
    with atomic_output(path) as output:
        output.write(data)


# -- pins -------------------------------------------------------------------------------

def fingerprint(certificate: x509.Certificate | bytes) -> str:
    """SHA-256 of a certificate's DER bytes, in hex (what a pin is known by)."""
    der = certificate if isinstance(certificate, bytes) else \
        certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def certificate_node_id(certificate: x509.Certificate) -> str | None:
    """The node id a certificate names (its only CN), or None."""
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cn[0].value if len(cn) == 1 else None


def proven_node_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None,
                   pins: Mapping[str, str]) -> str | None:
    """The node id whose pinned certificate (`pins`: node id -> PEM) the peer of this TLS
    connection presented, or None when it presented none or one not pinned (any more)."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return presented_node_id(der, pins)


class PeerCertificateResponse(aiohttp.ClientResponse):
    """An aiohttp response that remembers the DER certificate the server presented on its
    connection (aiohttp hands a connection back to its pool as soon as a short body is in,
    so the connection is gone by the time the caller looks). Use it as a ClientSession's
    response_class."""

    peer_certificate: bytes | None = None

    async def start(self, connection):
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


def presented_node_id(der: bytes | None, pins: Mapping[str, str]) -> str | None:
    """The node id under which the certificate `der` is pinned (`pins`: node id -> PEM),
    or None."""
    if not der:
        return None
    presented = fingerprint(der)
    for node_id, pem in pins.items():
        if fingerprint(x509.load_pem_x509_certificate(pem.encode())) == presented:
            return node_id
    return None


# -- TLS --------------------------------------------------------------------------------

def server_context(identity: NodeIdentity, pins: Mapping[str, str]) -> ssl.SSLContext:
    """Presents this node's certificate; asks for the client's and accepts only a pinned
    one, or none (a client that wants to pair; the server lets it do nothing else)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _tls13_with(context, identity)
    context.verify_mode = ssl.CERT_OPTIONAL
    add_pins(context, pins.values())
    return context


def client_context(identity: NodeIdentity, pins: Mapping[str, str]) -> ssl.SSLContext:
    """Presents this node's certificate and accepts only a pinned server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Peers are their pinned certificates, not host names: the address a peer is configured
    # with may be an IP or a load balancer.
    context.check_hostname = False
    _tls13_with(context, identity)
    context.verify_mode = ssl.CERT_REQUIRED
    add_pins(context, pins.values())
    return context


def pairing_context() -> ssl.SSLContext:
    """For pairing only: no certificate of ours, any certificate of the server's (pairing
    proves the server by the secret and binds the certificate it presented)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def add_pins(context: ssl.SSLContext, pems) -> None:
    """Trust these certificates from now on (new handshakes of a running server or client
    too). Each pinned certificate is its own trust anchor: no chain, no CA."""
    pems = "".join(pems)
    if pems:
        context.load_verify_locations(cadata=pems)


def _tls13_with(context: ssl.SSLContext, identity: NodeIdentity) -> None:
    # A bare SSLContext loads no system CAs: only the pinned certificates are trusted, each
    # as an anchor by itself (partial chain).
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
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


# -- failures in words ------------------------------------------------------------------

# OpenSSL verify codes for a certificate that is not pinned here: its issuer is unknown
# (2, 20, 21), its chain ends in a root not trusted (19), it signed itself (18); or the
# clocks disagree (9, 10).
_UNPINNED_CODES = {2, 18, 19, 20, 21}
_CLOCK_CODES = {9, 10}
# Alerts OpenSSL sends when it refuses a certificate for those same reasons.
_UNPINNED_ALERTS = {"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE",
                    "TLSV13_ALERT_CERTIFICATE_REQUIRED"}
_CLOCK_ALERTS = {"SSLV3_ALERT_CERTIFICATE_EXPIRED"}
_OLD_TLS = {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"}
_NOT_TLS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
            "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}


def not_paired(exc: BaseException) -> bool:
    """Did the TLS handshake fail because one side has not pinned the other's certificate
    (never paired, or a peer made a new key)? Pairing again may then help."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_code in _UNPINNED_CODES
    return isinstance(exc, ssl.SSLError) and (exc.reason or "") in _UNPINNED_ALERTS


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
    if exc.verify_code in _UNPINNED_CODES:
        return (f"the peer's certificate is not one this system paired with "
                f"({exc.verify_message})")
    if exc.verify_code in _CLOCK_CODES:
        return (f"the peer's certificate is not valid at this system's time: check both "
                f"clocks ({exc.verify_message})")
    return f"the peer's certificate was refused: {exc.verify_message}"


def _describe_tls_error(reason: str, exc: ssl.SSLError) -> str:
    alert = "alert " + reason.partition("ALERT_")[2].lower().replace("_", " ")
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE"):
        return (f"the peer refused this system's certificate: it has not paired with this "
                f"system ({alert})")
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

def certificate_pem(certificate: x509.Certificate) -> str:
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
