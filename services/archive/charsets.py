"""Charset labels resolved as mail readers and browsers do, and bytes decoded by them.

A label is looked up in the WHATWG Encoding Standard's table (Debian's python3-webencodings)
first, then among Python's codec aliases, with the spellings mailers actually send
("cp-850", "windows_874", "x-gbk"). Only text encodings are accepted (TEXT_CODECS, an
allow-list): Python also "decodes" punycode, idna, base64, rot13, zlib, hex, uu and the like,
some of them in quadratic time, and none of those is a charset. Every accepted codec is a
C or table-driven decoder, linear in its input.

Where a label is missing, unknown, refused or lies (the bytes are not in that charset), the
bytes are UTF-8 when they are valid UTF-8, else what charset detection (Debian's
python3-charset-normalizer) finds with confidence, else Windows-1252: what undeclared
8-bit mail in the wild most often is, and what WHATWG reads "iso-8859-1" and "us-ascii" as.
"""
from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import itertools
import re
import sys
from typing import Iterable, Iterator, NamedTuple

import webencodings

# Python's canonical codec names (codecs.lookup(x).name) of the text encodings we accept.
# UTF-7 (RFC 2152) is in: old Exchange and Lotus gateways sent it, Python's decoder is linear
# C, and what it yields is displayed escaped like any other text.
TEXT_CODECS = frozenset({
    "ascii", "utf-8", "utf-8-sig", "utf-7", "utf-16", "utf-16-be", "utf-16-le",
    "utf-32", "utf-32-be", "utf-32-le",
    *(f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
    *(f"cp{n:03d}" for n in (37, 273, 424, 437, 500, 720, 737, 775, 850, 852, 855, 856, 857, 858,
                         860, 861, 862, 863, 864, 865, 866, 869, 874, 875, 932, 949, 950,
                         1006, 1026, 1125, 1140, 1250, 1251, 1252, 1253, 1254, 1255, 1256,
                         1257, 1258)),
    "koi8-r", "koi8-t", "koi8-u", "kz1048", "ptcp154", "tis-620", "hp-roman8",
    "mac-arabic", "mac-croatian", "mac-cyrillic", "mac-farsi", "mac-greek", "mac-iceland",
    "mac-latin2", "mac-roman", "mac-romanian", "mac-turkish",
    "big5", "big5hkscs", "gb2312", "gbk", "gb18030", "hz", "johab",
    "euc_jp", "euc_jis_2004", "euc_jisx0213", "euc_kr",
    "shift_jis", "shift_jis_2004", "shift_jisx0213",
    "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3",
    "iso2022_jp_ext", "iso2022_kr",
})
# What WHATWG decoders (and so mail readers) really read under these names: the supersets
# Windows made of them. Decoding text of the subset with the superset changes nothing.
SUPERSETS = {"euc_kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs",
             "shift_jis": "cp932", "ascii": "cp1252", "iso8859-1": "cp1252",
             "iso8859-9": "cp1254", "iso8859-11": "cp874", "tis-620": "cp874"}
# Labels that say nothing about the bytes: decode as if there were no label.
UNINFORMATIVE = frozenset({"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown",
                           "default", "8bit", "x-user-defined", "us", "none", "binary"})
# Windows and IBM code pages as mailers spell them: "cp-850", "ibm_437", "windows_874".
CODE_PAGE = re.compile(r"(?:x-)?(cp|ibm|ms|windows|win)[-_ ]?(\d{3,5})")
LABEL_LIMIT = 64
# A label that fits more than this share of bytes into replacement characters is a lie.
LIE_RATIO = 0.01
# Detection reads this much (cut after an ASCII byte, so no character is cut in two) and
# trusts only a candidate whose text its language models recognise.
DETECTION_SAMPLE_BYTES = 64 * 1024
DETECTION_MIN_COHERENCE = 0.2
# The candidates detection weighs: charsets of mail in the wild (a shorter list is both
# faster and less often fooled into exotic code pages).
DETECTION_CANDIDATES = ["cp1252", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r",
                        "cp1253", "iso8859_7", "cp1254", "cp1255", "cp1256", "cp1257",
                        "cp1258", "cp874", "cp850", "cp437", "mac_roman", "shift_jis",
                        "euc_jp", "iso2022_jp", "euc_kr", "gb18030", "big5"]
# charset-normalizer has no language model for CJK text (coherence 0); many 8-bit bytes
# that form valid sequences of a multibyte charset are evidence enough.
MULTIBYTE_CANDIDATES = {"shift_jis", "euc_jp", "iso2022_jp", "euc_kr", "gb18030", "big5"}
DETECTION_MIN_MULTIBYTE = 24
FALLBACK = "cp1252"
# Halves of UTF-16 surrogate pairs: no character, and UTF-8 cannot carry one (printing,
# storing or serving text with one raises UnicodeEncodeError). Python's UTF-7 decoder
# yields them for "+2D0-" (U+D83D alone); UTF-8, -16 and -32 refuse them as invalid.
SURROGATES = re.compile("[\ud800-\udfff]")


def codec_for(label: str | None) -> str | None:
    """The Python codec name a charset label stands for, or None when the label is missing,
    says nothing (us-ascii, unknown-8bit...), is unknown, or names no text encoding
    (punycode, base64, rot13...). Never raises."""
    label = _normalise(label)
    if label in UNINFORMATIVE or not (label.isascii() and label.isprintable()):
        return None  # charset names are printable US-ASCII (RFC 2978 2.3)
    for candidate in _spellings(label):
        name = _lookup(candidate)
        if name is not None:
            name = SUPERSETS.get(name, name)
            return name if name in TEXT_CODECS else None
    return None


def decode(data: bytes, label: str | None, detect: bool = True) -> str:
    """Bytes as text, never raising, in time linear in len(data): the label's charset when
    it is a text charset the bytes fit (a few bad bytes become U+FFFD), else UTF-8 if they
    are valid UTF-8, else the charset detection is confident of (detect=True), else
    Windows-1252. Never holds a lone surrogate: one a codec yields (UTF-7's "+2D0-") is a
    bad byte sequence like any other."""
    return _reading(data, label, detect, True).text


class Reading(NamedTuple):
    """Bytes read as text: the `text`, the `codec` read in, and how many bytes of byte-order
    mark before the text were left out (`mark_bytes`). The text is always
    without_surrogates(data[mark_bytes:].decode(codec, "replace")), whichever way found."""
    text: str
    codec: str
    mark_bytes: int = 0


def _reading(data: bytes, label: str | None, detect: bool, ended: bool) -> Reading:
    """decode()'s text and the codec it chose (of a start of a text, not `ended`: see
    _strictly)."""
    codec = codec_for(label)
    if codec is not None:
        try:
            text = _strictly(data, codec, ended)
        except UnicodeDecodeError:
            text = data.decode(codec, "replace")
        else:
            if not has_surrogates(text):
                return Reading(text, codec)
        text = without_surrogates(text)
        if text.count("\ufffd") <= LIE_RATIO * len(data):
            return Reading(text, codec)
    return _unlabelled_reading(data, detect, ended)


# A byte-order mark that starts a document names its encoding whatever its label says
# (WHATWG Encoding Standard, "decode": BOM sniffing, as browsers read it): a UTF-16 part
# labelled ISO-8859-1, or not at all, was read a letter and a NUL by turns, no word of it
# found. WHATWG knows no UTF-32, whose marks begin with UTF-16's (FF FE, then a UTF-16 text
# whose first character is U+0000): UTF-32 is read where the text is valid UTF-32 (UTF-16
# text hardly ever is: two letters of it make a code point past U+10FFFF).
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                    (b"\xfe\xff", "utf-16-be"))
UTF32_MARKS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"))
MARK_STARTS = frozenset(mark[:1] for mark, _ in BYTE_ORDER_MARKS + UTF32_MARKS)


