"""What reading a message gave, kept so that indexing it again need not read it again.

Reading a message (services.archive.extract: MIME parsing, charsets, HTML, attachments,
containers) is most of what indexing it costs. Its result, the Extracted with its text, is
kept in the store's "reading" database (services.archive.store) once the message is
indexed; a reindex (a new index schema, a rebuild) then builds each document from it
instead of from the raw message. A reading is derived data: the raw message stays the
truth, and a reading that is missing, of another READING_VERSION or unreadable is simply
read again from the message.

Kept only for a message with attachments (re-reading mail without them costs little, about
a third of indexing it, while its reading, short text compressed alone, took 1.4 times the
stored mail on the bench corpus), read whole, without errors (a time limit or a memory
limit hit under load may go another way next time; a limit that cut text, its cut kept in
the reading, goes the same way every time). Deleted with its message (Store.delete). A
reading is of the text cap it was read with (the model's attachment_text_kb): a pool of
another cap reads the message again.

Encoding: READING_VERSION as 2 bytes, big-endian, then zstd with its checksum (RFC 8878) of
the JSON of the Extracted's summary, body, attachments, encrypted flag and cut, and the text
cap.
Anything else (damage, a record of another shape) is a StaleReading, never an Extracted.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import struct
import types
import typing

import zstandard

if typing.TYPE_CHECKING:
    from services.archive.extract import Extracted

# The reading classes (services.archive.extract, services.archive.mime) are imported only
# to decode: a mirror client or server that passes readings on as bytes, checking only
# is_current(), need not load the extraction libraries.
__all__ = ["READING_VERSION", "StaleReading", "decode", "encode", "is_current", "pack"]
# Bump it whenever extract() would read a message differently (what it finds, how text is
# cut, summary fields): every kept reading is then read again from its message.
# tests/unit/archive/test_readings.py fails when the reading code changes without a
# decision about this number.
READING_VERSION = 11  # 3: raw 8-bit header bytes read in the declared or detected charset;
                     # the limits that cut text (Extracted.cut, AttachmentText.cut)
                     # 4: white space before a field's colon (RFC 5322 4.5.3) read in the
                     # top-level header block and in each MIME part's
                     # 5: the Resent-To, -Cc, -Bcc recipients (MessageSummary.resent_*,
                     # header_addresses); a reading without them is read again
                     # 6: quoted-printable's soft line breaks after a lone CR, text after
                     # "=<CR>", base64 after a padded chunk (services.archive.transfer_encoding)
                     # 7: an "=" before a joined soft line break, a Content-Transfer-Encoding
                     # with a blank, comment or fold after its token (transfer_encoding),
                     # a soft line break in a header of an encoded attached message,
                     # base64 padding after a quad's first letter skipped, not a run's end
                     # (all session 26, none released); MIME parts past mime_parts'
                     # MAX_PARTS or MAX_DEPTH read as text, the message flagged
                     # 8: of mime_parts' cuts, only a subtree nested deeper than MAX_DEPTH
                     # is text (the parts beside it are read); a message that is itself a
                     # delivery status of more than MAX_PARTS blocks is cut (its blocks
                     # read as text); delimiter lines in an epilogue, or right after
                     # another, are no parts (no false "partly indexed")
                     # 9: uuencoded files (inline begin/end blocks in text parts, parts of
                     # transfer encoding x-uuencode) read as attachments, their lines out
                     # of the body (services.archive.uuencode); the fields of a delivery
                     # status (RFC 3464, RFC 6533's global one) read as body text
                     # 10: past mime_parts.LINE_CHECKS, the text of its cuts and a body
                     # part's body are base64 (the same text), a preamble's or epilogue's
                     # lines left out; delimiter lines right after another count toward
                     # MAX_PARTS (millions of them are cut, their text kept)
                     # 11: an x-uuencode part past LINE_CHECKS read as one (review 156
                     # F2), past a header cut too (review 166 F1); a Content-Type read
                     # as a clean type/subtype or else text/plain (services.archive.
                     # media_types, review h174); HTML's text in an element libxml2
                     # leaves in a head it opened (`<meta ...><o:p>word`) read (extract.
                     # HTML_INVISIBLE, session 39); a TNEF file's title read whole, each
                     # file with its own bytes (containers._tnef_written, review r10 F1);
                     # a .eml sent application/x-eml read as a message (filetypes);
                     # a TNEF title in the stream's code page (containers._title_text),
                     # a damaged TNEF stream's files before the damage, a file without
                     # a title unnamed, one too long for a file name read (services.
                     # archive.tnef_stream, review r11 F1-F5); a .eml found uuencoded or
                     # in a zip a message only by its content (extract.reads_as_message);
                     # a message whose whole body is a message/* sent as a file reads as
                     # that one attached message, an attached message/global as a forward
                     # (mime.whole_body_is_attachment, review r11 F8); an S/MIME
                     # object opened by its DER under any name and type (containers.is_cms);
                     # a read receipt's and an abuse report's fields body text, as a
                     # bounce's (extract.REPORT_TYPES); a TNEF inside more than
                     # MAX_NESTED_CONTAINERS containers not opened, as the other kinds,
                     # and a message's first TOOL_CONTAINERS_OPENED distinct S/MIME and
                     # TNEF objects opened, no more (extract.opens_nested, containers.
                     # ReadBudget.tool_refusal: the views' rules, helper h18); the
                     # body's text cut at the text cap, as an attachment's (extract.
                     # body_cut, was 4 Mi characters at indexing: review r18 F1); a
                     # cut text ends before the word the cap falls in, not inside it
                     # (extract.truncate_on_a_word, review r19 F2); a summary field's
                     # value read to mime.FIELD_VALUE_LIMIT, at most extract.
                     # SUBJECT_TEXT_LIMIT of Subject, ADDRESS_TEXT_LIMIT and
                     # INDEX_ADDRESS_LIMIT of addresses, each cut flagged (session 58);
                     # all attachments' text at most extract.MESSAGE_ATTACHMENT_TEXT_CAPS
                     # caps together (review rv59 D1, session 60)
                     # (10 shipped in a release, 11 not yet: no new number)
_VERSION = struct.Struct(">H")
# The checksum makes damage to a kept reading a StaleReading, where it could else decode
# to other text.
_compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
_decompressor = zstandard.ZstdDecompressor()


class StaleReading(ValueError):
    """A kept reading this code cannot use (another version, or damaged)."""


def encode(extracted: Extracted, cap_bytes: int) -> bytes | None:
    """The reading of a message, extracted with a text cap of `cap_bytes` per attachment,
    as kept (bytes, see the module's docstring), or None when it is not kept: the message
    has no attachments, the reading had errors, or its text was dropped already."""
    if not extracted.attachments or extracted.errors or extracted.text_bytes is not None \
            or extracted.document is not None:
        return None
    return pack(extracted, cap_bytes)


def pack(extracted: Extracted, cap_bytes: int) -> bytes:
    """The bytes kept of a reading (see the module's docstring), whatever it holds."""
    record = {"summary": dataclasses.asdict(extracted.summary), "body": extracted.body,
              "attachments": [dataclasses.asdict(item) for item in extracted.attachments],
              "encrypted": extracted.encrypted, "cut": extracted.cut, "cap_bytes": cap_bytes}
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8",
                                                                               "surrogatepass")
    return _VERSION.pack(READING_VERSION) + _compressor.compress(data)


def is_current(data: bytes) -> bool:
    """Whether a kept reading is of this code's READING_VERSION."""
    return len(data) >= _VERSION.size and _VERSION.unpack_from(data)[0] == READING_VERSION


def decode(data: bytes, cap_bytes: int) -> Extracted:
    """The Extracted a kept reading holds, for a reader whose text cap is `cap_bytes` per
    attachment. Raises StaleReading for another version, another cap, damaged bytes or a
    record of another shape than encode() writes."""
    if not is_current(data):
        raise StaleReading("a reading of another version")
    try:
        record = json.loads(_decompressor.decompress(data[_VERSION.size:])
                            .decode("utf-8", "surrogatepass"))
    except (zstandard.ZstdError, ValueError) as exc:
        raise StaleReading(f"a damaged reading: {type(exc).__name__}: {exc}") from None
    if not _conforms(record, _record_shape()):
        raise StaleReading("a damaged reading: not the shape of a kept reading")
    if record["cap_bytes"] != cap_bytes:
        raise StaleReading(f"a reading cut at {record['cap_bytes']} bytes, not {cap_bytes}")
    from services.archive import mime
    from services.archive.extract import AttachmentText, Extracted
    return Extracted(mime.MessageSummary(**record["summary"]), record["body"],
                     [AttachmentText(**item) for item in record["attachments"]],
                     encrypted=record["encrypted"], cut=record["cut"])


@functools.cache
def _record_shape() -> dict:
    """The shape of a kept reading's JSON record (for _conforms)."""
    from services.archive import mime
    from services.archive.extract import AttachmentText
    return {"summary": mime.MessageSummary, "body": str, "attachments": list[AttachmentText],
            "encrypted": bool, "cut": str | None, "cap_bytes": int}


def _conforms(value, hint) -> bool:
    """Whether the JSON `value` has the shape `hint` says: a dict of exactly these keys, a
    dataclass (its fields' annotations), list[X], dict[K, V], a union, str, int, float
    (an int too), bool or None."""
    if isinstance(hint, dict) or dataclasses.is_dataclass(hint):
        fields = hint if isinstance(hint, dict) else typing.get_type_hints(hint)
        return (isinstance(value, dict) and value.keys() == fields.keys()
                and all(_conforms(value[name], field) for name, field in fields.items()))
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, argument) for argument in arguments)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, arguments[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(key, arguments[0]) and _conforms(item, arguments[1])
            for key, item in value.items())
    if hint is float:
        return type(value) in (int, float)
    return type(value) is hint  # str, int, bool, NoneType: exactly (a bool is no int here)
