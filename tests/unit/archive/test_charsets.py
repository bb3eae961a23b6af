"""services.archive.charsets and RFC 2047 decoding: labels as mail readers resolve them,
text charsets only, detection for unknown or lying labels, encoded words joined as bytes.

The corpus is generated: every label of the table with a text in its script, every split of
a multibyte character across two encoded words in several charsets and both encodings.
"""
from __future__ import annotations

import base64
import binascii
import sys

import pytest

from services.archive import charsets, mime
from tests.integration.archive.hostile import HOSTILE_LABELS, SURROGATE_TEXTS, surrogate_texts

GERMAN = "Grüße aus Köln, Übersicht über Stückzahlen"
THAI = "รายงาน ยอดขาย ประจำเดือน"
TEXTS = {  # a sentence per script, as a mailer would send it under each label below
    "latin": GERMAN, "thai": THAI, "hebrew": "שלום עולם, דוח מכירות", "korean": "회의 안건 보고서",
    "chinese": "会议的预算案", "japanese": "会議の手続き", "cyrillic": "Отчёт о продажах",
    "greek": "Αναφορά πωλήσεων", "mac": "Grüße aus Köln",
}
# label as sent -> (script, the codec a mail reader decodes it with)
LABELS = {
    "windows-874": ("thai", "cp874"), "tis-620": ("thai", "cp874"), "x-cp874": ("thai", "cp874"),
    "iso-8859-11": ("thai", "cp874"),
    "cp-850": ("latin", "cp850"), "cp_850": ("latin", "cp850"), "ibm850": ("latin", "cp850"),
    "IBM437": ("latin", "cp437"), "windows_1252": ("latin", "cp1252"),
    "win-1252": ("latin", "cp1252"), "latin1": ("latin", "cp1252"),
    "iso-8859-1": ("latin", "cp1252"), "ISO_8859-15": ("latin", "iso8859-15"),
    "x-mac-roman": ("mac", "mac-roman"), "macintosh": ("mac", "mac-roman"),
    "iso-8859-8-i": ("hebrew", "iso8859-8"), "windows-1255": ("hebrew", "cp1255"),
    "ks_c_5601-1987": ("korean", "cp949"), "euc-kr": ("korean", "cp949"),
    "x-gbk": ("chinese", "gb18030"), "gb2312": ("chinese", "gb18030"), "GBK": ("chinese", "gb18030"),
    "x-sjis": ("japanese", "cp932"), "shift_jis": ("japanese", "cp932"),
    "iso-2022-jp": ("japanese", "iso2022_jp"), "euc-jp": ("japanese", "euc_jp"),
    "koi8-r": ("cyrillic", "koi8-r"), "x-mac-cyrillic": ("cyrillic", "mac-cyrillic"),
    "windows-1251": ("cyrillic", "cp1251"), "iso-8859-7": ("greek", "iso8859-7"),
    '"UTF-8"': ("thai", "utf-8"), "utf8": ("korean", "utf-8"), "utf-7": ("latin", "utf-7"),
}
# Codecs Python knows that are no charset: never run on a stranger's bytes.
REFUSED = ["punycode", "idna", "base64", "base_64", "rot13", "rot-13", "zlib", "zip", "uu",
           "hex", "bz2", "quopri", "quoted-printable", "raw-unicode-escape", "unicode_escape",
           "charmap", "undefined", "x-user-defined", "utf-8-but-not", "no-such-charset"]


@pytest.mark.parametrize("label", sorted(LABELS))
def test_labels_resolve_as_mail_readers_do(label):
    script, codec = LABELS[label]
    assert charsets.codec_for(label) == codec
    text = TEXTS[script]
    assert charsets.decode(text.encode(codec), label) == text


@pytest.mark.parametrize("label", REFUSED)
def test_codecs_that_are_no_text_charset_are_refused(label):
    assert charsets.codec_for(label) is None
    # The bytes are read as if unlabelled: here valid UTF-8.
    assert charsets.decode("Köln".encode(), label) == "Köln"


def test_every_accepted_codec_is_a_text_codec_python_knows():
    import codecs
    for name in charsets.TEXT_CODECS | set(charsets.SUPERSETS.values()):
        info = codecs.lookup(name)
        assert info.name == name and info._is_text_encoding


LONG_TEXTS = {  # long enough for detection to be sure
    "cp1251": "Ежемесячный отчёт о продажах: выручка выросла на двенадцать процентов, планы "
              "на следующий квартал утверждены.",
    "koi8-r": "Ежемесячный отчёт о продажах: выручка выросла на двенадцать процентов, планы "
              "на следующий квартал утверждены.",
    "cp1253": "Η αναφορά πωλήσεων του μήνα δείχνει αύξηση των εσόδων κατά δώδεκα τοις εκατό.",
    "cp1250": "Miesięczny raport sprzedaży pokazuje wzrost przychodów o dwanaście procent, "
              "zarząd zatwierdził plan.",
    "cp1252": "Der Monatsbericht über die Verkäufe zeigt, dass die Einnahmen um zwölf Prozent "
              "gestiegen sind. Grüße aus Köln.",
    "shift_jis": "月次売上報告書によると、売上高は十二パーセント増加しました。次の四半期の計画は承認されました。",
    "euc_jp": "月次売上報告書によると、売上高は十二パーセント増加しました。次の四半期の計画は承認されました。",
    "big5": "月度銷售報告顯示，收入增長了百分之十二。下一季度的計劃已獲批准。",
}