def decode_document(data: bytes, label: str | None, detect: bool = True) -> str:
    """A whole text (a body part, an attachment) as decode() reads it, unless it starts
    with a byte-order mark (BYTE_ORDER_MARKS, UTF32_MARKS): then in the encoding the mark
    names, the mark left out, bad sequences as U+FFFD; or unless it is UTF-16 without a
    mark (unmarked_encoding): then in that. Never raises; linear in len(data)."""
    return read_document(data, label, detect).text


def read_document(data: bytes, label: str | None, detect: bool = True,
                  ended: bool = True) -> Reading:
    """decode_document's text, with the codec it was read in (Reading). Of a document's
    start (not `ended`), whose end may cut a character: the codec the start says, a cut
    character no bad sequence (_strictly), the text without it."""
    if data[:1] in MARK_STARTS:
        marked = _marked_reading(data, ended)
        if marked is not None:
            return marked
    unmarked = unmarked_encoding(data, label)  # (for text of no NUL: one memchr)
    if unmarked is not None:
        return Reading(without_surrogates(data.decode(unmarked, "replace")), unmarked)
    return _reading(data, label, detect, ended)


def _strictly(data: bytes, codec: str, ended: bool) -> str:
    """data.decode(codec), raising UnicodeDecodeError at a bad sequence; of a start of a
    text (not `ended`), a character cut at its end is left out, no bad sequence (the cut
    of valid UTF-8 read as UTF-8, not as what detection guesses: review r21 F1)."""
    if ended:
        return data.decode(codec)
    codec, mark_bytes = _in_order(codec, 0, data)
    try:
        return codecs.getincrementaldecoder(codec)().decode(data[mark_bytes:])
    except UnicodeDecodeError:
        raise
    except UnicodeError:  # (an ISO-2022 decoder's pending bytes: see _step)
        return data.decode(codec)


