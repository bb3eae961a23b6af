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
        assert mapped.release_ranges(mapped.mappings_of(path)) >= 16 * 1024 * 1024
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


def test_releasing_a_range_that_is_no_longer_mapped_advises_nothing_and_does_not_raise():
    with mmap.mmap(-1, 4 * mmap.PAGESIZE) as scratch:
        ranges = [(start, end) for start, end in [_address_range(scratch)]]
    assert mapped.release_ranges(ranges) == 0  # munmapped: madvise fails with ENOMEM


def test_a_store_closes_only_while_no_store_is_opening(tmp_path, monkeypatch):
    """A Store closing while another on the same path opens would free its map after the
    opener looked at the maps: the kernel likes to give that address to the new map,
    which the opener, having seen it before, would not take for its own (and release
    none of its pages). So a close waits for the open."""
    import threading
    import time
    import lmdb
    from services.archive import store as store_module
    size = 64 * 1024 * 1024
    first = store_module.Store(tmp_path / "store", size)
    inside, events, opened = threading.Event(), [], []
    real_open = lmdb.open

    def slow_open(*args, **kwargs):  # after mapping_made_by looked at the maps
        inside.set()
        time.sleep(0.5)  # a close that could run now would be over before this
        events.append("opened")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(store_module.lmdb, "open", slow_open)
    opener = threading.Thread(target=lambda: opened.append(
        store_module.Store(tmp_path / "store", size)))
    opener.start()
    assert inside.wait(timeout=10)
    first.close()
    events.append("closed")
    opener.join()
    assert events == ["opened", "closed"]
    (second,) = opened
    assert [end - start for start, end in second._map] == [size]
    second.close()


def _address_range(view: mmap.mmap) -> tuple[int, int]:
    import ctypes
    start = ctypes.addressof(ctypes.c_char.from_buffer(view))
    return start, start + len(view)
