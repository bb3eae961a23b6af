"""Mirror trust over real sockets on 127.0.0.1: self-signed node certificates, pinned; who
gets through the TLS 1.3 handshake, who does not, what status says about it, and what a
stranger on the mirror port can learn about the secret (nothing it can test a guess with)."""
from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import os
import socket
import ssl
import stat
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.mirror.trust import (CERTIFICATE_FILE, KEY_FILE, NodeIdentity, client_context,
                                   describe_tls_failure, load_or_create_identity, not_paired,
                                   pairing_context, proven_node_id, self_signed_certificate,
                                   server_context)

pytestmark = pytest.mark.timeout(60)   # a handshake that hangs fails instead

SECRET = "tulip-gravel-mosaic-ninja-orbit-fjord"
TIMEOUT = 5


@functools.cache
def node(node_id: str) -> NodeIdentity:
    """One identity per node id and module (like a node's key on disk)."""
    key = Ed25519PrivateKey.generate()
    return NodeIdentity(node_id, key, self_signed_certificate(node_id, key))


def pins(*node_ids: str) -> dict[str, str]:
    return {n: node(n).certificate_pem for n in node_ids}


def server_of(node_id: str, *pinned: str) -> ssl.SSLContext:
    return server_context(node(node_id), pins(*pinned))


def client_of(node_id: str, *pinned: str) -> ssl.SSLContext:
    return client_context(node(node_id), pins(*pinned))


# -- one exchange over loopback ---------------------------------------------------------

@dataclass
class Side:
    peer: str | None = None
    version: str | None = None
    received: bytes | None = None
    error: BaseException | None = None


def exchange(server: ssl.SSLContext | None, client: ssl.SSLContext | None) -> tuple[Side, Side]:
    """Handshake, then the server speaks first and the client answers (a context of None
    speaks plain TCP). The client reads before it writes: in TLS 1.3 a server's refusal of
    the client's certificate arrives on that first read."""
    server_side, client_side = Side(), Side()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve():
            try:
                connection, _ = listener.accept()
            except OSError as error:
                server_side.error = error
                return
            connection.settimeout(TIMEOUT)
            talk(connection, server, server_side, server_side=True)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
            talk(raw, client, client_side, server_side=False)
        finally:
            thread.join()
    return server_side, client_side


def talk(raw: socket.socket, context, side: Side, server_side: bool) -> None:
    with raw:
        try:
            if context is None:
                connection = raw
            else:
                connection = context.wrap_socket(raw, server_side=server_side)
                side.peer = proven_node_id(connection, pins(*KNOWN))
                side.version = connection.version()
            if server_side:
                connection.sendall(b"hello")
                side.received = connection.recv(5)
            else:
                side.received = connection.recv(5)
                connection.sendall(b"hello")
        except (OSError, ssl.SSLError) as error:
            side.error = error


def self_signed_pem(directory: Path, name: str = "impostor") -> str:
    """A certificate and key PEM file that no mirror CA signed."""
    key = Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30)).sign(key, None))
    path = directory / f"{name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(path)