# Bytes decoded at once past a document's start (decode_document_start): the text of one
# piece is what is held of the rest.
PIECE_BYTES = 1024 * 1024


def decode_document_start(data: bytes | memoryview, label: str | None, text_bytes: int
                          ) -> tuple[str, Iterator[str]]:
    """decode_document(data, label) read in part: the text of data's start, at least
    text_bytes of UTF-8 where data holds them, and the text of the rest, an iterator of
    pieces (PIECE_BYTES of data each). The start is data's first start_bytes(text_bytes)
    (a character they cut at their end left to what follows), and more pieces while its
    text is short of text_bytes (escape sequences are bytes of no character: review r21
    F2); it is read in the codec those first bytes say (the rest is not looked at to choose
    it, as for a text attachment read up to its cap), and so is the rest. The start and the
    pieces joined are decode_document's text of data wherever its first bytes are read in
    the codec the whole is; all of data is decode_document's when it is no longer than
    start_bytes(text_bytes). `data` may be a memoryview. Holds one piece's text at once
    beyond the start, and keeps `data` until the pieces end. Never raises."""
    start_bytes = decoded_start_bytes(text_bytes)
    if len(data) <= start_bytes:
        return decode_document(bytes(data), label), iter(())
    rest = memoryview(data)[start_bytes:]
    return _start_and_rest(bytes(data[:start_bytes]), label, text_bytes,
                           (rest[at:at + PIECE_BYTES] for at in range(0, len(rest), PIECE_BYTES)))


def decode_document_pieces(pieces: Iterable[bytes], label: str | None, text_bytes: int
                           ) -> tuple[str, Iterator[str]]:
    """decode_document_start of the bytes `pieces` join to, read from them as they come
    (a part decoded from its transfer encoding a piece at a time: services.archive.
    transfer_encoding.decoded_pieces): the document is never held whole, only its first
    decoded_start_bytes(text_bytes) and one piece at a time past them. Never raises."""
    pieces = iter(pieces)
    start_bytes = decoded_start_bytes(text_bytes)
    start = bytearray()
    for piece in pieces:
        start += piece
        if len(start) > start_bytes:
            break
    if len(start) <= start_bytes:
        return decode_document(bytes(start), label), iter(())
    first_rest = bytes(start[start_bytes:])
    del start[start_bytes:]
    return _start_and_rest(bytes(start), label, text_bytes,
                           itertools.chain([first_rest], pieces))


def _start_and_rest(start: bytes, label: str | None, text_bytes: int,
                    rest: Iterable[bytes | memoryview]) -> tuple[str, Iterator[str]]:
    """The text of a document's `start` (read as decode_document_start reads it) and its
    `rest`'s, given in pieces of bytes."""
    codec, mark_bytes = _codec_of_start(start, label)
    # (decoded again, step by step: a character cut at start_bytes goes on into the rest)
    decoder = codecs.getincrementaldecoder(codec)("replace")
    text = _step(decoder, codec, start[mark_bytes:])
    pieces = _pieces(decoder, codec, rest)
    return _at_least(text, text_bytes, pieces), pieces


