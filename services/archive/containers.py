"""The files inside the containers mail carries: Outlook TNEF (winmail.dat, [MS-OXTNEF]),
zip archives (PKWARE APPNOTE), S/MIME CMS objects (RFC 5652, RFC 8551).

Everything here reads a stranger's bytes inside the extraction worker, within a ReadBudget
(how many members and how many expanded bytes one message may cost): a zip bomb, a TNEF file
claiming gigabytes or a member count in the millions ends as a problem of that container,
never as memory the worker does not have.

TNEF is unpacked by Debian's `tnef` tool (no Debian library reads TNEF); S/MIME signed-data
is unwrapped by `openssl cms` (cryptography 38 signs PKCS #7 but cannot read it).
"""
from __future__ import annotations

import hashlib
import io
import lzma
import os
import secrets
import tempfile
import threading
import urllib.parse
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.archive import (charsets, cms_der, file_bytes, tnef_stream, tools,
                              zip_members_bounded)

MAX_MEMBERS = 500                       # members listed per container
MEMBER_READ_BYTES = 32 * 1024 * 1024    # one member is read up to here, the rest is skipped
MESSAGE_READ_BYTES = 128 * 1024 * 1024  # expanded bytes read from all containers of a message
ZIP_CHUNK_BYTES = 1 << 20  # a zip member is counted in chunks of this many bytes (expanded)
# MIME attachments read per message, forwarded messages' included: each costs a libmagic
# sniff and its reader (~0.3 ms for a tiny one), so 60,000 tiny parts in a 5.5 MB message
# took the worker's whole time limit; real mail stays far below. Files uuencoded in its
# body text or in an x-uuencode attachment take from this count too. Numbering: a file's
# number is its place among all the message's files in mime's order (the comment above
# mime.UUENCODED_FILES_LISTED); extraction (and so `show`) has the first of them this count
# lets it read, under those numbers in the web too, and the web lists and serves those past
# it as well, under their own places' numbers (what is stored stays downloadable).
MESSAGE_ATTACHMENTS = 1000
TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")
CMS_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
# Distinct container contents one message has a tool process open (`openssl cms` for
# signed-data, `tnef`), by the indexer and by each view alike (ReadBudget.tool_refusal): a
# run costs 20-50 ms (openssl) or 4-10 ms (tnef) on the appliance's 2 cores; 32 keeps a
# hostile message near a second (1,000 signed objects took 25-50 s, review r9 F4), far
# above the few a real message carries. Those past it are the files they are, said so.
TOOL_CONTAINERS_OPENED = 32
TOOL_KINDS = ("signed-data", "tnef")  # container kinds a tool process opens
# DER of the CMS content-type OIDs (RFC 5652 section 3 ff., RFC 5083): 1.2.840.113549.1.7.x
# and 1.2.840.113549.1.9.16.1.23.
CMS_OID_PREFIX = bytes.fromhex("06092a864886f70d0107")
CMS_KINDS = {2: "signed-data", 3: "enveloped-data", 6: "encrypted-data"}
CMS_AUTH_ENVELOPED = bytes.fromhex("060b2a864886f70d0109100117")
CMS_COMPRESSED = bytes.fromhex("060b2a864886f70d0109100109")  # RFC 3274 id-ct-compressedData
CMS_COPY_BYTES = 1 << 20  # a signed-data object's bytes copied at once (to openssl, read)


@dataclass
class Member:
    """A file found in a container: its name (None: it has none, as a TNEF file without a
    title), its bytes: `data`, or for a zip's member (read once, let go) read again by
    `read_again`; content() gives either, None when it was not read (problem says why)."""
    name: str | None
    data: bytes | None
    problem: str | None = None
    encrypted: bool = False
    # For a member read once and let go (a zip's: zip_members): reads its bytes again.
    read_again: Callable[[], bytes] | None = None

    def readable(self) -> bool:
        return self.data is not None or self.read_again is not None

    def content(self) -> bytes | None:
        """Its bytes (read from its container again if it was let go), None if unread."""
        return self.read_again() if self.read_again is not None else self.data


