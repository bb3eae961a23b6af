"""An S/MIME object (a CMS ContentInfo in DER, RFC 5652 3) is opened by its content, under any
name and declared type, by the indexer and the views alike: libmagic cannot tell one
(it answers application/octet-stream), so a signed message inside a zip, a winmail.dat or a
forward, or attached as application/octet-stream (RFC 8551 3.2.1's .p7m), was listed as a
plain file and its files never indexed. Each case is checked both ways: the files inside
are found (by extract(), so `filename:` finds them) and the views list the same files in
the same containers. DER that is not a CMS ContentInfo (a PKCS #12 file, a truncated
header, a file that merely holds the OID) stays a plain file, neither opened nor flagged."""
from __future__ import annotations

import base64

import pytest

from services.archive import cms_der, containers
from services.archive.extract import extract
from tests import reading_corpus as corpus
from tests.unit.web.test_containers_in_containers import container, indexed, listed
from tests.unit.web.test_review_r10 import attached, message, multipart

LEAF = ("inside-signed.txt", b"the signed leaf\r\n")


def signed_data() -> bytes:
    return corpus.smime_signed_data(multipart(
        [b"Content-Type: text/plain\r\n\r\nsigned text\r\n", attached(*LEAF)], "Sx"))


def attached_as(name: str, data: bytes, declared: str) -> bytes:
    return (f'Content-Type: {declared}\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode() \
        + base64.encodebytes(data).replace(b"\n", b"\r\n")


NAMES = ("smime.p7m", "data.bin", "report.pdf")
OUTER = ("zip", "tnef", "eml")


@pytest.mark.parametrize("outer", OUTER)
@pytest.mark.parametrize("name", NAMES)
def test_signed_data_inside_a_container_is_opened(outer, name):
    raw = message("nested", [attached_as("outer.bin", container(outer, [(name, signed_data())],
                                                                 "1"),
                                         "application/octet-stream")])
    found = indexed(raw)
    assert (LEAF[0], name) in found
    assert listed(raw) == found
    [leaf] = [entry for entry in extract(raw, 1 << 20).attachments if entry.filename == LEAF[0]]
    assert "the signed leaf" in leaf.text


@pytest.mark.parametrize("declared", ["application/octet-stream", "application/pdf",
                                      "text/plain"])
@pytest.mark.parametrize("name", NAMES)
def test_signed_data_attached_under_any_type_is_opened(declared, name):
    raw = message("attached", [attached_as(name, signed_data(), declared)])
    found = indexed(raw)
    assert found[0] == (name, None) and (LEAF[0], name) in found
    assert listed(raw) == found
    [entry] = [entry for entry in extract(raw, 1 << 20).attachments if entry.filename == name]
    assert entry.mime_type == "application/pkcs7-mime" and entry.error is None


def test_enveloped_data_in_a_zip_is_said_encrypted(tmp_path):
    envelope = corpus.smime_enveloped_data(b"Content-Type: text/plain\r\n\r\nsecret\r\n",
                                           tmp_path)
    raw = message("sealed", [attached_as("sealed.zip", corpus.zip_archive(
        [("sealed.bin", envelope)]), "application/zip")])
    [entry] = [entry for entry in extract(raw, 1 << 20).attachments
               if entry.filename == "sealed.bin"]
    assert entry.encrypted and entry.error == "encrypted: S/MIME enveloped-data"
    assert listed(raw) == indexed(raw)


def _der(content: bytes) -> bytes:
    return b"\x30\x82" + len(content).to_bytes(2, "big") + content


NOT_CMS = {
    # PKCS #12 (RFC 7292 4): a version first, then a ContentInfo of type data.
    "pkcs12": _der(b"\x02\x01\x03" + _der(containers.CMS_OID_PREFIX + b"\x01" + b"\x00" * 40)),
    # A ContentInfo of type data (1.2.840.113549.1.7.1): nothing to open.
    "data-content": _der(containers.CMS_OID_PREFIX + b"\x01" + b"\x00" * 40),
    # A signed-data OID deeper than the first element.
    "oid-inside": _der(b"\x04\x02ab" + containers.CMS_OID_PREFIX + b"\x02" + b"\x00" * 40),
    "cut-in-the-oid": (b"\x30\x82\x03\x37" + containers.CMS_OID_PREFIX)[:10],
    "long-length-of-9": b"\x30\x89" + b"\x00" * 9 + containers.CMS_OID_PREFIX + b"\x02",
    "empty": b"",
    "one-byte": b"\x30",
}


@pytest.mark.parametrize("kind", NOT_CMS)
def test_der_that_is_no_cms_object_stays_a_plain_file(kind):
    data = NOT_CMS[kind]
    assert not containers.is_cms(data)
    raw = message("plain", [attached_as("keys.bin", data, "application/octet-stream")])
    [entry] = extract(raw, 1 << 20).attachments
    assert entry.mime_type != "application/pkcs7-mime"
    assert not entry.encrypted and entry.error is None
    assert listed(raw) == indexed(raw)


@pytest.mark.parametrize("cut", [5, 12, 13, 40, 200])
def test_a_cut_signed_data_is_a_damaged_container_not_hidden(cut):
    """Cut after its content type, it is S/MIME still, and its damage is said."""
    data = signed_data()[:cut]
    raw = message("cut", [attached_as("smime.p7m", data, "application/octet-stream")])
    [entry, *_] = extract(raw, 1 << 20).attachments
    if containers.is_cms(data):
        assert entry.mime_type == "application/pkcs7-mime" and entry.error
    else:
        assert entry.mime_type != "application/pkcs7-mime" and not entry.encrypted
    assert listed(raw) == indexed(raw)


# --- what signed-data carries (services.archive.cms_der), review r13 F1 -------------------

def _openssl_signed(tmp_path, *options: str) -> bytes:
    """Signed-data made by openssl cms -sign (`-stream`: BER, indefinite lengths, the
    entity inside; `-nodetach`: the entity inside; neither: detached), DER out."""
    import subprocess
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(corpus.certificate_for(key, "s@example.com")
                                        .public_bytes(serialization.Encoding.PEM))
    entity = multipart([b"Content-Type: text/plain\r\n\r\nsigned text\r\n", attached(*LEAF)],
                       "So")
    return subprocess.run(["openssl", "cms", "-sign", "-binary", "-outform", "DER", *options,
                           "-signer", str(tmp_path / "cert.pem"), "-inkey",
                           str(tmp_path / "key.pem")], input=entity, capture_output=True,
                          check=True).stdout


@pytest.mark.parametrize("options, opened", [
    (("-nodetach",), True), (("-nodetach", "-stream"), True), (("-stream",), True),
    ((), False)],
    ids=["opaque-der", "opaque-ber-streamed", "streamed-ber-embeds", "detached-der"])
def test_signed_data_is_opened_only_when_it_carries_its_entity(tmp_path, options, opened):
    data = _openssl_signed(tmp_path, *options)
    assert cms_der.carries_content(data) is opened and containers.is_cms(data) is opened
    raw = message("signed", [attached_as("smime.p7m", data, "application/octet-stream")])
    found = indexed(raw)
    assert ((LEAF[0], "smime.p7m") in found) is opened
    assert listed(raw) == found
    assert not any(entry.error or entry.encrypted for entry in extract(raw, 1 << 20).attachments)


@pytest.mark.parametrize("options", [("-nodetach",), ("-nodetach", "-stream"), (), ("-stream",)])
def test_every_cut_of_signed_data_is_told_or_left_open(tmp_path, options):
    """Cut anywhere, the walk never raises and never says the opposite of the whole: None
    (cannot tell, opened as S/MIME and its damage said) or the whole object's answer."""
    data = _openssl_signed(tmp_path, *options)
    whole = cms_der.carries_content(data)
    for cut in range(len(data)):
        assert cms_der.carries_content(data[:cut]) in (None, whole), cut


def test_pem_signed_data_is_read_as_der_is(tmp_path):
    """Review r13 F4: PEM without an smime-type parameter is signed-data by its content."""
    import base64 as b64
    der = _openssl_signed(tmp_path, "-nodetach")
    pem = b"-----BEGIN PKCS7-----\n" + b64.encodebytes(der) + b"-----END PKCS7-----\n"
    assert containers.cms_kind(pem, None) == "signed-data" and cms_der.carries_content(
        cms_der.der_of(pem))
    raw = message("pem", [attached_as("smime.p7m", pem, "application/pkcs7-mime")])
    assert (LEAF[0], "smime.p7m") in indexed(raw) and listed(raw) == indexed(raw)