def _codec_of_start(start: bytes, label: str | None) -> tuple[str, int]:
    """The codec (its byte order named: _in_order) and mark_bytes that read_document finds
    for a document's start; its text is let go (it is decoded again, step by step)."""
    reading = read_document(start, label, ended=False)
    return _in_order(reading.codec, reading.mark_bytes, start)


def decoded_start_bytes(text_bytes: int) -> int:
    """The bytes of a text decoded for text_bytes of its UTF-8: a character is at most 4
    bytes in any charset (but for escape sequences), so these hold them, and one character
    more when there is more."""
    return 4 * text_bytes + 4


def _at_least(text: str, text_bytes: int, pieces: Iterator[str]) -> str:
    """text, and the pieces that follow it while it is short of text_bytes of UTF-8."""
    if len(text) >= text_bytes:
        return text  # (a character is a byte of UTF-8 at least)
    size = len(text.encode("utf-8"))
    more = [text]
    while size < text_bytes:
        piece = next(pieces, None)
        if piece is None:
            break
        more.append(piece)
        size += len(piece.encode("utf-8"))
    return "".join(more)


def _pieces(decoder: codecs.IncrementalDecoder, codec: str,
            rest: Iterable[bytes | memoryview]) -> Iterator[str]:
    """The text of `rest`, pieces of bytes, as `decoder` (of `codec`) goes on reading it,
    a piece at a time."""
    for piece in rest:
        yield _step(decoder, codec, piece)
    yield _step(decoder, codec, b"", final=True)


# UTF-16 and UTF-32 of no byte order: decoded whole, text with no byte-order mark is read
# in the machine's order; their incremental decoders refuse it. So the order is named.
_BYTE_ORDERS = {
    "utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
    "utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"))}


def _in_order(codec: str, mark_bytes: int, data: bytes) -> tuple[str, int]:
    """The codec data is read in, and the bytes of byte-order mark before its text, with
    the byte order named in the codec."""
    if codec not in _BYTE_ORDERS:
        return codec, mark_bytes
    for mark, ordered in _BYTE_ORDERS[codec]:
        if data.startswith(mark):
            return ordered, len(mark)
    return f"{codec}-{'le' if sys.byteorder == 'little' else 'be'}", 0


def _step(decoder: codecs.IncrementalDecoder, codec: str, data: bytes | memoryview,
          final: bool = False) -> str:
    """decoder.decode(data, final), without surrogates. An ISO-2022 decoder refuses to hold
    more than a few bytes it has not decoded yet (escape sequences that select nothing:
    "pending buffer overflow", no UnicodeDecodeError that "replace" handles): then the
    decoder starts again, and `data` is decoded on its own."""
    try:
        text = decoder.decode(data, final)
    except UnicodeDecodeError:
        raise  # (not with "replace")
    except UnicodeError:
        decoder.reset()
        text = bytes(data).decode(codec, "replace")
    return without_surrogates(text)


def _marked_reading(data: bytes, ended: bool) -> Reading | None:
    """The text after the byte-order mark data starts with, in its encoding, or None."""
    for mark, codec in UTF32_MARKS:
        if data.startswith(mark):
            try:
                return Reading(without_surrogates(_strictly(data[len(mark):], codec, ended)),
                               codec, len(mark))
            except UnicodeDecodeError:
                break  # no UTF-32: UTF-16's mark and a U+0000
    for mark, codec in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return Reading(without_surrogates(data[len(mark):].decode(codec, "replace")),
                           codec, len(mark))
    return None