class ReadBudget:
    """What one message may still expand: bytes read out of containers, members listed, and
    text taken from them (the caller spends text_bytes)."""

    def __init__(self, text_bytes: int, read_bytes: int = MESSAGE_READ_BYTES,
                 members: int = 4 * MAX_MEMBERS, attachments: int = MESSAGE_ATTACHMENTS):
        self.text_bytes, self.read_bytes, self.members = text_bytes, read_bytes, members
        self.attachments = attachments  # MIME attachments it may still read
        self.attachments_passed = 0  # MIME attachments left unread for want of that
        self.tool_opened: set[tuple[str, str]] = set()  # (kind, SHA-256) a tool opened
        self.unread_text = None  # extract's UnreadText of the body being read (it sets it)

    def tool_refusal(self, kind: str, sha256_hex: str) -> str | None:
        """Why the container of `kind` (TOOL_KINDS: "signed-data", "tnef") whose content has
        this SHA-256 (hex) is not opened by its tool for this message, or None: then it
        counts, once a content, towards TOOL_CONTAINERS_OPENED."""
        key = (kind, sha256_hex)
        if key in self.tool_opened:
            return None
        if len(self.tool_opened) >= TOOL_CONTAINERS_OPENED:
            return (f"not opened: a message's first {TOOL_CONTAINERS_OPENED} distinct "
                    "S/MIME and TNEF objects are opened, no more; download it")
        self.tool_opened.add(key)
        return None

    def read_limit(self) -> int:
        return max(0, min(MEMBER_READ_BYTES, self.read_bytes))

    def spend(self, read_bytes: int) -> None:
        self.read_bytes -= read_bytes
        self.members -= 1


