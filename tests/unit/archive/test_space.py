"""Room to write: the states and words of a space, which errors mean a disk ran out, and
the spaces of an archive (services.archive.space)."""
import errno
import random

import lmdb
import pytest
import xapian

from services.archive.archive import Archive, spaces_of
from services.archive.space import (FULL_BELOW_BYTES, Space, capacity_space, is_out_of_space,
                                    size_in_words)
from services.archive.store import RESERVE_BYTES, DiskFullError, Store, StoreFullError

MiB = 1024 * 1024


def disk(free: int, low: int = 4 * MiB, total: int = 40 * MiB) -> Space:
    return Space("data_disk", "data disk", "/data", total, free, low, min(FULL_BELOW_BYTES, low))


@pytest.mark.parametrize("free, state", [(40 * MiB, "ok"), (4 * MiB, "ok"),
                                         (4 * MiB - 1, "low"), (MiB, "low"),
                                         (MiB - 1, "full"), (0, "full")])
def test_a_disk_is_low_below_the_models_threshold_and_full_below_a_mebibyte(free, state):
    assert disk(free).state == state


def test_the_words_name_the_disk_its_state_and_the_numbers():
    assert disk(3 * MiB + MiB // 5).words() == \
        "data disk low: 3.2 MiB free of 40.0 MiB (low below 4.0 MiB)"
    assert disk(120 * 1024).words() == \
        "data disk full: 120.0 KiB free of 40.0 MiB (full below 1.0 MiB)"
    assert disk(30 * MiB).words() == "data disk ok: 30.0 MiB free of 40.0 MiB (low below 4.0 MiB)"
    assert disk(0).as_json()["state"] == "full" and disk(0).as_json()["free_bytes"] == 0


def test_a_threshold_below_a_mebibyte_is_where_the_disk_is_full():
    assert disk(500 * 1024, low=600 * 1024).state == "full"
    assert disk(700 * 1024, low=600 * 1024).state == "ok"


def test_the_store_capacity_is_full_only_when_nothing_is_left():
    assert capacity_space("/s", 10 * MiB, 1, 4 * MiB).state == "low"
    assert capacity_space("/s", 10 * MiB, 0, 4 * MiB).state == "full"
    assert capacity_space("/s", 10 * MiB, -5, 4 * MiB).free_bytes == 0  # past the reserve
    assert capacity_space("/s", 10 * MiB, 9 * MiB, 4 * MiB).words().startswith(
        "store capacity ok: 9.0 MiB free of 10.0 MiB")


@pytest.mark.parametrize("count, words", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                          (5 * MiB, "5.0 MiB"), (3 * 1024**4, "3.0 TiB"),
                                          (None, "0 B")])
def test_sizes_in_binary_units(count, words):
    assert size_in_words(count) == words


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    lmdb.DiskError("mdb_txn_commit: No space left on device"),
    lmdb.MapFullError("mdb_put: MDB_MAP_FULL: Environment mapsize limit reached"),
    xapian.DatabaseError("Error writing block 671", "", errno.ENOSPC),
    xapian.DatabaseError("Error writing to file", "", "No space left on device"),
    DiskFullError("the store's disk is full"), StoreFullError("the store is full"),
], ids=lambda error: type(error).__name__)
def test_errors_that_say_the_disk_is_out_of_room(error, tmp_path):
    assert is_out_of_space(error, tmp_path)


@pytest.mark.parametrize("error", [
    OSError(errno.EACCES, "Permission denied"), OSError(errno.ENOENT, "No such file"),
    lmdb.CorruptedError("mdb_get: MDB_CORRUPTED"), lmdb.Error("mdb_txn_commit: Invalid argument"),
    xapian.DatabaseCorruptError("Db block overwritten"), ValueError("No space left on device"),
    xapian.DatabaseError("Error writing block 3", "", errno.EACCES),
], ids=lambda error: f"{type(error).__name__}-{error}")
def test_other_errors_are_not_taken_for_a_full_disk(error, tmp_path):
    assert not is_out_of_space(error, tmp_path)


def test_an_io_error_is_a_full_disk_only_when_the_disk_is_all_but_full(tmp_path):
    # LMDB turns a write cut short by a full disk into EIO; on a disk with room it is a
    # real I/O error (this test's tmp folder has room: it is where pytest writes).
    assert not is_out_of_space(lmdb.Error("mdb_txn_commit: Input/output error"), tmp_path)
    assert not is_out_of_space(OSError(errno.EIO, "Input/output error"), tmp_path)


def test_an_archive_has_a_data_disk_and_a_store_capacity(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    try:
        spaces = {space.key: space for space in archive.spaces()}
        assert list(spaces) == ["data_disk", "store_capacity"]  # no disks of their own here
        assert spaces["data_disk"].low_below_bytes == \
            archive.profile.intake.min_free_disk_mb * MiB
        capacity = spaces["store_capacity"]
        assert capacity.total_bytes == archive.profile.storage_bytes - RESERVE_BYTES
        assert 0 < capacity.free_bytes <= capacity.total_bytes and capacity.state == "ok"
    finally:
        archive.close()


def test_the_store_capacity_turns_low_then_full_as_the_store_fills(tmp_path):
    store = Store(tmp_path / "small", map_size=RESERVE_BYTES + 3 * MiB)
    try:
        def capacity() -> Space:
            return spaces_of(tmp_path, store, low_below_mb=1)[-1]
        assert capacity().state == "ok" and capacity().total_bytes == 3 * MiB
        states, n = [], 0
        with pytest.raises(StoreFullError):
            while n < 1000:
                store.put(random.Random(n).randbytes(200_000))
                states.append(capacity().state)
                n += 1
        assert states[0] == "ok" and states[-1] in ("low", "full")  # said before it refused
        assert capacity().state in ("low", "full")
        assert capacity().words().startswith(f"store capacity {capacity().state}: ")
    finally:
        store.close()
