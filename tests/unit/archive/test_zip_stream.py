"""A zip written in one pass to an unseekable stream (services.archive.zip_stream) is read
by Python's zipfile, Info-ZIP's unzip and 7-Zip, with ZIP64 records where more than 65,535
members or offsets past 2 GiB need them, and its spooled central directory leaves no file
behind."""
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from services.archive import zip_stream
from services.archive.zip_stream import ZipStream


class Unseekable:
    """A write-only file, as the web's HTTP response sink is."""

    def __init__(self, file):
        self.file = file

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def flush(self) -> None:
        pass


def checked_by_every_reader(path: Path, seven_zip: bool = True) -> None:
    """zipfile's CRC check, `unzip -t` and (where installed) `7z t` find no error."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    done = subprocess.run(["unzip", "-tqq", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    if seven_zip and shutil.which("7z"):
        done = subprocess.run(["7z", "t", str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and "Everything is Ok" in done.stdout, done.stdout


def members(count: int) -> dict[str, bytes]:
    return {f"messages/{n:06d}.eml": f"Subject: {n}\r\n\r\nbody {n}\r\n".encode() * (n % 3 + 1)
            for n in range(count)}


def write(path: Path, contents: dict[str, bytes], spool: Path) -> ZipStream:
    with path.open("wb") as out, ZipStream(Unseekable(out), spool) as archive:
        for name, data in contents.items():
            archive.add(name, data)
    return archive


def test_members_read_back_byte_exact_by_every_reader(tmp_path):
    contents = {**members(40), "Bericht über Ärger.txt": "Grüße\n".encode() * 5000,
                "empty": b""}
    path = tmp_path / "out.zip"
    write(path, contents, tmp_path)
    checked_by_every_reader(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == list(contents)
        assert {name: archive.read(name) for name in contents} == contents
        info = archive.getinfo("empty")
        assert info.external_attr >> 16 == 0o644 and info.compress_type == zipfile.ZIP_DEFLATED
        assert archive.getinfo("Bericht über Ärger.txt").flag_bits & zip_stream.UTF8_FLAG


def test_a_member_written_as_it_goes_may_pass_what_a_plain_member_holds(tmp_path):
    path = tmp_path / "out.zip"
    with path.open("wb") as out, ZipStream(Unseekable(out), tmp_path) as archive:
        with archive.member("big.mbox", zip64=True) as member:
            for n in range(64):
                member.write(bytes([n]) * 65536)
        archive.add("after", b"after")
    checked_by_every_reader(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.read("big.mbox") == b"".join(bytes([n]) * 65536 for n in range(64))
        assert archive.read("after") == b"after"


@pytest.mark.slow
def test_more_than_65535_members_get_the_zip64_end_records(tmp_path):
    contents = members(zip_stream.MAX_ENTRIES + 1000)
    path = tmp_path / "many.zip"
    assert write(path, contents, tmp_path).entries == len(contents)
    assert b"PK\x06\x06" in path.read_bytes()[-200:]  # ZIP64 end of central directory
    checked_by_every_reader(path)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == len(contents)
        assert archive.read("messages/066534.eml") == contents["messages/066534.eml"]


def test_members_past_4_gib_are_found_by_their_zip64_offsets(tmp_path):
    """A zip that begins 5 GiB into a sparse file: every local header offset, the central
    directory's and the end records' are past 32 bits, as in an export of some 100 GB.
    (7-Zip opens no zip that does not begin with a zip signature, so it is not asked.)"""
    path = tmp_path / "far.zip"
    contents = members(30)
    with path.open("wb") as out:
        out.seek(5 * 2**30)
        with ZipStream(Unseekable(out), tmp_path) as archive:
            archive.offset = out.tell()  # where this zip's first byte lands in the file
            for name, data in contents.items():
                archive.add(name, data)
    checked_by_every_reader(path, seven_zip=False)
    with zipfile.ZipFile(path) as archive:
        assert {info.filename: archive.read(info) for info in archive.infolist()} == contents
        assert min(info.header_offset for info in archive.infolist()) == 5 * 2**30


def test_the_spool_is_unnamed_and_closed_whether_the_zip_ends_or_fails(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()

    class Failing(Unseekable):
        def write(self, data):
            if open_in(spool) == 0:
                raise AssertionError("the central directory is not spooled in its folder")
            raise BrokenPipeError("the client went away")

    with pytest.raises(BrokenPipeError):
        with ZipStream(Failing(None), spool) as archive:
            archive.add("a", b"a")
    assert open_in(spool) == 0 and not list(spool.iterdir())
    write(tmp_path / "ok.zip", members(3), spool)
    assert open_in(spool) == 0 and not list(spool.iterdir())


def open_in(folder: Path) -> int:
    """How many of this process's file descriptors are files in `folder`, named or not."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        found += target.startswith(f"{folder}/")
    return found
