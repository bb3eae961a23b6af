"""Bulk import, review 117, zips: a zip inside a zip is inflated once, whatever its
members' order (read by seeking in its member, each one out of order cost the whole inner
zip); members of methods zipfile cannot bound (bzip2, LZMA) fail, named, unread; a stored
or deflated member that understates its size costs no more than it declares."""
import io
import struct
import tracemalloc
import zipfile
import zlib

import pytest

from services.archive.mailfiles import count_mail, iter_mail

MiB = 1024 * 1024


def message(subject: str, body: bytes = b"Hello.\n") -> bytes:
    return f"From: a@example.com\nSubject: {subject}\n\n".encode() + body


# --- A: a zip inside a zip --------------------------------------------------------------

def nested(path, names, order, size, inner_method, outer_method=zipfile.ZIP_DEFLATED):
    inner = io.BytesIO()
    members = {name: message(name, b"x" * size) for name in names}
    ordered = {"name order": names, "reverse": names[::-1],
               "shuffled": names[1::2] + names[::2][::-1]}[order]
    with zipfile.ZipFile(inner, "w", inner_method) as archive:
        for name in ordered:
            archive.writestr(name, members[name])
    with zipfile.ZipFile(path, "w", outer_method) as archive:
        archive.writestr("inner.zip", inner.getvalue())
    return path, members, len(inner.getvalue())


class Inflated:
    """Bytes every zip member stream gives (seeks read through read(): all of them)."""

    def __init__(self, monkeypatch):
        self.bytes = 0
        original = zipfile.ZipExtFile.read

        def read(stream, n=-1):
            data = original(stream, n)
            self.bytes += len(data)
            return data
        monkeypatch.setattr(zipfile.ZipExtFile, "read", read)


@pytest.mark.parametrize("order", ["name order", "reverse", "shuffled"])
@pytest.mark.parametrize("count,size", [(400, 2000), (1500, 100)])
@pytest.mark.parametrize("inner_method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("outer_method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_zip_inside_a_zip_is_inflated_a_bounded_number_of_times(
        tmp_path, monkeypatch, order, count, size, inner_method, outer_method):
    """Read by seeking in its member, each member out of name order inflated the inner zip
    again from its start: members x inner size (2.8 s for 1,000 members of a 32 KB zip,
    tens of minutes for 20,000). Now a count and a read cost a few times what it holds."""
    names = [f"m{n:05d}.eml" for n in range(count)]
    archive, members, inner_size = nested(tmp_path / "n.zip", names, order, size,
                                          inner_method, outer_method)
    inflated = Inflated(monkeypatch)
    assert count_mail([archive]) == count
    items = list(iter_mail([archive]))
    assert [(item.label.partition("#")[2], item.raw) for item in items] == [
        (f"inner.zip#{name}", members[name]) for name in names]
    # Once the inner zip (copied out, for the count and for the read), once each member.
    assert inflated.bytes <= 4 * (inner_size + sum(map(len, members.values())))


@pytest.mark.timeout(120)
def test_twenty_thousand_members_in_reverse_order_in_a_zip_in_a_zip(tmp_path):
    """Quadratic, this took tens of minutes."""
    names = [f"m{n:05d}.eml" for n in range(20_000)]
    archive, members, _ = nested(tmp_path / "n.zip", names, "reverse", 2000,
                                 zipfile.ZIP_STORED)
    assert count_mail([archive]) == 20_000
    assert sum(1 for item in iter_mail([archive]) if item.raw) == 20_000


def test_a_zip_inside_a_stored_zip_beside_a_message_is_read(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("a.eml", message("a"))
    data = inner.getvalue()
    outer = tmp_path / "o.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("inner.zip", data)
        archive.writestr("b.eml", message("b"))
    items = list(iter_mail([outer]))
    assert [item.raw for item in items] == [message("b"), message("a")]
    assert count_mail([outer]) == 2


# --- B: compression methods, honest and lying sizes ---------------------------------------

def raw_zip(path, name: bytes, method: int, compressed: bytes, declared: int, crc: int):
    """A zip of one member whose sizes and CRC are what they are said to be here."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 63, 0, method, 0, 0, crc,
                        len(compressed), declared, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 63, 63, 0, method, 0, 0, crc,
                          len(compressed), declared, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(compressed), 0)
    path.write_bytes(local + compressed + central + end)
    return path


def compressed_by(method: int, data: bytes) -> bytes:
    """`data` as zipfile compresses it for a member of `method`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("x", data)
    with zipfile.ZipFile(buffer) as archive:
        info = archive.getinfo("x")
    return buffer.getvalue()[info.header_offset + 30 + 1:][:info.compress_size]


BOMB = message("bomb", b"\0" * (200 * MiB))
METHODS = {"stored": zipfile.ZIP_STORED, "deflated": zipfile.ZIP_DEFLATED,
           "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("name", ["a.eml", "box"], ids=["one message", "any file"])
def test_members_of_each_method_are_read_or_fail_named(tmp_path, method, name):
    raw = message("honest", b"line\n" * 2000)
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w", METHODS[method]) as writer:
        writer.writestr(name, raw)
        writer.writestr("z.eml", message("z"), compress_type=zipfile.ZIP_DEFLATED)
    items = list(iter_mail([archive]))
    assert count_mail([archive]) == len(items) == 2
    assert items[1].raw == message("z")
    if method in ("stored", "deflated"):
        assert items[0].raw == raw
    else:  # listed as failed, with why: never dropped
        assert items[0].raw is None and items[0].label.endswith(f"#{name}")
        assert items[0].error.startswith(f"compressed with {'LZMA' if method == 'lzma' else method}")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_member_understating_its_size_is_read_in_bounded_memory(tmp_path, method):
    """A 473-byte zip whose bzip2 member said 4 KB inflated 400 MB in memory (zipfile
    inflates bzip2 and LZMA with no bound before cutting to the declared size)."""
    if method == "stored":
        compressed = BOMB[:50 * MiB]
    else:
        compressed = compressed_by(METHODS[method], BOMB)
    declared = 4096
    archive = raw_zip(tmp_path / "bomb.zip", b"a.eml", METHODS[method], compressed, declared,
                      zlib.crc32(BOMB[:declared]))
    tracemalloc.start()  # bytes objects are traced: what zipfile inflates is counted
    try:
        items = list(iter_mail([archive]))
        count = count_mail([archive])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(items) == count == 1
    if method in ("stored", "deflated"):  # a bounded chunk at a time, cut at 4096
        assert items[0].raw == BOMB[:declared]
    else:
        assert items[0].error.startswith("compressed with")
    assert peak < 20 * MiB  # 200 MB inflated at once before


@pytest.mark.parametrize("method,name", [(9, "deflate64"), (50, "method 50"), (98, "PPMd")])
def test_members_of_other_methods_fail_named_and_counted(tmp_path, method, name):
    """Windows writes deflate64 for large files; 7-Zip PPMd on request: zipfile reads
    neither (it raised NotImplementedError when opened); each is listed with its method."""
    raw = message("other method")
    archive = raw_zip(tmp_path / "o.zip", b"a.eml", method, raw, len(raw), zlib.crc32(raw))
    (item,) = iter_mail([archive])
    assert item.raw is None and item.error.startswith(f"compressed with {name} (zip method "
                                                      f"{method})")
    assert count_mail([archive]) == 1