# UTF-16 without a byte-order mark: Windows tools write it (exports, .reg files, logs,
# PowerShell's Out-File), mailers attach it as text/plain, unlabelled or labelled us-ascii
# or ISO-8859-1, and read as 8-bit text it is a letter and a NUL by turns, no word of it
# found. Text of an 8-bit charset or UTF-8 holds no NUL, or a stray few; UTF-16 holds one
# in each code unit of an ASCII character (a space, a digit, a line break), always in the
# same byte of the two: the high one (odd offsets in UTF-16LE, even in -BE). Text of one
# script and nothing else (CJK without one ASCII character, not even a line break) has
# none, and is not told from 8-bit text (Windows' IsTextUnicode read "Bush hid the facts"
# as Chinese): it is left to decode(). Debian's detectors do not do better: chardet 5.1's
# UTF-16 prober wants nearly every unit ASCII (it calls Cyrillic UTF-16 "ascii"), and
# charset-normalizer, which we use, is not asked for UTF-16 (nor would its models help).
# UTF-32 without a mark is not guessed at: no mailer writes it, and an array of 32-bit
# integers below 0x110000 is valid UTF-32 (review r6: a table of counters indexed as
# Chinese); with a mark it is read (decode_document).
UNMARKED_SAMPLE_BYTES = 64 * 1024
# The high bytes of at least this share of UTF-16 code units are NUL (Chinese with a line
# break in every 50 characters has 2%), half as many again as the low bytes (those are NUL
# in U+0100, U+4E00 "一" and the like), and more than the low ones by three standard
# deviations of a coin's tosses (NULs strewn into 8-bit text fall in either byte by chance;
# HTML of a dozen NULs could look like UTF-16): at least nine, so a short text with fewer
# ASCII characters than that is left to decode().
UNMARKED_MIN_NUL_SHARE, UNMARKED_NUL_PARITY, UNMARKED_NUL_SIGMAS = 0.01, 1.5, 3.0
# And at least this share of the units whose high byte is NUL are ASCII (U+0000-U+007F):
# text's are its spaces, digits, punctuation and line breaks, with Latin-1's letters
# (é, ü) among ASCII ones; an array of 16-bit numbers (a sensor's frame, values 200 to
# 4,095: review r6) has Latin-1's upper half alone there.
UNMARKED_MIN_ASCII_SHARE = 0.5
# Of the sample read so, at most this share are controls that are no layout (random
# binary, arrays of small numbers: U+0001, U+0002...), private use (8-bit letters read in
# pairs: cp1251's "аб" is U+E1E0) or not characters at all.
UNMARKED_MAX_NOISE = 0.01
NOISE = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\ue000-\uf8ff\ufffd]")
# And of its characters beyond Latin-1 at most this share are two printable ASCII bytes
# ("ar" read as U+7261): so is nearly every one of ASCII text with a few NULs in it read in
# pairs, some 35% of CJK ideographs, none of Cyrillic or Greek. Not counted: U+30xx, kana
# (most of Japanese), whose high byte is "0", and rarely a letter's neighbour.
UNMARKED_MAX_ASCII_PAIRS = 0.75
LATIN_1 = re.compile("[\x00-\xff]")
ASCII_PAIRS = re.compile("[" + "".join(f"{chr(high << 8 | 0x20)}-{chr(high << 8 | 0x7e)}"
                                       for high in range(0x20, 0x7f) if high != 0x30) + "]")
# Labels that name UTF-16 without an order: Python reads them in the machine's order, RFC
# 2781 says big-endian, WHATWG (and so browsers) read "utf-16" as UTF-16LE, which is what
# Windows writes: in the order the NULs show, else little-endian, whatever the machine. A
# label that names an order is read in the other one only where the NULs say so as
# plainly as they must to overrule an 8-bit label (review r6: UTF-16BE labelled utf-16le
# was indexed as Chinese).
UNORDERED_UNICODE = frozenset({"utf16", "ucs2", "unicode"})
# Multibyte charsets whose every text does not decode: text that decodes under such a
# label is read by it (review r6: Shift_JIS with NUL-ended lines read in pairs is Chinese
# too, its NULs all in one byte of the pair).
MULTIBYTE_LABELS = frozenset({
    "utf-8", "big5", "big5hkscs", "gb2312", "gbk", "gb18030", "hz", "johab", "euc_jp",
    "euc_jis_2004", "euc_jisx0213", "euc_kr", "shift_jis", "shift_jis_2004", "shift_jisx0213",
    "cp932", "cp949", "cp950", "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004",
    "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr"})


