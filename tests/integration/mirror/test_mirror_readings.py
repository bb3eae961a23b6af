"""A copy travels with the reading its origin kept of it (services.archive.readings), and
the peer indexes the copy from that reading, as a reindex does; a reading that is damaged
or hostile (any shape, a decompression bomb, nesting no parser survives) is read again
from the message on the peer, in its sandboxed extraction worker, and stops nothing."""
import io
import json

import pytest
import zstandard

from services.archive import readings
from services.archive.archive import Archive
from tests import search_output
from tests.bench import corpus
from tests.integration.mirror_nodes import Node, wait_searchable
from tests.integration.netns import Lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MESSAGES = 60
MARKER = "shippedreadingproof"  # in one copy's reading only, never in any message


def packed(version: bytes, data: bytes) -> bytes:
    return version + zstandard.ZstdCompressor(write_checksum=True).compress(data)


def bomb(version: bytes, size: int) -> bytes:
    """A reading whose frame says it holds `size` bytes of JSON (all but a few of them
    one string): decoding it needs more memory than an extraction worker may have."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(write_checksum=True).stream_writer(
            out, size=size, closefd=False) as writer:
        writer.write(b'{"body": "')
        chunk, left = b"x" * (1 << 20), size - len(b'{"body": "') - 2
        while left > 0:
            writer.write(chunk[:left])
            left -= min(left, len(chunk))
        writer.write(b'"}')
    return version + out.getvalue()


def hostile(good: bytes, cap: int) -> list[bytes]:
    """Readings of this firmware's version that are no reading of the message."""
    version, record = good[:2], json.loads(zstandard.decompress(good[2:]))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    return [
        version + b"not a zstd frame",
        good[:len(good) // 2],
        bytes(flipped),
        packed(version, b"\xff\xfe no JSON"),
        packed(version, b"[1, 2, 3]"),
        packed(version, json.dumps({k: v for k, v in record.items() if k != "body"}).encode()),
        packed(version, json.dumps({**record, "added": True}).encode()),
        packed(version, json.dumps({**record, "body": 42}).encode()),
        packed(version, json.dumps({**record, "attachments": {"a": 1}}).encode()),
        packed(version, json.dumps({**record, "cap_bytes": cap // 2}).encode()),
        packed(version, b'{"summary": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
        bomb(version, 768 * 1024 * 1024),
    ]


def kept_readings(node: Node) -> dict[str, bytes | None]:
    archive = Archive(node.data)
    try:
        return {digest: archive.store.reading(digest) for digest in archive.store.digests()}
    finally:
        archive.close()


def hits(node: Node, query: str) -> list[str]:
    found = node.cli("search", query, "--json", "--limit", "1000").stdout
    return sorted(search_output.digests(found))


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """a archives and indexes a bench corpus while b is down; then one of a's kept readings
    gets a word its message lacks and others are made hostile; then b starts and takes
    the copies. Yields both nodes (stopped after the module), a's readings as first kept,
    the marked digest, the hostile digests and how many hostile variants there are."""
    tmp_path = tmp_path_factory.mktemp("readings")
    maildir = tmp_path / "mail"
    corpus.generate(maildir, MESSAGES, seed=5)
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b), b.join(a)
        try:
            a.start()
            a.cli("import", "--no-index", "--json", maildir)
            wait_searchable(a, MESSAGES)
            original = {digest: reading for digest, reading in kept_readings(a).items()
                        if reading is not None}
            archive = Archive(a.data)
            cap = archive.profile.attachment_text_bytes
            marked, *others = sorted(original)
            variants = hostile(original[marked], cap)
            assert len(others) >= len(variants), "the corpus has too few attachments"
            changed = {digest: variant for digest, variant in zip(others, variants)}
            reading = readings.decode(original[marked], cap)
            reading.body += f" {MARKER}"
            changed[marked] = readings.encode(reading, cap)
            archive.store.record_indexed(None, {}, readings=changed)
            archive.close()
            b.start()
            wait_searchable(b, MESSAGES, timeout=600)
            assert b.process.poll() is None and a.process.poll() is None
            yield {"a": a, "b": b, "original": original, "marked": marked,
                   "hostile": sorted(set(changed) - {marked}), "variants": len(variants)}
        finally:
            a.stop(), b.stop()


def test_the_peer_indexes_a_copy_from_the_reading_its_origin_sent(copied):
    a, b, original, marked = (copied[key] for key in ("a", "b", "original", "marked"))
    assert hits(b, MARKER) == [marked]  # the word is in the reading, not in the message
    assert hits(a, MARKER) == []
    kept = kept_readings(b)
    assert kept[marked] is not None and MARKER in readings.decode(kept[marked], 1 << 20).body
    untouched = set(original) - {marked} - set(copied["hostile"])
    assert untouched and all(kept[digest] == original[digest] for digest in untouched)
    for word in corpus.MARKERS:  # in bodies, subjects, HTML and every kind of attachment
        assert hits(b, word) == hits(a, word)


def test_a_hostile_reading_is_read_again_from_the_message_on_the_peer(copied):
    a, b, original = copied["a"], copied["b"], copied["original"]
    kept = kept_readings(b)
    assert len(copied["hostile"]) == copied["variants"]
    # b read each message itself and kept its own reading: the origin's, before the change
    for digest in copied["hostile"]:
        assert kept[digest] == original[digest]
        assert not b.cli("show", digest, "--json").stdout.count("extraction_failures")
    assert b.digests() == a.digests()