@pytest.mark.parametrize("label", ["unknown", "x-no-such-charset", "utf-8", "us-ascii", None])
@pytest.mark.parametrize("codec", sorted(LONG_TEXTS))
def test_unknown_or_lying_labels_fall_back_to_detection(codec, label):
    text = LONG_TEXTS[codec]
    assert charsets.decode(text.encode(codec), label) == text


def test_without_confident_detection_windows_1252_is_the_last_resort():
    assert charsets.decode(b"caf\xe9", "x-unknown") == "café"
    assert charsets.decode(b"\x81\x8d", None) == "\ufffd\ufffd"  # undefined in cp1252 too


def test_a_label_the_bytes_mostly_fit_is_kept():
    data = "Grüße ".encode() * 200 + b"\xff"
    assert charsets.decode(data, "utf-8") == "Grüße " * 200 + "\ufffd"


# --- RFC 2047: adjacent encoded words joined as bytes (section 6.2) -------------------------

def encoded_words(data: bytes, charset: str, encoding: str, cut: int) -> str:
    """data as two adjacent encoded words, the first ending after byte `cut`."""
    def word(chunk: bytes) -> str:
        if encoding == "B":
            return f"=?{charset}?B?{base64.b64encode(chunk).decode()}?="
        return f"=?{charset}?Q?{binascii.b2a_qp(chunk, header=True).decode()}?="
    return word(data[:cut]) + "\r\n " + word(data[cut:])


SPLIT_TEXTS = [("utf-8", "großartige Überraschungen"), ("UTF-8", "会議の手続き"),
               ("shift_jis", "会議の手続き"), ("ks_c_5601-1987", "회의 안건"),
               ("gb18030", "预算案"), ("x-gbk", "预算案"), ("big5", "會議"),
               ("utf-16be", "Köln ß"), ("windows-874", THAI[:10])]


@pytest.mark.parametrize("encoding", ["B", "Q"])
@pytest.mark.parametrize("charset, text", SPLIT_TEXTS)
def test_a_character_split_across_encoded_words_survives(charset, text, encoding):
    data = text.encode(charsets.codec_for(charset))
    for cut in range(1, len(data)):
        value = encoded_words(data, charset, encoding, cut)
        assert mime.decode_header_text(value) == text, cut


def test_split_words_in_display_names_and_filenames():
    name = encoded_words("Jörg Groß".encode(), "UTF-8", "Q", 2)  # cuts "ö" in two
    assert mime.addresses(f"{name} <joerg@example.de>") == [("Jörg Groß", "joerg@example.de")]
    filename = encoded_words("Übersicht-größe.pdf".encode(), "utf-8", "B", 1)
    raw = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
           b"Content-Type: application/pdf\nContent-Disposition: attachment;\n filename=\""
           + filename.encode() + b"\"\n\n%PDF\n--b--\n")
    assert mime.summarize(raw).attachment_names == ["Übersicht-größe.pdf"]


def test_words_in_different_charsets_are_decoded_each_by_its_own():
    value = encoded_words("Köln".encode("cp850"), "cp-850", "Q", 2) + " " + \
        encoded_words("ยอดขาย".encode("cp874"), "windows-874", "B", 3)
    assert mime.decode_header_text(value) == "Kölnยอดขาย"


def test_rfc2231_filenames_use_the_same_charset_table():
    raw = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
           b"Content-Disposition: attachment; filename*=windows-874''%C3%D2%C2%A7%D2%B9.txt\n\n"
           b"x\n--b\nContent-Type: text/plain\n"
           b"Content-Disposition: attachment; filename*=punycode''bcher-kva.txt\n\nx\n--b--\n")
    assert mime.summarize(raw).attachment_names == ["รายงาน.txt", "bcher-kva.txt"]


# --- every decode is bounded (issue 14) ------------------------------------------------------

def test_a_megabytes_long_punycode_subject_is_refused_not_decoded():
    # 2.3 MiB of punycode took the stdlib 55 s (quadratic), 1.4 MiB 222 s on a busy machine;
    # it is no charset, so the bytes are shown as they are. (Within mime.FIELD_VALUE_LIMIT.)
    payload = b"a" * (350 * 1024) + b"-" + b"b" * (350 * 1024)
    raw = b"Subject: =?punycode?b?" + base64.b64encode(payload) + b"?=\r\n\r\nbody\r\n"
    assert 900 * 1024 < len(raw) < mime.FIELD_VALUE_LIMIT
    # Read whole (the indexer's full parse, the web view): its bytes, not punycode's output.
    assert mime.summarize(raw).subject == payload.decode()
    # At intake only the first 256 KiB of a header block are read: the encoded word is cut
    # short there, so it is shown as it stands, undecoded.
    summary = mime.summarize_headers(raw).subject
    assert len(summary) < 300 * 1024 and raw[len(b"Subject: "):].decode().startswith(summary)