def unmarked_encoding(data: bytes, label: str | None = None) -> str | None:
    """The codec ("utf-16-le" or "utf-16-be") of data that is UTF-16 text without a
    byte-order mark, by where its NUL bytes sit (see above), or None: for data with no
    NUL in its first UNMARKED_SAMPLE_BYTES (all 8-bit and UTF-8 text: that check is one
    memchr), and for text a multibyte label (MULTIBYTE_LABELS) decodes. Never raises."""
    if data.find(b"\x00", 0, UNMARKED_SAMPLE_BYTES) < 0:
        return None  # decode() reads an unordered label as WHATWG does: little-endian
    sample = data[:UNMARKED_SAMPLE_BYTES]
    unordered = _unordered_unicode(label)
    labelled = None if unordered else codec_for(label)
    if labelled in MULTIBYTE_LABELS and not sample.isascii() and _decodes(sample, labelled) \
            or _utf_8_beyond_ascii(sample):
        return None  # UTF-16 is hardly ever valid UTF-8 (or EUC, ...) but in ASCII
    high_le, high_be = sample[1::2].count(0), sample[0::2].count(0)
    codec, high, low = ("utf-16-le", high_le, high_be) if high_le >= high_be else \
        ("utf-16-be", high_be, high_le)
    if unordered:
        return codec if high > low else "utf-16-le"
    units = len(sample) // 2
    if high < max(UNMARKED_MIN_NUL_SHARE * units, UNMARKED_NUL_PARITY * low) or \
            high - low < UNMARKED_NUL_SIGMAS * (high + low) ** 0.5:
        return None
    whole = _whole_units(sample)
    if not _high_nuls_mostly_ascii(whole, codec) or not _reads_as(whole, codec):
        return None
    return codec


def _utf_8_beyond_ascii(sample: bytes) -> bool:
    """Whether sample is valid UTF-8 (but perhaps for a character cut at its end) with a
    character beyond ASCII: UTF-8 Cyrillic read in pairs is Hangul, valid UTF-16."""
    return not sample.isascii() and _decodes(sample, "utf-8")