def zip_members(source: bytes | BinaryIO, budget: ReadBudget
                ) -> tuple[list[Member], str | None]:
    """The files of a zip archive (its bytes, or a seekable binary file of them) and a
    problem of the archive as a whole (or None). Members are read through zipfile's
    streaming reader and cut at the read limit, so a member that lies about its size costs
    no more than one that does not. Each is read here, its size spent from the budget,
    and let go: Member.content() reads it again, so that a reader holds one member at a
    time, not all of them (seven of 10 MiB were 70 MiB beside the archive). Raises
    ValueError when `source` is not a readable zip."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            OverflowError) as exc:  # (OverflowError: an offset past 2**63, ZIP64's)
        raise ValueError(f"not a readable zip archive: {exc}") from None
    members, problem = [], None
    files = [info for info in archive.infolist() if not info.is_dir()]
    if len(files) > MAX_MEMBERS:
        problem = f"{len(files)} members; the first {MAX_MEMBERS} are listed"
    for info in files[:MAX_MEMBERS]:
        if budget.members <= 0:
            problem = "too many members in this message's containers; the rest are not listed"
            break
        members.append(_zip_member(archive, info, budget))
    return members, problem


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: ReadBudget) -> Member:
    if info.flag_bits & 0x1:
        budget.spend(0)
        return Member(info.filename, None, "encrypted (password-protected zip member)",
                      encrypted=True)
    limit = budget.read_limit()
    if info.file_size > limit:
        budget.spend(0)
        return Member(info.filename, None,
                      f"not read: {info.file_size} bytes uncompressed, over the {limit}-byte limit")
    try:
        size = _member_size(archive, info, limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError, zlib.error, lzma.LZMAError, OverflowError) as exc:
        budget.spend(0)
        return Member(info.filename, None, f"cannot read this member: {exc}"[:300])
    budget.spend(size)
    if size > limit:  # the header understated the size: a bomb
        return Member(info.filename, None, f"not read: expands past the {limit}-byte limit")
    return Member(info.filename, None, read_again=lambda: _member_bytes(archive, info, size))


def _member_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, most: int) -> int:
    """How many bytes the member expands to, counted up to `most` a chunk at a time."""
    size = 0
    with zip_members_bounded.open_member(archive, info) as stream:
        while size < most:
            chunk = stream.read(min(ZIP_CHUNK_BYTES, most - size))
            if not chunk:
                break
            size += len(chunk)
    return size


def _member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes:
    """The member's first `size` bytes (all of it: _member_size counted them), read again
    as they were (its CRC checked again at its end)."""
    with zip_members_bounded.open_member(archive, info) as stream:
        return stream.read(size)


def tnef_contents(data: bytes, budget: ReadBudget) -> tuple[Member | None, list[Member]]:
    """The message body (a Member named body.txt, .rtf or .html) and the attached files of
    a TNEF stream, unpacked by the `tnef` tool within the read budget. Raises
    tools.ToolFailed when tnef cannot read it."""
    body, files, _ = tnef_read(data, budget)
    return body, files


def tnef_read(data: bytes | BinaryIO, budget: ReadBudget, sha256_hex: str | None = None
              ) -> tuple[Member | None, list[Member], str | None]:
    """tnef_contents(), and a problem of the stream as a whole (or None): where it is
    damaged or where `tnef` stopped (the files before are read: tnef_stream), files left
    out because the stream has more than MAX_MEMBERS or the message's containers more
    than their budget of members, as zip_members says of a zip. `data`: the stream's bytes,
    or a seekable binary file of them (a large attachment's Base64File), given to tnef a
    chunk at a time, with their SHA-256 (64 hex digits) when known. A file of
    READ_WHEN_ASKED_BYTES or more is read when its Member's content() is (as a zip's
    member): a reader holds one such file at a time, not all of them."""
    body, files = None, []
    source = data if isinstance(data, bytes) else file_bytes.FileBytes(data)
    unpacked = _tnef_files(source, budget.read_limit(), sha256_hex)
    problems = [unpacked.problem] if unpacked.problem else []
    if unpacked.count > MAX_MEMBERS:
        problems.append(f"{unpacked.count} files; the first {MAX_MEMBERS} are listed")
    for title, body_extension, content in unpacked.files:
        if budget.members <= 0:
            problems.append("too many members in this message's containers; "
                            "the rest are not listed")
            break
        content = _capped(content, budget)
        if body_extension is not None:
            body = Member("body" + body_extension, _written_bytes(content))
        else:
            files.append(_tnef_member(title, content))
    return body, files, "; ".join(problems) or None


def _tnef_member(title: str | None, content: bytes | _Written | None) -> Member:
    """The Member of a file tnef wrote, as _capped left its content."""
    if content is None:
        return Member(title, None, "not read: over the size limit")
    if isinstance(content, _Written):
        return Member(title, None, read_again=content.read)
    return Member(title, content)


@dataclass
class _Written:
    """A file `tnef` wrote, read when asked (read()): one of READ_WHEN_ASKED_BYTES or
    more, kept open (`file`) after its directory is removed; or one over the read limit,
    never written (tnef_stream's over_limit stand-in), `file` None. `size`: its bytes up to
    the read limit and one more, as many as _unpack_tnef would have read of it."""
    size: int
    file: BinaryIO | None

    def read(self) -> bytes:
        """Its `size` bytes, from its start. Raises ValueError for one never written."""
        if self.file is None:
            raise ValueError("a file over the read limit is not read")
        return os.pread(self.file.fileno(), self.size, 0)


def _written_bytes(content: bytes | _Written | None) -> bytes | None:
    return content.read() if isinstance(content, _Written) else content


@dataclass
class _Unpacked:
    """What `tnef` unpacked: how many files it wrote (the body among them), the first
    MAX_MEMBERS of them as (title or None, the body's extension or None for a file, its
    bytes up to the read limit and one more, or a _Written of them), and why it read no
    further (or None)."""
    count: int
    files: list[tuple[str | None, str | None, bytes | _Written]]
    problem: str | None = None

    def size(self) -> int:
        return sum(_size(content) for _, _, content in self.files)


def _size(content: bytes | _Written) -> int:
    return content.size if isinstance(content, _Written) else len(content)


# A file tnef wrote of at least this many bytes is read when its text is (_Written), not
# at once: seven of 10 MiB were 70 MiB beside the message. Above TOOL_MEMO's largest
# result (a tenth of TOOL_MEMO_BYTES), so that no result the memo keeps holds a file open.
READ_WHEN_ASKED_BYTES = 1 << 20


def _tnef_files(data: bytes | file_bytes.FileBytes, limit: int,
                sha256_hex: str | None = None) -> _Unpacked:
    """The files `tnef` unpacks from data (at most `limit` bytes each, the rest of a file
    left for _capped to refuse), read once per content (TOOL_MEMO, by its SHA-256:
    `sha256_hex` when given, else computed). Raises tools.ToolFailed when it unpacks
    none."""
    key = ("tnef", _digest(data, sha256_hex), limit)
    return TOOL_MEMO.result(key, lambda: _unpack_tnef(data, limit), _Unpacked.size)


def _digest(data: bytes | file_bytes.FileBytes, sha256_hex: str | None) -> bytes:
    """The SHA-256 of `data` (32 bytes): `sha256_hex`'s when given, else computed (of a
    FileBytes a chunk at a time)."""
    if sha256_hex:
        return bytes.fromhex(sha256_hex)
    if isinstance(data, bytes):
        return hashlib.sha256(data).digest()
    digest = hashlib.sha256()
    for chunk in file_bytes.spliced_chunks(data, [(0, len(data))], tnef_stream.COPY_BYTES):
        digest.update(chunk)
    return digest.digest()


def _unpack_tnef(data: bytes | file_bytes.FileBytes, limit: int) -> _Unpacked:
    """_tnef_files() of the stream as tnef_stream prepares it, fed to tnef a chunk at a
    time. tnef's --maxsize refuses an allocation past it: the stream's own size bounds
    every file in it (only a compressed RTF body grows, read here only when the message
    has no other), so one file over the read limit is written and refused alone
    (_capped), not the stream with it; an attachment's data over the limit is not even
    given to tnef (tnef_stream's over_limit), but known to be over it."""
    stream = tnef_stream.prepared(data, limit)
    body_name = "body-" + secrets.token_hex(8)  # a name no attachment in the file can take
    with tempfile.TemporaryDirectory(prefix="archiver-tnef-") as directory:
        out = Path(directory) / "files"
        out.mkdir()
        try:
            listing, _ = tools.run_in(Path(directory), [
                "tnef", "--file=-", f"--directory={out}", f"--save-body={body_name}",
                "--body-pref=THR", "--number-backups", "--ignore-checksum",
                f"--maxsize={max(len(data), limit, 1)}", "--verbose"],
                stream.chunks(), stdin=True)
            stopped = None
        except tools.ToolFailed as failure:  # what it wrote before is read all the same
            listing, stopped = failure.output, str(failure).replace(f"{out}{os.sep}", "")
        written = _tnef_written(listing, out, stream)
        if stopped is not None and not written:
            raise tools.ToolFailed(stopped)
        files = []
        for title, path in written[:MAX_MEMBERS]:
            is_body = os.path.basename(path).startswith(body_name)
            files.append((title, os.path.splitext(path)[1].lower() if is_body else None,
                          _written_content(path, limit, stream.over_limit)))
        problems = [stream.damage] + ([f"unpacked up to here: {stopped}"] if stopped else [])
        return _Unpacked(len(written), files, "; ".join(filter(None, problems)) or None)


def _written_content(path: Path, limit: int, over_limit: bytes | None) -> bytes | _Written:
    """A file tnef wrote: its bytes up to `limit` and one more; a _Written of them when
    they are READ_WHEN_ASKED_BYTES or more (the file kept open), or when the file is the
    walk's `over_limit` stand-in (an attachment's data over the limit)."""
    handle = open(path, "rb")  # noqa: SIM115 - kept open by a _Written, else closed here
    size = min(os.fstat(handle.fileno()).st_size, limit + 1)
    if size >= READ_WHEN_ASKED_BYTES:
        return _Written(size, handle)
    with handle:
        content = handle.read(limit + 1)
    return _Written(limit + 1, None) if content == over_limit else content


def _tnef_written(listing: bytes, out: Path, stream: tnef_stream.Prepared
                  ) -> list[tuple[str | None, Path]]:
    """(title, path) of each file `tnef` wrote into `out`, in the order it wrote them.

    `tnef --verbose` prints "title\t|\tpath\t|\ttype\t|\t" and a line break per file,
    but a title (and a type) is the sender's and may hold "\t|\t" and line breaks: split
    on them, one file's title could name another's bytes, or hide a file. So each file is
    found by what the sender cannot write: its path, which tnef made of the title with
    every control, "|", "/", "%" and the like %XX-escaped (its sanitize_filename), in a
    directory of a random name. The title is what the listing prints just before that
    path: the file name unescaped, less the ".N" tnef numbers a second file of one name
    with (--number-backups) when that is what the listing says; a stand-in title
    (tnef_stream) gives back the title it stands for; decoded as _title_text says."""
    anchors = {}
    for name in os.listdir(os.fsencode(out)):
        at = listing.find(b"\t|\t" + os.fsencode(out / os.fsdecode(name)) + b"\t|\t")
        anchors[name] = at if at >= 0 else len(listing)  # unlisted: last, by its name
    found = []
    for name in sorted(anchors, key=lambda name: (anchors[name], name)):
        path = out / os.fsdecode(name)
        if path.is_file() and not path.is_symlink():
            title = _tnef_title(listing[:anchors[name]], name)
            title = stream.titles.get(title, title)  # a stand-in: what it stands for
            found.append((None if title is None else _title_text(title, stream.codec), path))
    return found


def _tnef_title(before: bytes, name: bytes) -> bytes:
    """The title of the file tnef wrote as `name`, which `before` (the listing up to its
    path) ends with (see _tnef_written); the name unescaped when the listing has none."""
    title = urllib.parse.unquote_to_bytes(name)
    stem, dot, number = title.rpartition(b".")
    for candidate in (title, stem if dot and number.isdigit() else None):
        if candidate and before.endswith(candidate):
            return candidate
    return title


# Code pages whose text is 7-bit, shifted by escapes: valid UTF-8 as it stands.
SHIFTED_CODECS = ("iso2022_jp", "iso2022_jp_ext", "iso2022_kr", "hz")


def _title_text(title: bytes, codec: str | None) -> str:
    """A title as text: UTF-8 where it is UTF-8 (tnef writes a MAPI Unicode name so), else
    by `codec`, the stream's code page (attAttachTitle and 8-bit MAPI names are in it),
    else UTF-8 with replacement. In a code page of escapes (ISO-2022-JP...), a title
    holding its escapes is read by it first."""
    if codec in SHIFTED_CODECS and (b"\x1b" in title or b"~{" in title):
        try:
            return title.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        return title.decode("utf-8")
    except UnicodeDecodeError:
        return charsets.without_surrogates(title.decode(codec or "utf-8", "replace"))


def _capped(content: bytes | _Written, budget: ReadBudget) -> bytes | _Written | None:
    """content as read within the budget: None past its read limit, spending none of it
    (as a zip member whose size says it is over: what is refused is not kept, and the
    files after it are read within what is left, review r11 F2)."""
    size = _size(content)
    fits = size <= budget.read_limit()
    budget.spend(size if fits else 0)
    return content if fits else None


def cms_kind(data: bytes, smime_type: str | None) -> str | None:
    """"signed-data", "enveloped-data", "authenveloped-data", "encrypted-data" or
    "compressed-data" for a CMS object, from the content type OID at the start of its DER
    (of PEM too: cms_der.der_of); where the DER names none, the smime-type parameter (RFC
    8551 3.2.2), lowercased: a sender's label, which the content overrules as a declared
    type is (review r14 F1); None when neither says."""
    head = cms_der.der_of(data)[:64]
    if CMS_AUTH_ENVELOPED in head:
        return "authenveloped-data"
    if CMS_COMPRESSED in head:
        return "compressed-data"
    at = head.find(CMS_OID_PREFIX)
    if at >= 0 and at + len(CMS_OID_PREFIX) < len(head):
        kind = CMS_KINDS.get(head[at + len(CMS_OID_PREFIX)])
        if kind is not None:
            return kind
    return smime_type.strip().lower() if smime_type else None


def is_sealed(kind: str | None) -> bool:
    """Whether a CMS object of `kind` (cms_kind) needs a key to read: any kind named but
    signed-data, a certificates-only bundle and compressed data (enveloped, authEnveloped,
    encrypted data, and what a sender's smime-type calls otherwise)."""
    return kind is not None and kind not in ("signed-data", "certs-only", "compressed-data")


def holds_no_content(data: bytes, kind: str | None) -> bool:
    """Whether a CMS object of `kind` (cms_kind) is a plain file, nothing to open: a
    certificates-only bundle (RFC 8551 3.7, .p7c) or a detached signature (smime.p7s of a
    multipart/signed message, 3.5), signed-data without its content (cms_der)."""
    return kind == "certs-only" or (
        kind == "signed-data" and cms_der.carries_content(cms_der.der_of(data)) is False)


def is_cms(data: bytes) -> bool:
    """Whether `data` is a DER-encoded CMS ContentInfo (RFC 5652 3: a SEQUENCE whose first
    element is the content type OID) to open: enveloped or encrypted (said encrypted), or
    signed-data carrying the entity it signs (an opaque .p7m), however it is named or
    declared. libmagic cannot tell one (it answers application/octet-stream), so a signed
    message in a zip, or sent as application/octet-stream, would go unopened. The OID must
    come right after the SEQUENCE's length: a PKCS #12 file (a version first) or other DER
    that merely holds a CMS OID is not one; nor is signed-data without its content
    (holds_no_content), a plain file wherever it is."""
    kind = _content_info_kind(data)
    if kind is None or kind == "authenveloped-data":
        return kind is not None
    return not holds_no_content(data, kind)


def may_be_cms(start: bytes) -> bool:
    """Whether content that begins with `start` (its first SNIFF_BYTES or more) may be one
    is_cms opens: its first element is a CMS content type; what else is_cms asks needs
    the whole content."""
    return _content_info_kind(start) is not None


def _content_info_kind(data: bytes) -> str | None:
    """The CMS content type the ContentInfo `data` begins with names (CMS_KINDS' name, or
    "authenveloped-data"), None when its first element is none of those."""
    content_type = cms_der.first_element(data, len(CMS_AUTH_ENVELOPED))
    kind = content_type[len(CMS_OID_PREFIX):len(CMS_OID_PREFIX) + 1]  # its last arc
    if content_type.startswith(CMS_AUTH_ENVELOPED):
        return "authenveloped-data"
    if not (content_type.startswith(CMS_OID_PREFIX) and len(kind) == 1 and kind[0] in CMS_KINDS):
        return None
    return CMS_KINDS[kind[0]]


def signed_content(data: bytes | BinaryIO, sha256_hex: str | None = None) -> bytes:
    """The content of an opaque CMS signed-data object (the MIME entity that was signed),
    without verifying the signature: archiving reads, it does not vouch; read once per
    content (TOOL_MEMO). `data`: its bytes, or a seekable binary file of them (a large
    attachment's Base64File: _content_read_through), with their SHA-256 (64 hex digits)
    when known. At most tools.OUTPUT_BYTES of it. Raises tools.ToolFailed when openssl
    cannot read it."""
    source = data if isinstance(data, bytes) else file_bytes.FileBytes(data)
    key = ("cms", _digest(source, sha256_hex))
    return TOOL_MEMO.result(key, lambda: _unwrap_signed(source), len)


def _unwrap_signed(data: bytes | file_bytes.FileBytes) -> bytes:
    """What `openssl cms` reads out of signed-data `data` (as DER, else as PEM), of a
    FileBytes as _content_read_through reads it."""
    if isinstance(data, file_bytes.FileBytes):
        return _content_read_through(data)
    return _openssl_content(data)


def _openssl_content(source: bytes | file_bytes.FileBytes,
                     pieces: list[tuple[int, int] | bytes] | None = None) -> bytes:
    """The content `openssl cms` reads out of signed-data: of `source`, or of the `pieces`
    of it (file_bytes.spliced_chunks), written to its input a chunk at a time. Raises
    tools.ToolFailed when it reads it neither as DER nor as PEM (the PEM reading's)."""
    for form in ("DER", "PEM"):
        data = source if isinstance(source, bytes) and pieces is None else \
            file_bytes.spliced_chunks(source, pieces or [(0, len(source))], CMS_COPY_BYTES)
        try:
            stdout, _ = tools.run(["openssl", "cms", "-verify", "-noverify", "-nosigs",
                                   "-binary", "-inform", form, "-in", "{input}"], data)
            return stdout
        except tools.ToolFailed as failure:
            problem = failure
    raise problem


def _content_read_through(der: file_bytes.FileBytes) -> bytes:
    """_unwrap_signed() of a large object read through a file: openssl reads it with its
    eContent replaced by a token of this reading (cms_der.stand_in: openssl -nosigs checks
    no digest) and, when it reads that token out, the content is the eContent's own bytes,
    read here (the first tools.OUTPUT_BYTES, all that openssl's output would have kept).
    Given a 70 MiB object whole, openssl held it twice and its output was in the worker
    beside the message. Where cms_der cannot find the eContent, or openssl fails on the
    stand-in, it reads the whole object, for its own verdict."""
    token = b"archiver-content-" + secrets.token_hex(16).encode("ascii")
    content = cms_der.content_of(der)
    pieces = None if content is None else cms_der.stand_in(der, content, token)
    if pieces is not None:
        try:
            if _openssl_content(der, pieces) == token:
                return _runs_read(der, content.runs, tools.OUTPUT_BYTES)
        except tools.ToolFailed:
            pass
    return _openssl_content(der)


def _runs_read(source: file_bytes.FileBytes, runs: list[tuple[int, int]], most: int) -> bytes:
    """The bytes of `runs` ((start, end) each) of `source`, joined, the first `most` of
    them."""
    joined = io.BytesIO()
    for start, end in runs:
        end = min(end, start + most - joined.tell())
        for chunk in file_bytes.spliced_chunks(source, [(start, end)], CMS_COPY_BYTES):
            joined.write(chunk)
    return joined.getvalue()


class ToolMemo:
    """What a tool process (openssl, tnef) made of a content, by the content's SHA-256:
    the same container again (1,000 copies of one signed-data object in a message, the
    same winmail.dat in every message of a thread) costs its process once, as the design
    asks of a hostile attachment (review r9 F4); a failure is remembered too. Least
    recently used results go first, past `max_bytes` of them in all; a result larger than
    a tenth of that is not kept. Thread-safe (the web lists in threads); one per process
    (each extraction worker, the web)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.held_bytes = max_bytes, 0
        self._results: OrderedDict = OrderedDict()  # key -> (result or ToolFailed, bytes)
        self._lock = threading.Lock()

    def result(self, key, run, size_of):
        """run()'s result for `key`, from memory when known; raises what run() raised
        (tools.ToolFailed, remembered too). size_of(result): its bytes."""
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                found = self._results[key][0]
                if isinstance(found, tools.ToolFailed):  # (a new one: a raise adds its
                    raise tools.ToolFailed(*found.args)  # traceback to the old one's)
                return found
        try:
            found = run()
        except tools.ToolFailed as failure:
            self._keep(key, failure, len(str(failure)))
            raise
        self._keep(key, found, size_of(found))
        return found

    def _keep(self, key, found, size: int) -> None:
        if size > self.max_bytes // 10:
            return
        with self._lock:
            if key not in self._results:
                self._results[key] = (found, size)
                self.held_bytes += size
            while self.held_bytes > self.max_bytes:
                _, (_, dropped) = self._results.popitem(last=False)
                self.held_bytes -= dropped


TOOL_MEMO_BYTES = 8 * 1024 * 1024  # a small share of an extraction worker's memory limit
TOOL_MEMO = ToolMemo(TOOL_MEMO_BYTES)
