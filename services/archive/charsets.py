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

import encodings
import encodings.aliases
import re

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
    codec = codec_for(label)
    if codec is not None:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            text = data.decode(codec, "replace")
        else:
            if not has_surrogates(text):
                return text
        text = without_surrogates(text)
        if text.count("\ufffd") <= LIE_RATIO * len(data):
            return text
    return decode_unlabelled(data, detect)


# A byte-order mark that starts a document names its encoding whatever its label says
# (WHATWG Encoding Standard, "decode": BOM sniffing, as browsers read it): a UTF-16 part
# labelled ISO-8859-1, or not at all, was read a letter and a NUL by turns, no word of it
# found. WHATWG knows no UTF-32, whose marks begin with UTF-16's (FF FE, then a UTF-16 text
# whose first character is U+0000): UTF-32 is read where the text is valid UTF-32 (UTF-16
# text hardly ever is: two letters of it make a code point past U+10FFFF).
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                    (b"\xfe\xff", "utf-16-be"))
UTF32_MARKS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"))


def decode_document(data: bytes, label: str | None, detect: bool = True) -> str:
    """A whole text (a body part, an attachment) as decode() reads it, unless it starts
    with a byte-order mark (BYTE_ORDER_MARKS, UTF32_MARKS): then in the encoding the mark
    names, the mark left out, bad sequences as U+FFFD. Never raises; linear in len(data)."""
    for mark, codec in UTF32_MARKS:
        if data.startswith(mark):
            try:
                return without_surrogates(data[len(mark):].decode(codec))
            except UnicodeDecodeError:
                break  # no UTF-32: UTF-16's mark and a U+0000
    for mark, codec in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return without_surrogates(data[len(mark):].decode(codec, "replace"))
    return decode(data, label, detect)


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (SURROGATES)."""
    return not text.isascii() and SURROGATES.search(text) is not None


def without_surrogates(text: str) -> str:
    """`text` with every lone surrogate (SURROGATES) replaced by U+FFFD."""
    return SURROGATES.sub("\ufffd", text) if has_surrogates(text) else text


def decode_unlabelled(data: bytes, detect: bool = True) -> str:
    """Bytes of no (or no believable) charset: ASCII, UTF-8, detection, Windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = detected(data) if detect else None
    return without_surrogates(data.decode(codec or FALLBACK, "replace"))


def detected(data: bytes) -> str | None:
    """The text charset python3-charset-normalizer finds in (a sample of) data with some
    confidence (its language coherence), or None."""
    from charset_normalizer import from_bytes  # 0.1 s to import: only where needed
    sample = data[:DETECTION_SAMPLE_BYTES]
    if len(data) > len(sample):
        cut = max(sample.rfind(b"\n"), sample.rfind(b" "))
        sample = sample[:cut] if cut > 0 else sample
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
