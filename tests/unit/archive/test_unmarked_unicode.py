"""UTF-16 text without a byte-order mark is read as such (charsets.
unmarked_encoding: by where its NUL bytes sit), whatever 8-bit or UTF-8 label it comes
under or none: Windows tools write it (exports, .reg files, logs, PowerShell's Out-File) and
mailers attach it as text/plain or application/octet-stream. It had been read as a letter
and a NUL by turns, no word of it found, and libmagic calls it "data", so as an
octet-stream attachment it was not read at all.

The corpus: sentences in several scripts (Latin, Cyrillic, Greek, CJK; digits, punctuation,
line breaks), each in UTF-16LE and -BE without a mark (UTF-32 without one is not guessed
at: arrays of integers are valid UTF-32), under labels that lie,
say nothing, are missing, or name UTF-16 without an order, as a plain body, an HTML body
and an attachment (text/plain, application/octet-stream, no type; .txt .csv .log .reg);
read by extraction, the index's document and the web reader. And the other side: 8-bit and
UTF-8 text, with a stray NUL or a few, reads as before (8a78552, from git's history)."""
from __future__ import annotations

import array
import base64
import random
import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.archive import charsets, filetypes
from services.archive.extract import extract
from services.web import mail_view
from tests.unit.archive.history import module_at
from tests.unit.archive.test_byte_order_mark import body_terms, message

BEFORE = "8a78552"
OLD_CHARSETS = module_at(BEFORE, "charsets")

SENTENCES = [
    "Quarterly giraffe report 2024: revenue up 12%, costs down.\r\n"
    "Next meeting (Room 4) on 2024-03-15.\r\n",
    "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\Software\\Zebra]\r\n"
    '"Quokka"=dword:0000002a\r\n',
    "Grüße aus Köln, Übersicht für Müller: 3 Äpfel, 5 Birnen.\n",
    "Отчёт о продажах за третий квартал: итого 4200 рублей.\r\nСпасибо!\r\n",
    "Καλημέρα κόσμε, η αναφορά 7 είναι έτοιμη.\nΕυχαριστώ πολύ!\n",
    "会议预算案已经批准，总额为 3500 元。\r\n请在星期五之前回复。\r\n"
    "第一季度：收入 12%，成本 8%。\r\n",
    "東京の会議は 10 時に始まります。\r\n資料を持ってきてください。\r\n"
    "2024年3月15日 (金)\r\n",
    "Mixed: Москва 2024, Αθήνα 15, 北京 8 and Zürich.\r\n",
]
CODECS = ["utf-16-le", "utf-16-be"]  # UTF-32 without a mark is not guessed at
LABELS = [None, "us-ascii", "iso-8859-1", "windows-1252", "utf-8", "koi8-r", "x-klingon",
          "utf-16", "UTF16", "unicode"]
WHERE = ["body", "html", "attachment"]


def attached(data: bytes, content_type: str | None, filename: str | None) -> bytes:
    """A message with one attachment of `data`, base64, of that type (or none) and name."""
    typed = f"Content-Type: {content_type}\r\n" if content_type else ""
    named = f'; filename="{filename}"' if filename else ""
    return (b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/plain\r\n\r\nsee the file\r\n--b\r\n"
            + f"{typed}Content-Disposition: attachment{named}\r\n".encode()
            + b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data)
            + b"\r\n--b--\r\n")


def words(raw: bytes, prefix: str) -> set[str]:
    return {term for term in body_terms(raw) if term.startswith(prefix)}


def read_text(raw: bytes, where: str) -> str:
    read = extract(raw, 1 << 20)
    return read.attachments[0].text if where == "attachment" else read.body


def tidy(text: str) -> str:
    """Text as extraction lays out a plain body or an HTML one: lines, single spaces."""
    return " ".join(text.split())


@pytest.mark.parametrize("sentence, codec, label, where",
                         list(itertools.product(SENTENCES, CODECS, LABELS, WHERE)))
def test_unmarked_unicode_is_read_in_its_encoding(sentence, codec, label, where):
    raw = message(sentence.encode(codec), label, where)
    reference = message(sentence.encode("utf-8"), "utf-8", where)
    assert tidy(read_text(raw, where)) == tidy(read_text(reference, where)) != ""
    prefix = "XA" if where == "attachment" else "XB"
    assert words(raw, prefix) == words(reference, prefix) != set()
    if where != "attachment":  # the web reader reads it as the index does
        assert tidy(mail_view.view(raw).body) == tidy(mail_view.view(reference).body)


@pytest.mark.parametrize("sentence", SENTENCES)
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_label_that_names_the_order_is_read_so(sentence, codec):
    data = sentence.encode(codec)
    assert charsets.decode_document(data, codec) == sentence