def _decodes(sample: bytes, codec: str) -> bool:
    """Whether sample decodes in codec without a bad sequence (but a character cut at its
    end)."""
    try:
        codecs.getincrementaldecoder(codec)().decode(sample, False)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _whole_units(sample: bytes) -> bytes:
    """sample cut to whole UTF-16 code units (2 bytes)."""
    return sample[:len(sample) // 2 * 2]


def _high_nuls_mostly_ascii(sample: bytes, codec: str) -> bool:
    """Whether at least UNMARKED_MIN_ASCII_SHARE of the units of sample (whole UTF-16 units
    in codec's order) whose high byte is NUL are ASCII."""
    lows, highs = (sample[0::2], sample[1::2]) if codec == "utf-16-le" else \
        (sample[1::2], sample[0::2])
    in_latin_1 = [low for low, high in zip(lows, highs) if high == 0]
    ascii_units = sum(low < 0x80 for low in in_latin_1)
    return ascii_units >= UNMARKED_MIN_ASCII_SHARE * len(in_latin_1)


def _unordered_unicode(label: str | None) -> str | None:
    """The label, when it names UTF-16 without a byte order, else None."""
    compact = _normalise(label).replace("-", "").replace("_", "")
    return compact if compact in UNORDERED_UNICODE else None


def _reads_as(sample: bytes, codec: str) -> bool:
    """Whether sample reads as text in codec (a unit cut at its end aside): at most
    UNMARKED_MAX_NOISE of it noise (NOISE) and at most UNMARKED_MAX_ASCII_PAIRS of what is
    beyond Latin-1 8-bit text read in pairs (ASCII_PAIRS)."""
    text = sample.decode(codec, "replace")
    if text.endswith("\ufffd"):
        text = text[:-1]  # the sample may end in the middle of a surrogate pair
    if not text:
        return False
    # (of half the text at least: one CJK character in English is no evidence either way)
    beyond_latin_1 = max(len(text) - len(LATIN_1.findall(text)), len(text) / 2)
    return len(NOISE.findall(text)) <= UNMARKED_MAX_NOISE * len(text) and \
        len(ASCII_PAIRS.findall(text)) <= UNMARKED_MAX_ASCII_PAIRS * beyond_latin_1


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (SURROGATES)."""
    return not text.isascii() and SURROGATES.search(text) is not None


def without_surrogates(text: str) -> str:
    """`text` with every lone surrogate (SURROGATES) replaced by U+FFFD."""
    return SURROGATES.sub("\ufffd", text) if has_surrogates(text) else text


def decode_unlabelled(data: bytes, detect: bool = True) -> str:
    """Bytes of no (or no believable) charset: ASCII, UTF-8, detection, Windows-1252."""
    return _unlabelled_reading(data, detect, True).text


def _unlabelled_reading(data: bytes, detect: bool, ended: bool) -> Reading:
    try:
        return Reading(_strictly(data, "utf-8", ended), "utf-8")
    except UnicodeDecodeError:
        pass
    codec = (detected(data, ended) if detect else None) or FALLBACK
    return Reading(without_surrogates(data.decode(codec, "replace")), codec)


def detected(data: bytes, ended: bool = True) -> str | None:
    """The text charset python3-charset-normalizer finds in (a sample of) data with some
    confidence (its language coherence), or None. NUL bytes are no evidence: data reads
    as without them. A sample that is not data's end (nor, not `ended`, the text's) ends
    at its last line break or blank, where no multi-byte charset's character is cut
    (review r22 F1: a Shift_JIS start cut inside a character was read as windows-1252)."""
    from charset_normalizer import from_bytes  # 0.1 s to import: only where needed
    sample = data[:DETECTION_SAMPLE_BYTES]
    if len(data) > len(sample) or not ended:
        cut = max(sample.rfind(b"\n"), sample.rfind(b" "))
        sample = sample[:cut] if cut > 0 else sample
    if b"\x00" in sample:  # no charset's letter: a stray few swayed detection, some to
        sample = sample.replace(b"\x00", b"")  # no answer, where without them it had one
    try:
        matches = list(from_bytes(sample, cp_isolation=DETECTION_CANDIDATES))
    except (ValueError, TypeError, LookupError, UnicodeError):
        return None
    if not matches:
        return None
    # The least chaotic readings; of those, the one whose words look most like a language.
    least = min(match.chaos for match in matches)
    calm = [match for match in matches if match.chaos <= least + 0.01]
    best = max(calm, key=lambda match: match.coherence)
    multibyte = best.encoding in MULTIBYTE_CANDIDATES and \
        len(sample) - sum(byte < 0x80 for byte in sample) >= DETECTION_MIN_MULTIBYTE
    if best.coherence >= DETECTION_MIN_COHERENCE or multibyte:
        return codec_for(best.encoding)
    return None


def _normalise(label: str | None) -> str:
    return (label or "").strip().strip("\"'").strip().lower()[:LABEL_LIMIT]


def _spellings(label: str) -> list[str]:
    """The label, then the variants mailers produce of standard names."""
    spellings = [label, label.replace("_", "-")]
    code_page = CODE_PAGE.fullmatch(label)
    if code_page:
        kind, number = code_page.groups()
        spellings += [f"windows-{number}", f"cp{number}"] if kind in ("windows", "win") \
            else [f"cp{number}"]
    if label.startswith("x-"):
        spellings.append(label[2:])
    return spellings


def _lookup(label: str) -> str | None:
    """Python's canonical name of the text codec a label names, WHATWG's table first, or
    None. Python's own aliases are read from its table, never through codecs.lookup(): that
    tries an import for every name it does not know (half a millisecond each, and a header
    can name thousands of made-up charsets)."""
    encoding = webencodings.lookup(label)
    if encoding is not None:
        return None if encoding.name == "x-user-defined" else encoding.codec_info.name
    key = _module_name(label)
    return _CODEC_OF_MODULE.get(key) or _CODEC_OF_ALIAS.get(key)


def _module_name(label: str) -> str:
    """Python's normal form of a codec name, as its aliases table is keyed: "utf_8"."""
    return encodings.normalize_encoding(label).lower()


_CODEC_OF_MODULE = {_module_name(name): name for name in TEXT_CODECS}
_CODEC_OF_ALIAS = {alias: _CODEC_OF_MODULE[module]
                   for alias, module in encodings.aliases.aliases.items()
                   if module in _CODEC_OF_MODULE}
