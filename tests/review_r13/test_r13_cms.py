"""Review r13 of "an S/MIME object is opened by its content" (adcb0dc): reproducers, each
asserting the promised behaviour, so a failing one shows a finding. Generated over a small
corpus of its kind (keys, entities, names, declared types, holders); counted, never timed.

F1  (high, regression of adcb0dc) a CMS signed-data with no content to open -- the
    detached signature of every multipart/signed message (RFC 8551 3.5: smime.p7s,
    application/pkcs7-signature) and a certs-only bundle (RFC 8551 3.7: .p7c) -- is now
    read as application/pkcs7-mime, openssl is run on it (twice: DER, PEM) and fails, and
    every view and `show` call it unreadable: "ToolFailed: openssl failed (exit code 2):
    ...PEM routines:get_name:no start line...". Before adcb0dc: a plain file, no error.
F3  (low, before adcb0dc too) DER that is no CMS ContentInfo (PKCS #12, a data
    ContentInfo, a cut header, an empty file) declared application/pkcs7-mime is flagged
    "encrypted: S/MIME unknown CMS content": the claim says neither opened nor flagged.
F4  (low) PEM signed-data declared application/pkcs7-mime without smime-type is flagged
    "encrypted: S/MIME unknown CMS content" (cms_kind reads DER only), though openssl
    (containers._unwrap_signed tries PEM) opens it when smime-type says signed-data.
"""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from services.archive.extract import extract
from services.web import mail_view
from tests import reading_corpus as corpus
from tests.unit.web.test_cms_by_content import NOT_CMS
from tests.unit.web.test_containers_in_containers import container, indexed
from tests.unit.web.test_review_r10 import HEAD, message, multipart

CAP = 1 << 20


def attached_as(name: str, data: bytes, declared: str) -> bytes:
    return (f'Content-Type: {declared}\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode() \
        + base64.encodebytes(data).replace(b"\n", b"\r\n")


def entity(tag: str) -> bytes:
    return multipart([f"Content-Type: text/plain\r\n\r\nsigned text {tag}\r\n".encode()],
                     "S" + tag)


KEYS = {"ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "rsa": lambda: rsa.generate_private_key(65537, 2048)}


def detached_signature(key_kind: str, tag: str) -> bytes:
    """smime.p7s of a multipart/signed message: signed-data with no eContent (RFC 5652 5.2)."""
    key = KEYS[key_kind]()
    return (pkcs7.PKCS7SignatureBuilder().set_data(entity(tag))
            .add_signer(corpus.certificate_for(key, f"{tag}@example.com"), key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                               pkcs7.PKCS7Options.Binary]))


def certs_only(key_kind: str, tag: str) -> bytes:
    """A degenerate signed-data carrying certificates alone (RFC 8551 3.7, .p7c)."""
    key = KEYS[key_kind]()
    return pkcs7.serialize_certificates([corpus.certificate_for(key, f"{tag}@example.com")],
                                        serialization.Encoding.DER)


def multipart_signed(tag: str, signature: bytes) -> bytes:
    """An RFC 8551 3.5 multipart/signed message, as every S/MIME mailer sends one."""
    return HEAD.format(s=tag).encode() \
        + (f'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
           f'micalg=sha-256; boundary="G{tag}"\r\n\r\n--G{tag}\r\n').encode() + entity(tag) \
        + f"\r\n--G{tag}\r\n".encode() \
        + attached_as("smime.p7s", signature, "application/pkcs7-signature") \
        + f"--G{tag}--\r\n".encode()


def _problems(raw: bytes) -> list[str]:
    """Every error or container problem the indexer and the API say of the message's files."""
    found = [f"{entry.filename}: {entry.error}" for entry in extract(raw, CAP).attachments
             if entry.error or entry.encrypted]

    def walk(files):
        for file in files:
            if file.get("container_problem"):
                found.append(f"{file['filename']}: {file['container_problem']}")
            walk(file.get("files", []))
    walk(mail_view.view(raw).as_json()["attachments"])
    return found


SIGNATURE_CASES = [(kind, holder) for kind in KEYS
                   for holder in ("multipart/signed", "octet-stream", "pkcs7-signature", "zip",
                                  "eml")]


def _held(signature: bytes, holder: str, tag: str) -> bytes:
    if holder == "multipart/signed":
        return multipart_signed(tag, signature)
    if holder in ("zip", "eml"):
        return message(tag, [attached_as("saved." + holder, container(
            holder, [("smime.p7s", signature)], tag), "application/octet-stream")])
    declared = {"octet-stream": "application/octet-stream",
                "pkcs7-signature": "application/pkcs7-signature"}[holder]
    return message(tag, [attached_as("smime.p7s", signature, declared)])


@pytest.mark.parametrize("key_kind, holder", SIGNATURE_CASES)
def test_f1_a_detached_signature_is_no_unreadable_container(key_kind, holder):
    raw = _held(detached_signature(key_kind, holder.replace("/", "")), holder, "t")
    assert _problems(raw) == []


@pytest.mark.parametrize("name, declared", [("certs.p7c", "application/octet-stream"),
                                            ("keys.bin", "application/octet-stream"),
                                            ("certs.p7c", "application/pkcs7-mime; "
                                                          "smime-type=certs-only")])
@pytest.mark.parametrize("key_kind", KEYS)
def test_f1_a_certs_only_bundle_is_no_unreadable_or_encrypted_container(key_kind, name,
                                                                         declared):
    raw = message("c", [attached_as(name, certs_only(key_kind, "c"), declared)])
    assert _problems(raw) == []


@pytest.mark.parametrize("kind", NOT_CMS)
@pytest.mark.parametrize("name", ["smime.p7m", "keys.bin"])
def test_f3_no_cms_declared_pkcs7_mime_is_not_flagged_encrypted(kind, name):
    raw = message("p", [attached_as(name, NOT_CMS[kind], "application/pkcs7-mime")])
    [entry] = extract(raw, CAP).attachments
    assert not entry.encrypted, entry.error


@pytest.mark.parametrize("key_kind", KEYS)
def test_f4_pem_signed_data_declared_pkcs7_mime_is_opened(key_kind, tmp_path):
    key = KEYS[key_kind]()
    pem = (pkcs7.PKCS7SignatureBuilder().set_data(entity("pem"))
           .add_signer(corpus.certificate_for(key, "p@example.com"), key, hashes.SHA256())
           .sign(serialization.Encoding.PEM, [pkcs7.PKCS7Options.Binary]))
    raw = message("pem", [attached_as("smime.p7m", pem, "application/pkcs7-mime")])
    entries = extract(raw, CAP).attachments
    assert not entries[0].encrypted, entries[0].error
    assert "signed text pem" in extract(raw, CAP).body + "".join(e.text for e in entries)
    assert len(indexed(raw)) >= 1