@pytest.mark.parametrize("sentence", [s for s in SENTENCES if sum(c.isascii() for c in s) > 30])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_label_that_names_the_other_order_is_overruled_by_the_nuls(sentence, codec):
    """Review r6: UTF-16BE labelled utf-16le read in the label's order is Chinese (ASCII's
    units swapped are U+xx00), no word of it found, where the web's preview (no label) read
    it right: the index and the reader agree now."""
    other = "utf-16-be" if codec == "utf-16-le" else "utf-16-le"
    data = sentence.encode(codec)
    assert charsets.decode_document(data, other) == sentence
    raw = attached(data, f"text/plain; charset={other}", "report.txt")
    reference = attached(sentence.encode("utf-8"), "text/plain; charset=utf-8", "report.txt")
    assert words(raw, "XA") == words(reference, "XA") != set()
    assert tidy(extract(raw, 1 << 20).attachments[0].text) == \
        tidy(charsets.decode_document(data, None))  # the web's preview reads it unlabelled


MULTIBYTE_SENTENCES = [("東京都千代田区の会議室予約一覧", "shift_jis"), ("東京都千代田区の会議室予約一覧", "euc-jp"),
                       ("서울특별시 회의실 예약 목록", "euc-kr"), ("北京市会议室预订列表", "gbk"),
                       ("臺北市會議室預約清單", "big5"), ("Отчёт о продажах за квартал", "utf-8")]


@pytest.mark.parametrize("sentence, label", MULTIBYTE_SENTENCES)
@pytest.mark.parametrize("where", WHERE)
def test_multibyte_text_with_nul_ended_lines_is_read_by_its_label(sentence, label, where):
    """Review r6: lines written as C strings (a NUL before each line break) put every NUL
    in the same byte of a pair, and double-byte text read in pairs is CJK: the statistics
    alone read Shift_JIS, EUC and Big5 so as UTF-16, every word lost. Text its multibyte
    label decodes is read by it."""
    data = (sentence + "\x00\n").encode(label) * 80
    assert charsets.unmarked_encoding(data, label) is None
    assert charsets.decode_document(data, label) == charsets.decode(data, label)
    assert sentence in read_text(message(data, label, where), where).replace("\x00", "")


def sensor_frame() -> bytes:
    """A raw 12-bit sensor frame (uint16 little-endian, dark level 200; review r6)."""
    rng = random.Random(5)
    return array.array("H", [min(4095, 200 + int(abs(rng.gauss(0, 800))))
                             for _ in range(8192)]).tobytes()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [16, 32])
def test_binary_arrays_of_small_integers_stay_octet_stream_and_unread(seed, size):
    """Review r6: libmagic calls a headerless array of integers "data"; read as UTF-16 or
    UTF-32 without a mark it was indexed as thousands of CJK "words" and typed text/plain."""
    rng = random.Random(seed)
    top = rng.choice([300, 4096, 50_000, 0x10FFFF])
    numbers = [rng.randint(0, top) for _ in range(4096)]
    tables = [array.array("H" if size == 16 else "I", [n % (1 << size) for n in numbers])
              .tobytes(), array.array("I", range(1000 + seed, 6000)).tobytes(), sensor_frame()]
    for data in tables:
        raw = attached(data, "application/octet-stream", "table.bin")
        entry = extract(raw, 1 << 20).attachments[0]
        # (libmagic's own answer may be a guess, "application/x-dosexec" for one counter)
        assert not entry.mime_type.startswith("text/") and entry.text == ""


@pytest.mark.parametrize("codec", ["utf-32-le", "utf-32-be"])
def test_unmarked_utf_32_is_not_guessed(codec):
    data = SENTENCES[0].encode(codec)
    assert charsets.unmarked_encoding(data) is None
    assert charsets.decode_document(data, None) == charsets.decode(data, None)
    marked = ("\ufeff" + SENTENCES[0]).encode(codec)  # with a mark it is read
    assert charsets.decode_document(marked, None) == SENTENCES[0]


@pytest.mark.parametrize("sentence", SENTENCES)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_text_cut_mid_character_reads_up_to_the_cut(sentence, codec, cut):
    data = sentence.encode(codec)[:-cut]  # odd length, half a unit, half a pair
    text = charsets.decode_document(data, None).rstrip("\ufffd")
    assert sentence.startswith(text) and len(text) >= len(sentence) - 2


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_short_text_of_few_ascii_characters_is_left_to_decode(codec):
    """Too few NULs to tell UTF-16 from 8-bit text with NULs strewn in (see charsets)."""
    data = "東京の会議は 10 時に。\r\n".encode(codec)
    assert charsets.unmarked_encoding(data) is None
    assert charsets.decode_document(data, None) == charsets.decode(data, None)


ATTACHMENT_TYPES = ["application/octet-stream", None, "text/plain"]
FILENAMES = [None, "export.txt", "export.csv", "app.log", "settings.reg", "dump.bin"]


@pytest.mark.parametrize("content_type, filename",
                         list(itertools.product(ATTACHMENT_TYPES, FILENAMES)))