def plain_tls(purpose: int, certificate_file: str | None = None,
              maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    """A TLS endpoint that checks nothing: a stranger on the mirror port."""
    context = ssl.SSLContext(purpose)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = maximum
    if certificate_file:
        context.load_cert_chain(certificate_file)
    return context


KNOWN = ("node-a", "node-b", "node-x")


# -- paired peers -----------------------------------------------------------------------

@pytest.mark.parametrize("serving, connecting", [("node-a", "node-b"), ("node-b", "node-a")])
def test_paired_peers_handshake_and_each_side_proves_the_other_node_id(serving, connecting):
    server, client = exchange(server_of(serving, connecting), client_of(connecting, serving))
    assert server.error is None and client.error is None, (server, client)
    assert (server.peer, client.peer) == (connecting, serving)
    assert server.version == client.version == "TLSv1.3"
    assert server.received == client.received == b"hello"


def test_asyncio_streams_prove_the_peer_too():
    async def main():
        seen = {}

        async def handle(reader, writer):
            seen["server"] = proven_node_id(writer.get_extra_info("ssl_object"),
                                            pins("node-b"))
            writer.write(b"hello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                            ssl=server_of("node-a", "node-b"))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       ssl=client_of("node-b", "node-a"))
        seen["client"] = proven_node_id(writer.get_extra_info("ssl_object"), pins("node-a"))
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        server.close()
        await server.wait_closed()
        return seen

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == {"server": "node-b",
                                                              "client": "node-a"}


def test_contexts_speak_tls13_only_and_trust_only_the_pinned_certificates():
    server, client = server_of("node-a", "node-b"), client_of("node-b", "node-a")
    for context in (server, client):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_3
        # no system CAs and no CA at all: the one pinned certificate
        assert context.cert_store_stats() == {"x509": 1, "crl": 0, "x509_ca": 0}
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname is False
    # A client without a certificate gets through the server's handshake, to pair only.
    assert server.verify_mode == ssl.CERT_OPTIONAL
    assert server_of("node-a").cert_store_stats()["x509"] == 0


def test_certificates_pass_openssl_strict_checks():
    server, client = server_of("node-a", "node-b"), client_of("node-b", "node-a")
    for context in (server, client):
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    server_side, client_side = exchange(server, client)
    assert server_side.error is None and client_side.error is None, (server_side, client_side)


def test_the_node_id_is_the_one_the_pin_is_kept_under_not_the_certificate_name():
    # node-x's certificate pinned as node-b: a connection presenting it is node-b's.
    served = {}

    async def main():
        async def handle(reader, writer):
            served["as"] = proven_node_id(writer.get_extra_info("ssl_object"),
                                          {"node-b": node("node-x").certificate_pem})
            writer.close()
        server = await asyncio.start_server(
            handle, "127.0.0.1", 0,
            ssl=server_context(node("node-a"), {"node-b": node("node-x").certificate_pem}))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       ssl=client_of("node-x", "node-a"))
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert served == {"as": "node-b"}
    assert proven_node_id(None, pins("node-a")) is None


def test_node_certificate_is_a_self_signed_leaf_for_server_and_client():
    certificate = node("node-a").certificate
    extensions = certificate.extensions
    assert certificate.subject.rfc4514_string() == "CN=node-a"
    assert certificate.issuer == certificate.subject
    certificate.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes)
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert certificate.not_valid_before < now - datetime.timedelta(hours=23)
    assert certificate.not_valid_after > now + datetime.timedelta(days=19 * 365)


# -- strangers are refused --------------------------------------------------------------

def test_a_client_the_server_has_not_paired_with_is_refused():
    server, client = exchange(server_of("node-a", "node-b"), client_of("node-x", "node-a"))
    assert server.error and server.peer is None
    assert client.error, "the refusal reaches the client on its first read"
    assert client.received is None and server.received is None   # not a byte got through
    assert not_paired(client.error) and not_paired(server.error)
    assert describe_tls_failure(client.error) == (
        "the peer refused this system's certificate: it has not paired with this system "
        "(alert unknown ca)")
    assert "not one this system paired with" in describe_tls_failure(server.error)


def test_a_server_the_client_has_not_paired_with_is_refused():
    server, client = exchange(server_of("node-x", "node-b"), client_of("node-b", "node-a"))
    assert client.error and client.peer is None and client.received is None
    assert not_paired(client.error)
    assert describe_tls_failure(client.error).startswith(
        "the peer's certificate is not one this system paired with")
    assert server.error


def test_a_self_signed_listener_is_refused(tmp_path):
    listener = plain_tls(ssl.PROTOCOL_TLS_SERVER, self_signed_pem(tmp_path))
    server, client = exchange(listener, client_of("node-b", "node-a"))
    assert client.error and client.peer is None and not_paired(client.error)
    assert describe_tls_failure(client.error).startswith(
        "the peer's certificate is not one this system paired with")
    assert server.error, "the listener never gets the client's data"


def test_a_client_without_a_certificate_gets_through_tls_but_proves_no_node():
    server, client = exchange(server_of("node-a", "node-b"), pairing_context())
    assert server.error is None and client.error is None
    assert server.peer is None      # the mirror server then lets it pair, nothing else


def test_a_tls12_only_listener_is_refused(tmp_path):
    old = plain_tls(ssl.PROTOCOL_TLS_SERVER, self_signed_pem(tmp_path), ssl.TLSVersion.TLSv1_2)
    server, client = exchange(old, client_of("node-b", "node-a"))
    assert describe_tls_failure(client.error) == \
        "the peer does not speak TLS 1.3: it is no mirror peer"
    assert not not_paired(client.error)
    assert server.error


def test_a_tls12_only_client_is_refused(tmp_path):
    old = plain_tls(ssl.PROTOCOL_TLS_CLIENT, self_signed_pem(tmp_path), ssl.TLSVersion.TLSv1_2)
    server, client = exchange(server_of("node-a", "node-b"), old)
    assert describe_tls_failure(server.error) == \
        "the peer does not speak TLS 1.3: it is no mirror peer"
    assert client.error


def test_a_listener_without_tls_is_named_as_such():
    server, client = exchange(None, client_of("node-b", "node-a"))
    assert describe_tls_failure(client.error).startswith("the peer does not speak TLS:")


