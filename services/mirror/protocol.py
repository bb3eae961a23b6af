"""What mirrored appliances say to each other, over mutual TLS (services.mirror.trust).

    POST /v1/hello      JSON identity both ways; 409 with the reason when they may not mirror
    POST /v1/messages   a batch of framed messages; 200 only once all are durable on the peer
    POST /v1/audit      the sender's audit head and entries after the anchor the peer
                        holds (services.policy.audit_anchor); the anchor after them

Every request carries the sender's identity in headers, so a peer that was re-flashed to
another firmware between two batches is refused at the next batch, not after a reconnect.
A batch is a sequence of frames: 4-byte length + JSON metadata, 4-byte length + raw bytes,
and when the metadata says "reading": true, 4-byte length + what reading the message gave
on the sender (services.archive.readings, as its store keeps it). Peers run the same
firmware, so the receiver's indexer can build the copy's document from that reading, as a
reindex does, instead of reading the message again; it is derived data, hostile until
read like the rest of the batch: its sandboxed extraction worker decodes it and reads the
message itself when the reading is stale or damaged.

A message's metadata says when the appliance that first archived it received it live
("origin_received", epoch seconds; absent or null for imported mail), so that both peers
count its retention from the same moment (services.policy.retention_clock). A peer of older
firmware neither sends nor reads it: its copies count by the message date, as before.
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import asdict, dataclass
from typing import Iterator

from firmware.compat import SystemIdentity
from firmware.errors import ArchiverError
from firmware.version import FirmwareVersion

PROTOCOL_VERSION = 2  # 2: a message's reading may follow its raw bytes
AUDIT_PATH = "/v1/audit"
HEADER_NODE, HEADER_MODEL, HEADER_VERSION = "X-Archiver-Node", "X-Archiver-Model", "X-Archiver-Firmware"
_LENGTH = struct.Struct(">I")


class ProtocolError(ArchiverError):
    pass


@dataclass(frozen=True)
class Hello:
    node: str
    model: int
    version: str
    protocol: int = PROTOCOL_VERSION

    def identity(self) -> SystemIdentity:
        return SystemIdentity(self.model, FirmwareVersion.parse(self.version))

    def headers(self) -> dict[str, str]:
        return {HEADER_NODE: self.node, HEADER_MODEL: str(self.model),
                HEADER_VERSION: self.version}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> "Hello":
        try:
            return cls(str(doc["node"]), int(doc["model"]), str(doc["version"]),
                       int(doc.get("protocol", PROTOCOL_VERSION)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed hello ({exc})") from None

    @classmethod
    def from_headers(cls, headers) -> "Hello":
        return cls.from_json({"node": headers.get(HEADER_NODE), "model": headers.get(HEADER_MODEL),
                              "version": headers.get(HEADER_VERSION)})


@dataclass(frozen=True)
class MirroredMessage:
    digest: str
    raw: bytes
    sender: str | None
    recipients: list[str]
    origin: str
    from_line_date: float | None = None  # the mbox From_ line's date: evidence of its date
    reading: bytes | None = None  # the sender's reading of it (services.archive.readings)
    # Epoch seconds its first archiving appliance received it live (SMTP, a journal
    # mailbox): where its retention starts (services.policy.retention_clock); None if imported
    origin_received: float | None = None


def encode_batch(messages: list[MirroredMessage]) -> bytes:
    parts = []
    for message in messages:
        meta = {"digest": message.digest, "sender": message.sender,
                "recipients": message.recipients, "origin": message.origin,
                "from_line_date": message.from_line_date,
                "origin_received": message.origin_received}
        if message.reading is not None:
            meta["reading"] = True
        meta_bytes = json.dumps(meta).encode()
        parts += [_LENGTH.pack(len(meta_bytes)), meta_bytes,
                  _LENGTH.pack(len(message.raw)), message.raw]
        if message.reading is not None:
            parts += [_LENGTH.pack(len(message.reading)), message.reading]
    return b"".join(parts)


def decode_batch(body: bytes) -> Iterator[MirroredMessage]:
    """The messages of a batch; refuses a truncated batch or a message whose bytes do not
    match its digest (nothing of such a batch is stored). A reading is passed on as it
    came: only the receiver's extraction worker decodes it."""
    position = 0
    while position < len(body):
        meta_bytes, position = _frame(body, position)
        raw, position = _frame(body, position)
        try:
            meta = json.loads(meta_bytes)
            with_reading = meta.get("reading", False)
            if type(with_reading) is not bool:
                raise TypeError(f"reading must be true or false, not {with_reading!r}")
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            raise ProtocolError(f"malformed message metadata ({exc})") from None
        reading = None
        if with_reading:
            reading, position = _frame(body, position)
        try:
            message = MirroredMessage(meta["digest"], raw, _address_or_none(meta.get("sender")),
                                      _addresses(meta.get("recipients")), _origin(meta["origin"]),
                                      _epoch_or_none(meta.get("from_line_date"),
                                                     "from_line_date"), reading,
                                      _epoch_or_none(meta.get("origin_received"),
                                                     "origin_received"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed message metadata ({exc})") from None
        if hashlib.sha256(raw).hexdigest() != message.digest:
            raise ProtocolError(f"message {message.digest} does not match its digest")
        yield message


# A peer's metadata is hostile until read, like its bytes: the store merges and the indexer
# reads these fields as the strings and numbers SMTP and import give, and a copy whose
# recipients were numbers made every later delivery of the same message fail (451).
ADDRESS_CHARACTERS = 2048  # an SMTP path is at most 256 octets (RFC 5321 4.5.3.1.3)
ORIGIN_CHARACTERS = 256  # a node id is 32 hex digits


def _address_or_none(value) -> str | None:
    return None if value is None else _address(value)


def _address(value) -> str:
    if not isinstance(value, str) or len(value) > ADDRESS_CHARACTERS:
        raise TypeError(f"an address must be a string of at most {ADDRESS_CHARACTERS} "
                        f"characters, not {_shown(value)}")
    return value


def _addresses(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"recipients must be a list of addresses, not {_shown(value)}")
    return [_address(address) for address in value]


def _origin(value) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= ORIGIN_CHARACTERS:
        raise TypeError(f"origin must be a node id (1 to {ORIGIN_CHARACTERS} characters), "
                        f"not {_shown(value)}")
    return value


def _epoch_or_none(value, name: str) -> float | None:
    """`value` (field `name`) as epoch seconds, or None; raises TypeError unless it is a
    finite number or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, not {_shown(value)}")
    return float(value)


def _shown(value) -> str:
    return repr(value)[:80]


def _frame(body: bytes, position: int) -> tuple[bytes, int]:
    if position + _LENGTH.size > len(body):
        raise ProtocolError("truncated batch")
    (length,) = _LENGTH.unpack_from(body, position)
    start = position + _LENGTH.size
    if start + length > len(body):
        raise ProtocolError("truncated batch")
    return body[start:start + length], start + length