@pytest.mark.parametrize("codec, mark", [("utf-16-le", b""), ("utf-16-be", b""),
                                         ("utf-16-le", b"\xff\xfe"),
                                         ("utf-16-be", b"\xfe\xff"),
                                         ("utf-8", b"\xef\xbb\xbf"), ("ascii", b"")])
def test_a_text_attachment_is_read_as_text_whatever_it_is_declared(content_type, filename,
                                                                   codec, mark):
    sentence = SENTENCES[1] if codec == "ascii" else SENTENCES[3]
    raw = attached(mark + sentence.encode(codec), content_type, filename)
    entry = extract(raw, 1 << 20).attachments[0]
    assert entry.mime_type.startswith("text/")
    reference = attached(sentence.encode("utf-8"), "text/plain; charset=utf-8", filename)
    assert tidy(entry.text) == tidy(extract(reference, 1 << 20).attachments[0].text)
    assert words(raw, "XA") == words(reference, "XA") != set()


def test_libmagic_calls_unmarked_utf_16_data_and_we_text():
    data = SENTENCES[0].encode("utf-16-le") * 20
    assert filetypes._magic().from_buffer(data).startswith("application/octet-stream")
    assert filetypes.content_type(data) == "text/plain"


# --- generated: real UTF-16 reads so, real 8-bit and UTF-8 text reads as before ---------

ALPHABETS = {
    "latin": "abcdefghijklmnopqrstuvwxyzäöüßéèàçñ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ",
    # common characters. Not 一 (U+4E00): its low byte is NUL, and a text of little else
    # ("一 一 一 \r\n") has as many NULs in low bytes as in high ones, its order not told
    # (the explicit SENTENCES have it as real text does, now and then)
    "cjk": "的是不了人我在有他这中大来上国个到说们为子和你地出道也时年会议预算",
}
# Words of different letters: "个个个个" (U+4E2A, bytes "*N") is 8-bit "*N*N*N*N" as much
# as it is Chinese, a text made of it is not told (see charsets.ASCII_PAIRS)
word = {name: st.lists(st.sampled_from(letters), min_size=1, max_size=12, unique=True).map(
    "".join) for name, letters in ALPHABETS.items()}
filler = st.sampled_from([" ", " ", " ", ", ", ". ", "\r\n", "\n", " 42 ", " 2024-03-15 ",
                          ": ", " (7) ", "！", "。"])


@st.composite
def unicode_text(draw) -> str:
    """Words of one or two scripts, with spaces, digits, punctuation and line breaks
    between them, as a text of some length has them (a line break at least)."""
    scripts = draw(st.lists(st.sampled_from(sorted(ALPHABETS)), min_size=1, max_size=2))
    pieces = draw(st.lists(st.tuples(st.sampled_from(scripts).flatmap(word.get), filler),
                           min_size=6, max_size=60))
    return "".join(w + f for w, f in pieces) + "\r\n"


@settings(max_examples=400, deadline=None)
@given(unicode_text(), st.sampled_from(CODECS), st.sampled_from(LABELS))
def test_generated_unmarked_unicode_reads_back(text, codec, label):
    assume(sum(character.isascii() for character in text) >= 9)  # see charsets: fewer
    assert charsets.decode_document(text.encode(codec), label) == text


EIGHT_BIT = ["cp1252", "iso8859-15", "cp1251", "koi8-r", "cp1253", "cp1250", "utf-8"]
text_8bit = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x44F,
                                  whitelist_categories=("L", "N", "P", "Zs")),
                    min_size=8, max_size=300) | st.sampled_from(SENTENCES).map(lambda s: s * 3)


@settings(max_examples=400, deadline=None)
@given(text_8bit, st.sampled_from(EIGHT_BIT), st.sampled_from(LABELS[:7]))
def test_8bit_and_utf8_text_reads_as_before(text, codec, label):
    data = text.encode(codec, "ignore")
    assert charsets.decode_document(data, label) == OLD_CHARSETS.decode_document(data, label)


@settings(max_examples=400, deadline=None)
@given(text_8bit, st.sampled_from(EIGHT_BIT), st.sampled_from(LABELS[:7]),
       st.lists(st.integers(min_value=0), min_size=1, max_size=3))
def test_a_few_nuls_do_not_make_8bit_text_utf_16(text, codec, label, places):
    """A few NULs in a text of some length ("0" and two NULs is UTF-16BE as much as not)."""
    data = bytearray(text.encode(codec, "ignore"))
    assume(len(data) >= 32)
    for place in places:
        data.insert(place % (len(data) + 1), 0)
    data = bytes(data)
    assert charsets.unmarked_encoding(data, label) is None
    assert charsets.decode_document(data, label) == charsets.decode(data, label)
    # detection reads it as without its NULs (a few had swayed it to no answer)
    assert charsets.detected(data) == charsets.detected(data.replace(b"\x00", b""))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_without_raising(data):
    for label in (None, "utf-16", "utf-16be", "iso-8859-1"):
        text = charsets.decode_document(data, label)
        assert not charsets.has_surrogates(text)