def test_unreachable_peers_pass_through_as_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as closing:
        address = closing.getsockname()
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(address, timeout=TIMEOUT)
    assert describe_tls_failure(refused.value) == "unreachable: Connection refused"
    assert describe_tls_failure(TimeoutError("timed out")) == "unreachable: no answer in time"
    assert not not_paired(refused.value)


@pytest.mark.parametrize("code, message, words, pairing_helps", [
    (10, "certificate has expired", "check both clocks", False),
    (9, "certificate is not yet valid", "check both clocks", False),
    (20, "unable to get local issuer certificate", "not one this system paired with", True),
    (18, "self-signed certificate", "not one this system paired with", True),
])
def test_certificate_verify_codes_in_words(code, message, words, pairing_helps):
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    described = describe_tls_failure(error)
    assert words in described and message in described
    assert not_paired(error) is pairing_helps


# -- what a stranger learns on the mirror port ------------------------------------------

def old_secret_derived_ca_key(secret: str) -> Ed25519PrivateKey:
    """The offline attack on the old design: the mirror CA was scrypt(secret) as an Ed25519
    seed, so a served certificate that verified under a guess's CA key confirmed the guess."""
    material = unicodedata.normalize("NFC", secret).encode()
    seed = Scrypt(salt=b"archiver-mirror-ca-v1", length=32, n=2**15, r=8, p=1).derive(material)
    return Ed25519PrivateKey.from_private_bytes(seed)


def served_certificate(server: ssl.SSLContext) -> x509.Certificate:
    """What anyone who connects to the mirror port, with no credentials, is shown."""
    shown = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            connection, _ = listener.accept()
            with connection:
                try:
                    server.wrap_socket(connection, server_side=True).recv(1)
                except (OSError, ssl.SSLError):
                    pass
        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw:
            with pairing_context().wrap_socket(raw) as tls:
                shown["der"] = tls.getpeercert(binary_form=True)
        thread.join()
    return x509.load_der_x509_certificate(shown["der"])


def test_the_served_certificate_does_not_confirm_the_right_secret_offline(tmp_path):
    identity = load_or_create_identity(tmp_path, "node-a")
    certificate = served_certificate(server_context(identity, pins("node-b")))
    assert certificate == identity.certificate
    # The old attack, with the right secret: derive the CA key and check the signature.
    guessed_ca = old_secret_derived_ca_key(SECRET).public_key()
    with pytest.raises(InvalidSignature):
        guessed_ca.verify(certificate.signature, certificate.tbs_certificate_bytes)
    # It signed itself, and nothing in it names or fingerprints a secret-derived key.
    certificate.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes)
    assert certificate.issuer == certificate.subject
    assert certificate.issuer.rfc4514_string() == "CN=node-a"
    raw_guess = guessed_ca.public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    der = certificate.public_bytes(serialization.Encoding.DER)
    for trace in (raw_guess, hashlib.sha256(raw_guess).hexdigest()[:16].encode()):
        assert trace not in der
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


# -- the identity on disk ---------------------------------------------------------------

def test_identity_keeps_its_key_and_certificate(tmp_path):
    directory = tmp_path / "mirror"
    first = load_or_create_identity(directory, "node-a")
    assert stat.S_IMODE((directory / KEY_FILE).stat().st_mode) == 0o600
    assert sorted(os.listdir(directory)) == sorted([KEY_FILE, CERTIFICATE_FILE])
    again = load_or_create_identity(directory, "node-a")
    assert again.key_pem == first.key_pem
    assert again.certificate_pem == first.certificate_pem      # nothing to make anew
    assert (directory / CERTIFICATE_FILE).read_text() == first.certificate_pem


def test_identity_is_made_anew_for_a_new_node_id_and_survives_a_damaged_certificate(tmp_path):
    first = load_or_create_identity(tmp_path, "node-a")
    renamed = load_or_create_identity(tmp_path, "node-c")
    assert renamed.key_pem == first.key_pem
    assert renamed.certificate.subject.rfc4514_string() == "CN=node-c"
    (tmp_path / CERTIFICATE_FILE).write_text("not a certificate")
    repaired = load_or_create_identity(tmp_path, "node-c")
    assert repaired.key_pem == first.key_pem
    assert repaired.certificate.subject.rfc4514_string() == "CN=node-c"
    (tmp_path / KEY_FILE).write_text("not a key")
    rekeyed = load_or_create_identity(tmp_path, "node-c")
    assert rekeyed.key_pem != first.key_pem
    assert rekeyed.certificate.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == \
        rekeyed.key.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw)
