"""Mirror trust over real sockets on 127.0.0.1: who gets through the TLS 1.3 handshake, who
does not, and what status says about it."""
from __future__ import annotations

import asyncio
import datetime
import functools
import os
import socket
import ssl
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.errors import ArchiverError
from services.mirror.trust import (CERTIFICATE_FILE, KEY_FILE, SecretTooShort, client_context,
                                   derive_ca, describe_tls_failure, issue_node_certificate,
                                   load_or_create_identity, peer_node_id, server_context)

pytestmark = pytest.mark.timeout(60)   # a handshake that hangs fails instead

SECRET = "correct horse battery staple"
OTHER_SECRET = "another secret, just as long"
TIMEOUT = 5


@functools.cache
def ca_of(secret: str):
    """scrypt costs ~0.2 s: derive each secret's CA once per module."""
    return derive_ca(secret)


def node(node_id: str, secret: str = SECRET):
    return issue_node_certificate(ca_of(secret), node_id)


def server_of(node_id: str, secret: str = SECRET) -> ssl.SSLContext:
    return server_context(ca_of(secret), node(node_id, secret))


def client_of(node_id: str, secret: str = SECRET) -> ssl.SSLContext:
    return client_context(ca_of(secret), node(node_id, secret))


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
                side.peer, side.version = peer_node_id(connection), connection.version()
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


# -- peers with the same secret ---------------------------------------------------------

@pytest.mark.parametrize("serving, connecting", [("node-a", "node-b"), ("node-b", "node-a")])
def test_same_secret_handshakes_and_each_side_sees_the_other_node_id(serving, connecting):
    server, client = exchange(server_of(serving), client_of(connecting))
    assert server.error is None and client.error is None, (server, client)
    assert (server.peer, client.peer) == (connecting, serving)
    assert server.version == client.version == "TLSv1.3"
    assert server.received == client.received == b"hello"


def test_asyncio_streams_name_the_peer_too():
    async def main():
        seen = {}

        async def handle(reader, writer):
            seen["server"] = peer_node_id(writer.get_extra_info("ssl_object"))
            writer.write(b"hello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_of("node-a"))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_of("node-b"))
        seen["client"] = peer_node_id(writer.get_extra_info("ssl_object"))
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        server.close()
        await server.wait_closed()
        return seen

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == {"server": "node-b",
                                                              "client": "node-a"}


def test_contexts_speak_tls13_only_and_trust_only_the_mirror_ca():
    for context in (server_of("node-a"), client_of("node-b")):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert context.verify_mode == ssl.CERT_REQUIRED
        [trusted] = context.get_ca_certs()      # no system CAs
        assert trusted["subject"] == ((("commonName",
                                        f"archiver mirror CA {ca_of(SECRET).fingerprint}"),),)
    assert client_of("node-b").check_hostname is False


def test_certificates_pass_openssl_strict_checks():
    server, client = server_of("node-a"), client_of("node-b")
    for context in (server, client):
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    server_side, client_side = exchange(server, client)
    assert server_side.error is None and client_side.error is None, (server_side, client_side)


# -- the CA and the node certificates ---------------------------------------------------

def test_derive_ca_is_deterministic_and_differs_per_secret():
    again = derive_ca(SECRET)
    assert again.certificate_pem == ca_of(SECRET).certificate_pem
    assert again.fingerprint == ca_of(SECRET).fingerprint and len(again.fingerprint) == 16
    other = ca_of(OTHER_SECRET)
    assert other.certificate_pem != again.certificate_pem
    assert other.fingerprint != again.fingerprint
    assert other.certificate.subject != again.certificate.subject
    assert again.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert again.certificate.extensions.get_extension_for_class(
        x509.KeyUsage).value.key_cert_sign


def test_node_certificate_is_a_ca_signed_leaf_for_server_and_client():
    ca = ca_of(SECRET)
    certificate = node("node-a").certificate
    extensions = certificate.extensions
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-a"
    assert certificate.issuer == ca.certificate.subject
    ca.key.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes)
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["node-a"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert certificate.not_valid_before < now - datetime.timedelta(hours=23)
    assert certificate.not_valid_after > now + datetime.timedelta(days=19 * 365)


@pytest.mark.parametrize("secret", ["", "fifteen chars!!", "ünïcödé 15 chr"])
def test_a_short_secret_is_refused_without_echoing_it(secret):
    with pytest.raises(SecretTooShort) as refused:
        derive_ca(secret)
    assert isinstance(refused.value, ArchiverError)
    message = str(refused.value)
    assert "16 characters" in message and f"has {len(secret)}" in message
    assert not secret or secret not in message


# -- strangers are refused --------------------------------------------------------------

def test_a_wrong_secret_fails_on_both_sides_and_says_the_secrets_differ():
    server, client = exchange(server_of("node-a"), client_of("node-x", OTHER_SECRET))
    assert server.error and client.error, (server, client)
    assert client.peer is None and server.peer is None
    assert client.received is None and server.received is None    # not a byte got through
    assert describe_tls_failure(client.error).startswith(
        "the peer's certificate is not from this secret's mirror CA: the secrets differ")
    assert describe_tls_failure(server.error) == \
        "the peer refused this system's certificate: the secrets differ (alert unknown ca)"


def test_a_client_certificate_from_another_secrets_ca_is_refused_by_the_server():
    # Trusts our CA (so it accepts our server) but holds a certificate from another CA.
    intruder = client_context(ca_of(SECRET), node("node-x", OTHER_SECRET))
    server, client = exchange(server_of("node-a"), intruder)
    assert server.error and server.peer is None
    assert "the secrets differ" in describe_tls_failure(server.error)
    assert client.error, "the refusal reaches the client on its first read"
    assert client.received is None
    assert describe_tls_failure(client.error) == \
        "the peer refused this system's certificate: the secrets differ (alert unknown ca)"


def test_a_server_certificate_from_another_secrets_ca_is_refused_by_the_client():
    impostor = server_context(ca_of(SECRET), node("node-x", OTHER_SECRET))
    server, client = exchange(impostor, client_of("node-b"))
    assert client.error and client.peer is None
    assert "the secrets differ" in describe_tls_failure(client.error)
    assert server.error


def test_a_self_signed_listener_is_refused(tmp_path):
    listener = plain_tls(ssl.PROTOCOL_TLS_SERVER, self_signed_pem(tmp_path))
    server, client = exchange(listener, client_of("node-b"))
    assert client.error and client.peer is None
    assert describe_tls_failure(client.error).startswith(
        "the peer's certificate is not from this secret's mirror CA: it is no mirror peer")
    assert server.error, "the listener never gets the client's data"


def test_a_client_without_a_certificate_is_refused():
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=ca_of(SECRET).certificate_pem)
    server, client = exchange(server_of("node-a"), anonymous)
    assert describe_tls_failure(server.error) == \
        "the peer presented no certificate: it is no mirror peer"
    assert describe_tls_failure(client.error) == \
        "the peer wants a certificate this system did not present"


