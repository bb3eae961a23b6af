"""Review r14: the S/MIME reading rule says an S/MIME object is opened by its content, under
any name and declared type. The smime-type parameter (RFC 8551 3.2.2) is a declaration too,
yet containers.cms_kind takes it over the DER's own content type: an opaque signature
labelled otherwise is never opened, a detached one or a clear one is called encrypted, an
envelope labelled signed-data or certs-only is not flagged encrypted. And compressed-data
(RFC 3274, a CMS content type S/MIME names) is called 'not a CMS object' or 'encrypted'."""
from __future__ import annotations

import zlib

import pytest

from services.archive.extract import extract
from tests import reading_corpus as corpus
from tests.unit.web.test_cms_by_content import LEAF, _openssl_signed
from tests.unit.web.test_containers_in_containers import indexed, listed
from tests.unit.web.test_review_r10 import message

SMIME_TYPES = ("signed-data", "enveloped-data", "certs-only", "compressed-data",
               "authEnveloped-data", "x-unknown")


def _labelled(data: bytes, smime_type: str) -> bytes:
    import base64
    head = (f'Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=smime.p7m'
            '\r\nContent-Disposition: attachment; filename="smime.p7m"\r\n'
            'Content-Transfer-Encoding: base64\r\n\r\n').encode()
    return message("labelled", [head + base64.encodebytes(data).replace(b"\n", b"\r\n")])


def _entry(raw: bytes):
    [entry] = [e for e in extract(raw, 1 << 20).attachments if e.filename == "smime.p7m"]
    return entry


@pytest.mark.parametrize("smime_type", SMIME_TYPES)
def test_an_opaque_signature_is_opened_whatever_its_smime_type_says(tmp_path, smime_type):
    raw = _labelled(_openssl_signed(tmp_path, "-nodetach"), smime_type)
    entry = _entry(raw)
    assert not entry.encrypted and entry.error is None
    assert (LEAF[0], "smime.p7m") in indexed(raw)
    assert listed(raw) == indexed(raw)


@pytest.mark.parametrize("smime_type", SMIME_TYPES)
def test_a_detached_signature_is_a_plain_file_whatever_its_smime_type_says(tmp_path,
                                                                           smime_type):
    raw = _labelled(_openssl_signed(tmp_path), smime_type)
    entry = _entry(raw)
    assert not entry.encrypted and entry.error is None
    assert listed(raw) == indexed(raw) == [("smime.p7m", None)]


@pytest.mark.parametrize("smime_type", SMIME_TYPES)
def test_enveloped_data_is_encrypted_whatever_its_smime_type_says(tmp_path, smime_type):
    envelope = corpus.smime_enveloped_data(b"Content-Type: text/plain\r\n\r\nsecret\r\n",
                                           tmp_path)
    entry = _entry(_labelled(envelope, smime_type))
    assert entry.encrypted and (entry.error or "").startswith("encrypted: ")


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def compressed_data(entity: bytes) -> bytes:
    """CMS compressed-data (RFC 3274 1.1): id-ct-compressedData, CompressedData { version 0,
    zlib (id-alg-zlibCompress), encapContentInfo { id-data, [0] OCTET STRING } }."""
    oid = lambda dotted_der: _tlv(0x06, bytes.fromhex(dotted_der))  # noqa: E731
    encap = _tlv(0x30, oid("2a864886f70d010701") + _tlv(0xA0, _tlv(0x04, zlib.compress(entity))))
    inner = _tlv(0x30, _tlv(0x02, b"\x00") + _tlv(0x30, oid("2a864886f70d0109100308")) + encap)
    return _tlv(0x30, oid("2a864886f70d0109100109") + _tlv(0xA0, inner))


@pytest.mark.parametrize("smime_type", [None, "compressed-data"])
def test_compressed_data_is_neither_encrypted_nor_said_not_cms(smime_type):
    data = compressed_data(b"Content-Type: text/plain\r\n\r\nsqueezed\r\n")
    import base64
    param = f"; smime-type={smime_type}" if smime_type else ""
    raw = message("compressed", [(
        f'Content-Type: application/pkcs7-mime{param}\r\nContent-Disposition: attachment; '
        'filename="smime.p7z"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode()
        + base64.encodebytes(data).replace(b"\n", b"\r\n")])
    [entry] = extract(raw, 1 << 20).attachments
    assert not entry.encrypted
    assert "not a CMS object" not in (entry.error or "")