def calls_to_decode(value: str) -> int:
    """How many Python and C function calls decoding one header value makes (the second
    time: imports and cache fills are not work on this header)."""
    count = 0
    mime.decode_header_text(value)  # imports and warms the caches of the charset detector

    def profile(frame, event, arg):
        nonlocal count
        count += event in ("call", "c_call")
    sys.setprofile(profile)
    try:
        mime.decode_header_text(value)
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("word", [
    "=?x-made-up-{i}?q?caf=E9?= ",          # a new unknown charset each word: detection bait
    "=?utf-8?q?=C3?= =?latin1?q?=FC?= ",    # alternating charsets: no run to join
    "=?utf-8?b?w7w=?=",                     # one long run of adjacent words
    "plain caf\udce9 ",                      # raw 8-bit text between nothing
])
def test_work_on_a_header_is_linear_in_its_size(word):
    # Work for n, 2n and 4n words: linear work grows by the same step each time the size
    # does (quadratic by four times the step). Differences leave out the fixed cost of
    # charset detection, whose sample is capped.
    calls = [calls_to_decode("".join(word.format(i=i) for i in range(n)))
             for n in (8000, 16000, 32000)]
    assert calls[2] - calls[1] <= 2.5 * (calls[1] - calls[0])


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_a_label_that_is_no_printable_ascii_names_no_charset(label):
    # as the parser hands a header's 8-bit bytes over: lone surrogates
    text = label.decode("ascii", "surrogateescape")
    assert charsets.codec_for(text) is None
    assert charsets.decode("café".encode(), text) == "café"


def valid(text: str) -> bool:
    """Whether UTF-8 can carry `text` (no lone surrogate)."""
    return text == text.encode("utf-8", "replace").decode("utf-8")


@pytest.mark.parametrize("label, data", SURROGATE_TEXTS)
def test_text_a_codec_decodes_to_lone_surrogates_is_a_bad_byte_sequence(label, data):
    """UTF-7's "+2D0-" is U+D83D alone to Python: no character. Like any bad sequence it
    becomes U+FFFD, and a label whose text is mostly that is not believed (it was kept, and
    `archiver show`, pages and exports met a lone surrogate: UnicodeEncodeError)."""
    assert charsets.decode(data, label) == data.decode("ascii")
    long = b"Grand total: 42. " * 20 + data
    assert charsets.decode(long, label) == \
        charsets.SURROGATES.sub("\ufffd", long.decode(charsets.codec_for(label)))
    for encoding in "QB":
        encoded = data.decode() if encoding == "Q" else base64.b64encode(data).decode()
        text = mime.decode_header_text(f"=?{label}?{encoding}?{encoded}?= hello")
        assert valid(text) and text == f"{data.decode()} hello"


# Bytes that spell lone surrogates in the UTFs: UTF-8 (CESU), UTF-16 either order, with and
# without a byte order mark, UTF-32, UTF-7.
SURROGATE_BYTES = [b"\xed\xa0\xbd", b"\x3d\xd8", b"\xd8\x3d", b"\xff\xfe\x3d\xd8x\x00",
                   b"\xfe\xff\xd8\x3d\x00x", b"\x00\xd8\x00\x00", b"\x00\x00\xd8\x00",
                   b"\xff\xfe\x00\x00\x00\xd8\x00\x00", *(data for _, data in SURROGATE_TEXTS)]


@pytest.mark.parametrize("codec", sorted(charsets.TEXT_CODECS))
def test_no_accepted_codec_decodes_to_a_lone_surrogate(codec):
    for data in SURROGATE_BYTES + [bytes([byte]) for byte in range(256)]:
        for padded in (data, b"Grand total: 42. " * 20 + data):
            assert valid(charsets.decode(padded, codec)), (codec, padded)


@pytest.mark.parametrize("case", surrogate_texts(), ids=lambda case: case.name)
def test_what_is_read_of_a_message_with_lone_surrogate_text_is_valid_unicode(case):
    """Headers, file names (RFC 2231 and 2047), body and part text, as stored and indexed."""
    from services.archive import extract, metadata
    meta = metadata.header_metadata(case.raw, None, 0.0)
    summary = mime.summarize_headers(case.raw)
    read = extract.extract(case.raw, 1024 * 1024)
    texts = [value for value in meta.values() if isinstance(value, str)] + [
        summary.subject, summary.message_id or "", *summary.from_addrs, *summary.to,
        read.body] + [text or "" for item in read.attachments
                      for text in (item.filename, item.text, item.error)]
    assert all(valid(text) for text in texts), (case.name, texts)
    assert case.word in meta["subject"]
    if "filename" in case.name or "name-" in case.name:
        assert [item.filename for item in read.attachments if item.filename
                and case.word in item.filename], case.name