def test_a_tls12_only_listener_is_refused(tmp_path):
    old = plain_tls(ssl.PROTOCOL_TLS_SERVER, self_signed_pem(tmp_path), ssl.TLSVersion.TLSv1_2)
    server, client = exchange(old, client_of("node-b"))
    assert describe_tls_failure(client.error) == \
        "the peer does not speak TLS 1.3: it is no mirror peer"
    assert server.error


def test_a_tls12_only_client_is_refused(tmp_path):
    old = plain_tls(ssl.PROTOCOL_TLS_CLIENT, self_signed_pem(tmp_path), ssl.TLSVersion.TLSv1_2)
    server, client = exchange(server_of("node-a"), old)
    assert describe_tls_failure(server.error) == \
        "the peer does not speak TLS 1.3: it is no mirror peer"
    assert client.error


def test_a_listener_without_tls_is_named_as_such():
    server, client = exchange(None, client_of("node-b"))
    assert describe_tls_failure(client.error).startswith("the peer does not speak TLS:")


def test_unreachable_peers_pass_through_as_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as closing:
        address = closing.getsockname()
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(address, timeout=TIMEOUT)
    assert describe_tls_failure(refused.value) == "unreachable: Connection refused"
    assert describe_tls_failure(TimeoutError("timed out")) == "unreachable: no answer in time"


@pytest.mark.parametrize("code, message, words", [
    (10, "certificate has expired", "check both clocks"),
    (9, "certificate is not yet valid", "check both clocks"),
    (20, "unable to get local issuer certificate", "the secrets differ"),
])
def test_certificate_verify_codes_in_words(code, message, words):
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    described = describe_tls_failure(error)
    assert words in described and message in described


# -- the identity on disk ---------------------------------------------------------------

def test_identity_keeps_its_key_and_is_reissued_when_the_secret_changes(tmp_path):
    directory = tmp_path / "mirror"
    first = load_or_create_identity(directory, SECRET, "node-a")
    assert stat.S_IMODE((directory / KEY_FILE).stat().st_mode) == 0o600
    assert sorted(os.listdir(directory)) == sorted([KEY_FILE, CERTIFICATE_FILE])

    again = load_or_create_identity(directory, SECRET, "node-a")
    assert again.key_pem == first.key_pem
    assert again.certificate_pem == first.certificate_pem      # nothing to re-issue

    rekeyed = load_or_create_identity(directory, OTHER_SECRET, "node-a")
    assert rekeyed.key_pem == first.key_pem
    assert rekeyed.certificate.issuer == ca_of(OTHER_SECRET).certificate.subject
    assert (directory / CERTIFICATE_FILE).read_text() == rekeyed.certificate_pem

    server, client = exchange(server_of("node-b", OTHER_SECRET),
                              client_context(ca_of(OTHER_SECRET), rekeyed))
    assert server.error is None and client.error is None and server.peer == "node-a"


def test_identity_is_reissued_for_a_new_node_id_and_survives_a_damaged_certificate(tmp_path):
    first = load_or_create_identity(tmp_path, SECRET, "node-a")
    renamed = load_or_create_identity(tmp_path, SECRET, "node-c")
    assert renamed.key_pem == first.key_pem
    assert renamed.certificate.subject.rfc4514_string() == "CN=node-c"
    (tmp_path / CERTIFICATE_FILE).write_text("not a certificate")
    repaired = load_or_create_identity(tmp_path, SECRET, "node-c")
    assert repaired.key_pem == first.key_pem
    assert repaired.certificate.subject.rfc4514_string() == "CN=node-c"
