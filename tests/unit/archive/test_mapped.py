"""services.archive.mapped: this process's file-backed resident memory, and letting go of
the pages of a file mapped in for reading."""
import mmap
import os

from services.archive import mapped


def status_kb(name: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} in /proc/self/status")


def test_resident_file_bytes_grows_with_a_file_read_through_a_map_and_falls_when_released(
        tmp_path):
    path = tmp_path / "pages"
    path.write_bytes(os.urandom(16 * 1024 * 1024))
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as view:
        before = mapped.resident_file_bytes()
        assert abs(before // 1024 - status_kb("RssFile") - status_kb("RssShmem")) < 1024
        total = sum(view[offset] for offset in range(0, len(view), mmap.PAGESIZE))
        grown = mapped.resident_file_bytes()
        assert grown - before >= 15 * 1024 * 1024
        assert mapped.release(path) >= 16 * 1024 * 1024
        assert mapped.resident_file_bytes() < before + 1024 * 1024
        # The pages come back unchanged when read again.
        assert sum(view[offset] for offset in range(0, len(view), mmap.PAGESIZE)) == total


def test_mapping_made_by_finds_the_mapping_its_call_made_and_releases_only_that(tmp_path):
    """A file mapped twice (as a second LMDB environment of one store would be): the
    ranges found are the second map's, and releasing them leaves the first one's pages."""
    size = 16 * 1024 * 1024
    path = tmp_path / "pages"
    path.write_bytes(os.urandom(size))
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as first:
        second, ranges = mapped.mapping_made_by(
            path, lambda: mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ))
        with second:
            assert [end - start for start, end in ranges] == [size]
            assert len(mapped.mappings_of(path)) == 2
            before = mapped.resident_file_bytes()
            for view in (first, second):
                sum(view[offset] for offset in range(0, size, mmap.PAGESIZE))
            assert mapped.resident_file_bytes() - before >= 2 * size - 1024 * 1024
            assert mapped.release_ranges(ranges) == size
            left = mapped.resident_file_bytes() - before
            assert size - 1024 * 1024 <= left <= size + 1024 * 1024  # the first map's pages
